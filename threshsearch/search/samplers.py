"""Samplers: the space file's ``study.sampler`` (a name, or a mapping of ``kind`` and that
sampler's settings), validated, and ``auto``'s choice from the budget and the objectives.

``auto`` picks multivariate TPE with the constant-liar heuristic (Optuna's default for several
objectives, and what learns fastest from few trials) below ``NSGA2_FROM_TRIALS`` trials, and
NSGA-II with a population of about a tenth of the budget (ten generations or more) from there.
GPSampler is a choice, never ``auto``'s: its cost per suggestion grows with the cube of the
trials and runs on the driver, beside the trials' training.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import optuna

from threshsearch.validation import check_bool, check_int, check_number, show

NSGA2_FROM_TRIALS = 250


@dataclass(frozen=True)
class TPESettings:
    n_startup_trials: int | None = None  # None: a fifth of the budget, 2 to 10
    multivariate: bool = True
    constant_liar: bool | None = None  # None: on when several trials run at once
    n_ei_candidates: int = 24

    def check(self, path: str, problems: list[str]) -> None:
        if self.n_startup_trials is not None:
            check_int(problems, f"{path}.n_startup_trials", self.n_startup_trials, 0, 100_000)
        check_bool(problems, f"{path}.multivariate", self.multivariate)
        if self.constant_liar is not None:
            check_bool(problems, f"{path}.constant_liar", self.constant_liar)
        check_int(problems, f"{path}.n_ei_candidates", self.n_ei_candidates, 1, 10_000)


@dataclass(frozen=True)
class NSGA2Settings:
    population_size: int | None = None  # None: a tenth of the budget, 10 to 50
    mutation_prob: float | None = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5

    def check(self, path: str, problems: list[str]) -> None:
        if self.population_size is not None:
            check_int(problems, f"{path}.population_size", self.population_size, 2, 100_000)
        if self.mutation_prob is not None:
            check_number(problems, f"{path}.mutation_prob", self.mutation_prob, 0, 1)
        check_number(problems, f"{path}.crossover_prob", self.crossover_prob, 0, 1)
        check_number(problems, f"{path}.swapping_prob", self.swapping_prob, 0, 1)


@dataclass(frozen=True)
class GPSettings:
    n_startup_trials: int | None = None  # None: a fifth of the budget, 2 to 10
    deterministic_objective: bool = False

    def check(self, path: str, problems: list[str]) -> None:
        if self.n_startup_trials is not None:
            check_int(problems, f"{path}.n_startup_trials", self.n_startup_trials, 0, 100_000)
        check_bool(problems, f"{path}.deterministic_objective", self.deterministic_objective)


@dataclass(frozen=True)
class RandomSettings:
    def check(self, path: str, problems: list[str]) -> None:
        return None


SETTINGS: dict[str, type] = {"tpe": TPESettings, "nsga2": NSGA2Settings, "gp": GPSettings,
                             "random": RandomSettings}
SAMPLERS = ("auto", *SETTINGS)


@dataclass(frozen=True)
class SamplerSpec:
    """What the space file asks for."""

    kind: str = "auto"
    settings: Any = None  # the kind's settings dataclass; None for auto


@dataclass(frozen=True)
class SamplerChoice:
    """The sampler a study runs with, its settings in full, and why it was chosen."""

    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def build(self, seed: int | None) -> optuna.samplers.BaseSampler:
        if self.kind == "tpe":
            return optuna.samplers.TPESampler(seed=seed, **self.settings)
        if self.kind == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, **self.settings)
        if self.kind == "gp":
            return optuna.samplers.GPSampler(seed=seed, **self.settings)
        return optuna.samplers.RandomSampler(seed=seed)

    def describe(self) -> str:
        settings = ", ".join(f"{key}={value}" for key, value in self.settings.items())
        return f"{self.kind}({settings}): {self.reason}"


def parse_sampler(data: Any, path: str, problems: list[str]) -> SamplerSpec:
    """``study.sampler``: a sampler name, or ``{kind: NAME, <that sampler's settings>}``."""
    kind_path = path if isinstance(data, str) else f"{path}.kind"
    if isinstance(data, str):
        data = {"kind": data}
    if not isinstance(data, Mapping):
        problems.append(f"{path}: {show(data)} is invalid; expected one of "
                        f"{', '.join(SAMPLERS)}, or a mapping of kind and its settings")
        return SamplerSpec()
    values = dict(data)
    kind = values.pop("kind", "auto")
    if not (isinstance(kind, str) and kind in SAMPLERS):
        problems.append(f"{kind_path}: {show(kind)} is invalid; expected one of "
                        f"{', '.join(SAMPLERS)}")
        return SamplerSpec()
    if kind == "auto":
        if values:
            problems.append(f"{path}: auto takes no settings ({', '.join(map(str, values))}); "
                            f"name the sampler they belong to as kind: "
                            f"{', '.join(SETTINGS)}")
        return SamplerSpec()
    cls = SETTINGS[kind]
    names = [item.name for item in fields(cls)]
    for key in list(values):
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            name = key if isinstance(key, str) else show(key)
            problems.append(f"{path}.{name}: not a setting of the {kind} sampler; {hint}"
                            f"its settings: {', '.join(names) or 'none'}")
            values.pop(key)
    settings = cls(**values)
    settings.check(path, problems)
    return SamplerSpec(kind, settings)


def _startup_trials(n_trials: int) -> int:
    return max(2, min(10, n_trials // 5))


def choose_sampler(spec: SamplerSpec, n_objectives: int, n_trials: int, concurrency: int
                   ) -> SamplerChoice:
    """The sampler for a study of ``n_objectives`` and a budget of ``n_trials``, with every
    setting the space left open filled in from the budget."""
    kind, reason = spec.kind, "named in the space"
    if kind == "auto":
        if n_objectives > 1 and n_trials >= NSGA2_FROM_TRIALS:
            kind = "nsga2"
            reason = (f"auto: {n_objectives} objectives and {n_trials} trials (>= "
                      f"{NSGA2_FROM_TRIALS}): NSGA-II, a population of a tenth of the budget")
        else:
            kind = "tpe"
            reason = (f"auto: {n_objectives} objective{'s' * (n_objectives > 1)} and "
                      f"{n_trials} trials (< {NSGA2_FROM_TRIALS} or one objective): "
                      f"multivariate TPE, which learns from few trials")
    settings = asdict(spec.settings) if spec.settings is not None else \
        asdict(SETTINGS[kind]())
    if kind in ("tpe", "gp") and settings["n_startup_trials"] is None:
        settings["n_startup_trials"] = _startup_trials(n_trials)
    if kind == "tpe" and settings["constant_liar"] is None:
        settings["constant_liar"] = concurrency > 1
    if kind == "nsga2" and settings["population_size"] is None:
        settings["population_size"] = max(10, min(50, n_trials // 10))
    return SamplerChoice(kind, settings, reason)
