"""Fit the surrogate trial's landscape (``threshsearch.search.surrogate``) to real training:
the learning curves that ``benchmarks/search_quality.py`` leaves in its studies (every trial,
pruned ones included, every epoch it reached).

One curve per training: the benchmark's strategies share seeds, so the same config trained
with the same seed appears in several studies with the same curve; the longest is kept. On
the logit scale of the way from chance to ``surrogate.TOP_ACCURACY``, least squares of
``z ~ 1 + x + ln(epoch) + min(x, 0) ln(epoch) + ln(epoch)^2`` (``x = log10(params) - 5``),
then the residuals' variance split at each epoch into the networks' own share (between
configs) and the training seeds' (between trainings of one config with different seeds;
only the configs trained more than once say anything about it, and how many there were is
printed), and how a seed's deviation carries from one epoch to the next. Prints the
coefficients, the components and the data's median accuracy against the model's by size and
epoch.

    python -m benchmarks.surrogate_fit benchmarks/out/search-quality/*.db
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass

import numpy as np
import optuna

from threshsearch.search.surrogate import TOP_ACCURACY, accuracy_at


@dataclass(frozen=True)
class Curve:
    """One trial's validation accuracies by epoch (from 1), and what the fit needs of it."""

    params: float
    config_hash: str
    seed: int
    classes: int
    accuracies: tuple[float, ...]


FLOOR, CEILING = 0.01, 0.999  # z is taken of a share clipped to [FLOOR, CEILING]: an
# accuracy at chance says only that the network has not started (a lower floor lets the
# dozen such first epochs set the first epoch's spread: 0.002 gave it variance 0.99, 0.01
# gives 0.80); TOP_ACCURACY lies above every accuracy seen, so the ceiling only keeps z
# finite


@dataclass(frozen=True)
class Fit:
    """The fitted landscape: the mean's coefficients (intercept, x, ln e, min(x, 0) ln e,
    ln(e)^2), its R^2 in z, and by epoch the variance of z between configs and between seeds
    of one config (with how many configs were trained more than once)."""

    coefficients: tuple[float, ...]
    r2: float
    between_var: dict[int, float]
    within_var: dict[int, float]
    repeated_configs: dict[int, int]
    seed_memory: float  # correlation of a seed's deviation between adjacent epochs (2-6)
    curves: int
    points: int


def logit_progress(accuracy: float, classes: int) -> float:
    """z: the logit of the way from chance to TOP_ACCURACY (clipped inside (0, 1))."""
    chance = 1.0 / classes
    share = min(max((accuracy - chance) / (TOP_ACCURACY - chance), FLOOR), CEILING)
    return math.log(share / (1.0 - share))


