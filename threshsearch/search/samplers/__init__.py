"""Samplers: the space file's ``study.sampler`` (a name, or a mapping of ``kind`` and that
sampler's settings), validated, and ``auto``'s choice from the budget and the objectives.

``auto`` picks multivariate TPE with the constant-liar heuristic (Optuna's default for several
objectives, and what learns fastest from few trials) below ``NSGA2_FROM_TRIALS`` trials, and
NSGA-II with a population of about a tenth of the budget (ten generations or more) from there
when every trial trains to the end (``early_stopping: none``). Under early stopping ``auto``
keeps TPE at every budget: Optuna's NSGA-II reads only COMPLETE trials and closes a
generation only when ``population_size`` of them complete, so with about one trial in nine
completing (eta 3) it stays in its first, random generation; TPE reads the PRUNED trials too
(after the complete ones ranked by non-domination), so every stopped trial moves its model.
TPE and GP are wrapped (``build``) so that they:
- read the study as early stopping ranked it (``ranked.RankedStops``: each network once,
  the stopped trials deepest rung and best front first, the order TPE's good group fills
  in);
- learn from a bounded history (``history.BoundedHistory``: the latest 1,000 trials and the
  front before them), so that their fit does not grow with the study;
- are asked again while they propose a network the study holds, then give way to a
  neighbour of their favourite or draws at random (``fresh.FreshDraws``); TPE fits its
  estimators once for all the asks of a draw (``fitonce.FittedOnceTPE``).
Every seeded sampler seeds each trial's draw by the study's seed and the trial's number
(``trialseeded.TrialSeeded``), so that two drivers of one study do not draw alike.
GP reads only complete trials: for it the ranking of stopped ones changes nothing.
GPSampler is a choice, never ``auto``'s: its cost per suggestion grows with the cube of the
trials and runs on the driver, beside the trials' training.

Each kind's settings are a subset of its Optuna constructor's parameters (a test checks it);
where this tool's default is Optuna's, it is read from the constructor, not copied.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import optuna
from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError

from threshsearch.config import ConfigError
from threshsearch.search.samplers.fitonce import FittedOnceTPE
from threshsearch.search.samplers.fresh import DRAWS, FreshDraws, Identity
from threshsearch.search.samplers.history import RECENT, BoundedHistory
from threshsearch.search.samplers.ranked import RankedStops
from threshsearch.search.samplers.trialseeded import TrialSeeded
from threshsearch.validation import Bool, Choice, Int, Number, Schema, expected, problems

NSGA2_FROM_TRIALS = 250
# Models whose draw fits every trial it reads and proposes its best again: given a bounded
# history, ranked stops and draws checked against tried networks. NSGA-II keeps its own
# generations (a neighbour would belong to none) and mutates on its own; random sampling
# needs none of it.
MODELS = ("tpe", "gp")
SAMPLERS = ("auto", "tpe", "nsga2", "gp", "random")
OPTUNA_SAMPLERS: dict[str, type[optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
    "gp": optuna.samplers.GPSampler, "random": optuna.samplers.RandomSampler}
# Where this tool builds its own subclass: TPE fitted once per draw, its proposals Optuna's.
BUILT: dict[str, type[optuna.samplers.BaseSampler]] = {"tpe": FittedOnceTPE}
STARTUP = ("random trials before the model takes over; default: a fifth of the budget, "
           "2 to 10")


def optuna_default(kind: str, name: str) -> Any:
    """The default of parameter ``name`` of the Optuna sampler ``kind``."""
    return inspect.signature(OPTUNA_SAMPLERS[kind]).parameters[name].default


class _Sampler(Schema):
    error = ConfigError
    keys_are: ClassVar[str] = "its settings"


class AutoSampler(_Sampler):
    """Let the budget and the objectives decide (see the module docstring)."""

    unknown: ClassVar[str] = ("auto takes no settings; name the sampler they belong to as "
                              "kind: tpe, nsga2, gp, random")
    kind: Literal["auto"] = "auto"


class TPESettings(_Sampler):
    unknown: ClassVar[str] = "not a setting of the tpe sampler"
    kind: Literal["tpe"]
    n_startup_trials: Int(0, 100_000) | None = Field(None, description=STARTUP)
    multivariate: Bool = Field(True, description="model the parameters jointly")
    constant_liar: Bool | None = Field(
        None, description="treat running trials as bad; default: on when several run at once")
    n_ei_candidates: Int(1, 10_000) = Field(
        optuna_default("tpe", "n_ei_candidates"),
        description="candidates scored by expected improvement per suggestion")


class NSGA2Settings(_Sampler):
    unknown: ClassVar[str] = "not a setting of the nsga2 sampler"
    kind: Literal["nsga2"]
    population_size: Int(2, 100_000) | None = Field(
        None, description="default: a tenth of the budget, 10 to 50")
    mutation_prob: Number(0, 1) | None = Field(
        optuna_default("nsga2", "mutation_prob"),
        description="default: 1 / the number of parameters")
    crossover_prob: Number(0, 1) = Field(optuna_default("nsga2", "crossover_prob"))
    swapping_prob: Number(0, 1) = Field(optuna_default("nsga2", "swapping_prob"))


class GPSettings(_Sampler):
    unknown: ClassVar[str] = "not a setting of the gp sampler"
    kind: Literal["gp"]
    n_startup_trials: Int(0, 100_000) | None = Field(None, description=STARTUP)
    deterministic_objective: Bool = Field(
        optuna_default("gp", "deterministic_objective"),
        description="the objectives have no noise")


class RandomSettings(_Sampler):
    unknown: ClassVar[str] = "not a setting of the random sampler"
    kind: Literal["random"]


SETTINGS: dict[str, type[_Sampler]] = {"auto": AutoSampler, "tpe": TPESettings,
                                       "nsga2": NSGA2Settings, "gp": GPSettings,
                                       "random": RandomSettings}
SamplerSettings = Annotated[AutoSampler | TPESettings | NSGA2Settings | GPSettings
                            | RandomSettings, Field(discriminator="kind")]


def _name_or_mapping(value: Any) -> Any:
    if isinstance(value, str):
        if value not in SAMPLERS:
            raise expected(f"one of {', '.join(SAMPLERS)}")
        return {"kind": value}
    if isinstance(value, Mapping):
        return {"kind": "auto", **value}
    if isinstance(value, Schema):
        return value
    raise expected(f"one of {', '.join(SAMPLERS)}, or a mapping of kind and its settings")


Sampler = Annotated[SamplerSettings, BeforeValidator(
    _name_or_mapping, json_schema_input_type=Choice(*SAMPLERS) | SamplerSettings)]
_SAMPLER = TypeAdapter(Sampler)


def parse_sampler(data: Any, path: str = "study.sampler") -> _Sampler:
    """``study.sampler``: a sampler name, or ``{kind: NAME, <that sampler's settings>}``."""
    try:
        return _SAMPLER.validate_python(data)
    except ValidationError as error:
        raise ConfigError(problems(error, Sampler, path)) from None


@dataclass(frozen=True)
class SamplerChoice:
    """The sampler a study runs with, its settings in full, and why it was chosen."""

    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def build(self, seed: int | None, keep: Collection[str] = (),
              identity: Identity | None = None) -> optuna.samplers.BaseSampler:
        """The sampler the study runs with: TPE and GP read a bounded history as early
        stopping ranked it and, given the space's ``identity`` of a draw's network, have
        their draws checked against the study's networks (a neighbour never changing the
        parameters in ``keep``); a seeded sampler seeds each trial's draw by its number."""
        model = BUILT.get(self.kind, OPTUNA_SAMPLERS[self.kind])(seed=seed, **self.settings)
        if self.kind in MODELS:
            read = BoundedHistory(RankedStops(model))
            model = read if identity is None else FreshDraws(read, identity, keep, seed)
        return model if seed is None else TrialSeeded(model, seed)

    def describe(self) -> str:
        settings = ", ".join(f"{key}={value}" for key, value in self.settings.items())
        ranked = ", stopped trials ranked by rung and front" if self.kind == "tpe" else ""
        wrapped = (f", asked up to {DRAWS} times for an untried network (then its "
                   f"favourite's neighbours, then at random), learning from the latest "
                   f"{RECENT} trials and the front before them{ranked}"
                   if self.kind in MODELS else "")
        return f"{self.kind}({settings}{wrapped}): {self.reason}"


def _startup_trials(n_trials: int) -> int:
    return max(2, min(10, n_trials // 5))


def choose_sampler(spec: _Sampler, n_objectives: int, n_trials: int, concurrency: int,
                   early_stopping: str = "none") -> SamplerChoice:
    """The sampler for a study of ``n_objectives`` and a budget of ``n_trials``, with every
    setting the space left open filled in from the budget; ``early_stopping`` is the space's
    rule (``none``, ``asha``, ``pareto``)."""
    kind, reason = spec.kind, "named in the space"
    if kind == "auto":
        if n_objectives > 1 and n_trials >= NSGA2_FROM_TRIALS and early_stopping == "none":
            kind = "nsga2"
            reason = (f"auto: {n_objectives} objectives, {n_trials} trials (>= "
                      f"{NSGA2_FROM_TRIALS}), every trial trained fully: NSGA-II, a "
                      f"population of a tenth of the budget")
        elif n_objectives > 1 and n_trials >= NSGA2_FROM_TRIALS:
            kind = "tpe"
            reason = (f"auto: {n_trials} trials under {early_stopping} early stopping: "
                      f"multivariate TPE, which learns from stopped trials (NSGA-II counts "
                      f"only the completed ones and would stay random)")
        else:
            kind = "tpe"
            reason = (f"auto: {n_objectives} objective{'s' * (n_objectives > 1)} and "
                      f"{n_trials} trials (< {NSGA2_FROM_TRIALS} or one objective): "
                      f"multivariate TPE, which learns from few trials")
        spec = SETTINGS[kind](kind=kind)
    settings = spec.model_dump(exclude={"kind"})
    if kind in ("tpe", "gp") and settings["n_startup_trials"] is None:
        settings["n_startup_trials"] = _startup_trials(n_trials)
    if kind == "tpe" and settings["constant_liar"] is None:
        settings["constant_liar"] = concurrency > 1
    if kind == "nsga2" and settings["population_size"] is None:
        settings["population_size"] = max(10, min(50, n_trials // 10))
    return SamplerChoice(kind, settings, reason)
