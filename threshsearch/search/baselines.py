"""Baselines: the paper's models trained under the study's own recipe, seed, pricing and
timing, so that the front can be read against them.

They live in a companion study in the same storage (``<study>-baselines``, named in the main
study's user attribute ``baselines_study``), never in the main study: a sampler fits its
model to the main study's trials, and a preset is not a point of the search space. Each
baseline is trained once per study; a rerun trains only those not yet COMPLETE (nor running
under another driver).

``verdict`` says, for each baseline, which front members dominate it and by how much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from threshsearch.config import ConfigError
from threshsearch.presets import get_preset
from threshsearch.search.pareto import minimised
from threshsearch.search.reports import BASELINE
from threshsearch.search.storage import BASELINES_SUFFIX

PAPER_BASELINES = ("threshnet79", "threshnet95", "hardnet68", "densenet121")
BASELINES_STUDY = "baselines_study"  # main study user attr: the companion study's name


def default_baselines(input_size: int) -> tuple[str, ...]:
    """The paper's models that fit inputs of ``input_size``."""
    return tuple(name for name in PAPER_BASELINES if fits(name, input_size))


def fits(name: str, input_size: int) -> bool:
    """Whether preset ``name`` takes inputs of ``input_size``."""
    try:
        get_preset(name).check_input_size(input_size)
    except ConfigError:
        return False
    return True


def companion_name(study_name: str) -> str:
    return f"{study_name}{BASELINES_SUFFIX}"


def open_baselines_study(study: optuna.Study, metric_names: list[str],
                         directions: list[str]) -> optuna.Study:
    """The companion study of ``study``, created on first use with the same objectives."""
    name = companion_name(study.study_name)
    companion = optuna.create_study(study_name=name, storage=study._storage,
                                    directions=directions, load_if_exists=True)
    if companion.metric_names is None:
        companion.set_metric_names(metric_names)
    # What an exported baseline needs besides its trial, as for the main study's.
    for key in ("data", "base"):
        if key in study.user_attrs:
            companion.set_user_attr(key, study.user_attrs[key])
    study.set_user_attr(BASELINES_STUDY, name)
    return companion


def load_baselines_study(study: optuna.Study) -> optuna.Study | None:
    """The companion study of ``study``, if it has one."""
    name = study.user_attrs.get(BASELINES_STUDY)
    if not name:
        return None
    return optuna.load_study(study_name=name, storage=study._storage)


def still_to_train(companion: optuna.Study, names: Sequence[str]) -> list[str]:
    """The baselines without a COMPLETE trial and not RUNNING under another live driver of
    the study (whose stale trials the caller has failed first); failed ones are tried
    again, so two drivers started together do not both train them."""
    taken = {t.user_attrs.get(BASELINE) for t in companion.get_trials(deepcopy=False)
             if t.state in (TrialState.COMPLETE, TrialState.RUNNING)}
    return [name for name in names if name not in taken]


def baseline_trials(companion: optuna.Study | None) -> dict[str, FrozenTrial]:
    """Each baseline's completed trial, by preset name (the latest, if trained twice)."""
    if companion is None:
        return {}
    return {t.user_attrs[BASELINE]: t for t in companion.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE and t.user_attrs.get(BASELINE)}


@dataclass(frozen=True)
class Comparison:
    """How one front member compares with one baseline, objective by objective."""

    trial: int
    differences: dict[str, str]  # metric -> "+0.4 pt" or "0.52x"


@dataclass(frozen=True)
class Verdict:
    baseline: str
    values: dict[str, float]
    dominated_by: list[Comparison]

    def describe(self) -> str:
        if not self.dominated_by:
            return f"{self.baseline}: no network of the front dominates it"
        lines = [f"{self.baseline}: dominated by {len(self.dominated_by)} network"
                 f"{'s' * (len(self.dominated_by) > 1)} of the front"]
        for item in self.dominated_by:
            lines.append(f"  trial {item.trial} vs {self.baseline}: "
                         + ", ".join(f"{v} {k}" for k, v in item.differences.items()))
        return "\n".join(lines)


def _difference(metric: str, mine: float, theirs: float) -> str:
    if metric in ("val_accuracy", "val_top5"):
        return f"{100 * (mine - theirs):+.1f} pt"
    return f"{mine / theirs:.2f}x" if theirs else f"{mine:.4g} vs 0"


def verdict(front: Sequence[FrozenTrial], baselines: dict[str, FrozenTrial],
            metric_names: list[str], directions: list[str]) -> list[Verdict]:
    """For each baseline, the front members that dominate it (no worse on every objective,
    better on one), with the difference on each objective."""
    results = []
    for name, baseline in baselines.items():
        theirs = minimised(baseline.values, directions)
        beating = []
        for trial in front:
            mine = minimised(trial.values, directions)
            if all(a <= b for a, b in zip(mine, theirs, strict=True)) and mine != theirs:
                beating.append(Comparison(trial.number, {
                    metric: _difference(metric, a, b) for metric, a, b
                    in zip(metric_names, trial.values, baseline.values, strict=True)}))
        results.append(Verdict(name, dict(zip(metric_names, baseline.values, strict=True)),
                               beating))
    return results