def _design(x: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    log_epoch = np.log(epoch)
    return np.column_stack([np.ones_like(x), x, log_epoch, np.minimum(x, 0.0) * log_epoch,
                            log_epoch ** 2])


def _rows(curves: list[Curve]) -> tuple[np.ndarray, ...]:
    index, x, epoch, z = [], [], [], []
    for number, trial in enumerate(curves):
        for at, accuracy in enumerate(trial.accuracies, start=1):
            index.append(number)
            x.append(math.log10(trial.params) - 5.0)
            epoch.append(at)
            z.append(logit_progress(accuracy, trial.classes))
    return np.array(index), np.array(x), np.array(epoch, float), np.array(z)


def fit(curves: list[Curve]) -> Fit:
    """The surrogate's landscape fitted to ``curves`` (see the module docstring)."""
    index, x, epoch, z = _rows(curves)
    design = _design(x, epoch)
    coefficients, *_ = np.linalg.lstsq(design, z, rcond=None)
    residual = z - design @ coefficients
    by = {}  # (epoch, config hash) -> {seed: residual}
    for number, at, r in zip(index, epoch, residual, strict=True):
        trial = curves[number]
        by.setdefault((int(at), trial.config_hash), {})[trial.seed] = r
    between, within, repeated_configs = {}, {}, {}
    for at in sorted({int(e) for e in epoch}):
        groups = [list(seeds.values()) for (e, _), seeds in by.items() if e == at]
        total = np.var(np.concatenate(groups), ddof=1) if sum(map(len, groups)) > 1 else 0.0
        repeated = [np.var(g, ddof=1) for g in groups if len(g) > 1]
        repeated_configs[at] = len(repeated)
        within[at] = float(np.mean(repeated)) if repeated else float("nan")
        between[at] = float(total - within[at]) if repeated else float("nan")
    deviations = []  # a seed's residual minus its config's mean, at epochs e and e + 1
    for at in range(2, int(epoch.max())):
        for (e, config_hash), seeds in by.items():
            later = by.get((e + 1, config_hash), {})
            shared = [seed for seed in seeds if seed in later]
            if e != at or len(shared) < 2:
                continue
            now = np.array([seeds[s] for s in shared])
            then = np.array([later[s] for s in shared])
            deviations += list(zip(now - now.mean(), then - then.mean(), strict=True))
    memory = (float(np.corrcoef(np.array(deviations).T)[0, 1]) if len(deviations) > 2
              else float("nan"))
    return Fit(coefficients=tuple(float(c) for c in coefficients),
               r2=float(1.0 - residual.var() / z.var()), between_var=between,
               within_var=within, repeated_configs=repeated_configs, seed_memory=memory,
               curves=len(curves), points=len(z))


def one_per_training(curves: list[Curve]) -> list[Curve]:
    """The longest curve of each (config, seed): one per training."""
    longest: dict[tuple[str, int], Curve] = {}
    for trial in curves:
        key = (trial.config_hash, trial.seed)
        if key not in longest or len(trial.accuracies) > len(longest[key].accuracies):
            longest[key] = trial
    return list(longest.values())


def study_curves(storage: str) -> list[Curve]:
    """Every trial of the studies in ``storage`` that reached an epoch (baselines left
    out: they are the paper's models, not the space's)."""
    curves = []
    for name in optuna.get_all_study_names(storage):
        if name.endswith("-baselines"):
            continue
        for trial in optuna.load_study(study_name=name, storage=storage).get_trials():
            attrs = trial.user_attrs
            learning = attrs.get("learning_curve") or []
            if not learning or "params" not in attrs:
                continue
            curves.append(Curve(params=float(attrs["params"]),
                                config_hash=attrs["config_hash"], seed=int(attrs["seed"]),
                                classes=int(attrs["architecture"]["num_classes"]),
                                accuracies=tuple(e["val_accuracy"] for e in learning)))
    return curves


def size_table(curves: list[Curve], result: Fit, bins: int = 6) -> str:
    """Median accuracy, data against the model's mean z, by parameter bins and epoch."""
    _index, x, epoch, z = _rows(curves)
    model = _design(x, epoch) @ np.array(result.coefficients)
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    epochs = sorted({int(e) for e in epoch})
    classes = curves[0].classes
    lines = ["| params | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
             "|---|" + "---|" * len(epochs)]
    for number, (low, high) in enumerate(itertools.pairwise(edges)):
        inside = which == number
        cells = []
        for e in epochs:
            here = inside & (epoch == e)
            cells.append(f"{accuracy_at(float(np.median(z[here])), classes):.3f} / "
                         f"{accuracy_at(float(np.median(model[here])), classes):.3f}"
                         if here.any() else "-")
        lines.append(f"| {10 ** (low + 5) / 1e3:.0f}k-{10 ** (high + 5) / 1e3:.0f}k | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+", help="SQLite files of search_quality.py runs")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    read = [c for path in args.studies for c in study_curves(f"sqlite:///{path}")]
    curves = one_per_training(read)
    result = fit(curves)
    a, b, c, d, f = result.coefficients
    print(f"{len(read)} trials, {result.curves} trainings (config and seed), "
          f"{result.points} epoch accuracies")
    print(f"z = {a:.3f} + {b:.3f} x + max(0, {c:.3f} + {d:.3f} min(x, 0)) ln(epoch) "
          f"{f:+.3f} ln(epoch)^2; R^2 {result.r2:.3f}")
    for e in sorted(result.within_var):
        print(f"epoch {e}: networks' own variance {result.between_var[e]:.3f}, seeds' "
              f"{result.within_var[e]:.3f} (configs trained more than once: "
              f"{result.repeated_configs[e]})")
    print(f"a seed's deviation, correlation between adjacent epochs (2-6): "
          f"{result.seed_memory:.2f}")
    print("\nmedian accuracy, data / model, by parameters (bins of equal count) and epoch:\n")
    print(size_table(curves, result))


if __name__ == "__main__":
    main()
