"""The search-space file: its schema (the sections in ``search/sections.py``, put together
here with the rules that span them) and the sampler that turns an Optuna trial into an
architecture config and a training recipe.

Every problem in a file is reported with its key path (``space.depth[2].high``), the bad value
and what would be valid. See ``search_spaces/default.yaml`` for a documented example;
``threshsearch schema space`` writes the JSON Schema that editors complete from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import optuna
from annotated_types import Len
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from threshsearch.config import STEM_STYLES, ArchitectureConfig, ConfigError, read_structured_file
from threshsearch.data import INPUT_SIZE, num_classes
from threshsearch.devicemodel import DeviceModel, load_device_model
from threshsearch.errors import UserError
from threshsearch.presets import PRESETS, get_preset
from threshsearch.search.baselines import default_baselines, fits
from threshsearch.search.objectives import METRICS, PREDICTED_LATENCY
from threshsearch.search.samplers import SamplerChoice, choose_sampler
from threshsearch.search.sections import (
    AUTO_DEVICE_MODEL,
    Categorical,
    Constraint,
    DataSettings,
    Distribution,
    EarlyStopping,
    FloatRange,
    IntRange,
    Measurement,
    Objective,
    Parameters,
    Resources,
    Section,
    SpaceError,
    StudySettings,
    TrainSettings,
)
from threshsearch.train import DEFAULT_RECIPE, RECIPES, Recipe
from threshsearch.validation import Choice, expect, problem, show

STAGE_PARAMETERS = ("depth", "growth", "multiplier")
RECIPE_PARAMETERS = ("lr", "batch_size")  # parameters of the recipe, not of the network


# ------------------------------------------------------------------ the file
class SearchSpace(Section):
    model_config = ConfigDict(populate_by_name=True, title="threshsearch search space")
    what = "search space"

    study: StudySettings = Field(StudySettings(), description="the Optuna study")
    objectives: Annotated[tuple[Objective, ...], Len(1), expect(
        "a non-empty list of {metric, direction} with metrics from " + ", ".join(METRICS))] \
        = Field(description="what the search optimises")
    constraints: tuple[Constraint, ...] = Field(
        (), description="bounds on metrics known before training; a network outside them is "
        "infeasible and never trained")
    data: DataSettings = Field(DataSettings(), description="the dataset and the device")
    measurement: Measurement = Field(Measurement(), description="how latency is measured")
    train: TrainSettings = Field(TrainSettings(), description="the training recipe: a named "
                                 "recipe and the fields it overrides")
    early_stopping: EarlyStopping = Field(EarlyStopping(),
                                          description="how unpromising trials are stopped")
    resources: Resources = Field(Resources(), description="what each trial takes")
    base: Choice(*PRESETS) = Field("threshnet79", description="the preset whatever the space "
                                   "leaves out comes from")
    baselines: Annotated[tuple[Choice(*PRESETS), ...], expect(
        f"a list of preset names from {', '.join(PRESETS)} (or [] for none)")] | None = Field(
        None, description="presets trained beside the search as reference points; default: "
        "the paper's models that fit the input size ([] for none)")
    parameters: Parameters = Field(Parameters(), alias="space",
                                   description="the searched parameters")
    _source: Path | None = PrivateAttr(None)
    _device_model: DeviceModel | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_other_sections(cls, data: Any) -> Any:
        """The defaults that depend on another section: the recipe on the dataset, early
        stopping on the objectives, the baselines on the input size."""
        if not isinstance(data, Mapping):
            return data
        # A section whose keys are all commented out reads as null: its defaults, then.
        data = {key: value for key, value in data.items() if value is not None}
        section = data.get("data")
        dataset = section.get("dataset") if isinstance(section, Mapping) else None
        train = {} if data.get("train") is None else data["train"]
        if isinstance(train, Mapping):
            name = train.get("recipe")
            name = name if isinstance(name, str) and name in RECIPES else \
                DEFAULT_RECIPE.get(dataset, "cifar10") if isinstance(dataset, str) else "cifar10"
            data["train"] = RECIPES[name].to_dict() | dict(train)
        early = {} if data.get("early_stopping") is None else data["early_stopping"]
        if isinstance(early, Mapping) and early.get("kind") is None:
            objectives = data.get("objectives")
            several = isinstance(objectives, list) and len(objectives) > 1
            data["early_stopping"] = {**early, "kind": "pareto" if several else "asha"}
        if data.get("baselines") is None:
            data["baselines"] = default_baselines(INPUT_SIZE)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpace:
        names = self.metric_names
        if len(set(names)) != len(names):
            raise problem(f"{names} names a metric twice; expected each once", "objectives")
        early = self.early_stopping
        if early.kind != "none" and early.grace_epochs >= self.train.epochs:
            raise problem(f"{early.grace_epochs} is invalid; expected fewer than train.epochs "
                          f"({self.train.epochs}), or early_stopping.kind: none",
                          "early_stopping.grace_epochs")
        for index, name in enumerate(self.baselines):
            if name in self.baselines[:index]:
                raise problem(f"{name!r} is listed twice; expected each preset once",
                              f"baselines[{index}]")
            if not fits(name, INPUT_SIZE):
                raise problem(f"{name!r} does not fit {INPUT_SIZE}x{INPUT_SIZE} inputs; "
                              f"expected one of {', '.join(default_baselines(INPUT_SIZE))}",
                              f"baselines[{index}]")
        self._check_parameters()
        self._load_device_model()
        return self

    def _load_device_model(self) -> None:
        """Predicted latency needs a device model, made for this space's input size and
        latency batch size; the model is read once, here."""
        path = self.measurement.device_model
        if path is None:
            if PREDICTED_LATENCY in self.priced_metrics:
                raise problem(f"{PREDICTED_LATENCY} needs a device model; expected "
                              f"measurement.device_model: a file written by `threshsearch "
                              f"device-profile`, or auto", "measurement.device_model")
            return
        if path == AUTO_DEVICE_MODEL:
            return  # profiled when the run starts (search.pricing.priced_space)
        try:
            model = load_device_model(path)
            model.require(input_size=INPUT_SIZE, batch_size=self.data.latency_batch_size)
        except UserError as error:
            raise problem(str(error), "measurement.device_model") from None
        self._device_model = model

    def _check_parameters(self) -> None:
        """Stage lists must cover the largest stage count; stems must be known styles."""
        given = self.parameters.given()
        stages = given.get("num_stages")
        if isinstance(stages, FloatRange):
            raise problem("a float range is invalid; expected a whole number of stages: an "
                          "integer, {type: int, ...} or categorical integers",
                          "space.num_stages")
        counts = (stages.choices if isinstance(stages, Categorical)
                  else (stages.low,) if isinstance(stages, IntRange)
                  else (stages,) if stages is not None else ())
        for count in counts:
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise problem(f"{show(count)} is invalid; expected a whole number of stages "
                              f">= 1", "space.num_stages")
        if isinstance(stages, IntRange):
            most = stages.high
        elif counts:
            most = max(counts)
        else:
            most = len(get_preset(self.base).stages)
        for name in STAGE_PARAMETERS:
            value = given.get(name)
            if isinstance(value, tuple) and len(value) < most:
                raise problem(f"{len(value)} per-stage entries for up to {most} stages; "
                              f"expected one value for all stages or at least {most}",
                              f"space.{name}")
        stem = given.get("stem")
        choices = stem.choices if isinstance(stem, Categorical) else (stem,) if stem else ()
        for choice in choices:
            if choice not in STEM_STYLES:
                raise problem(f"{show(choice)} is invalid; expected one of "
                              f"{', '.join(STEM_STYLES)}", "space.stem")

    # ------------------------------------------------------------ derived
    @property
    def source(self) -> Path | None:
        """The file this space was read from."""
        return self._source

    @property
    def recipe(self) -> str | None:
        return self.train.recipe

    @property
    def study_dir(self) -> Path:
        return Path("studies") / self.study.name

    @property
    def storage_url(self) -> str:
        return self.study.storage or f"sqlite:///{self.study_dir / 'study.db'}"

    @property
    def metric_names(self) -> list[str]:
        return [objective.metric for objective in self.objectives]

    @property
    def priced_metrics(self) -> list[str]:
        """The metrics an objective or a constraint asks for."""
        return [*self.metric_names, *(c.metric for c in self.constraints)]

    @property
    def measures_latency(self) -> bool:
        """Whether an objective or a constraint is measured latency: trials of a study that
        asks for none measure none (and take no device lock)."""
        return "latency_ms" in self.priced_metrics

    @property
    def device_model(self) -> DeviceModel | None:
        """The device model ``measurement.device_model`` names, read when the space was
        (with ``auto``: once the run has profiled this machine)."""
        return self._device_model

    def with_device_model(self, model: DeviceModel) -> SearchSpace:
        """This space priced by ``model`` (what ``device_model: auto`` resolves to)."""
        copy = self.model_copy()
        copy._device_model = model
        return copy

    @property
    def directions(self) -> list[str]:
        return [objective.direction or METRICS[objective.metric].direction
                for objective in self.objectives]

    @property
    def sampler_choice(self) -> SamplerChoice:
        """The sampler this study runs with (``auto`` resolved from the budget and the
        early-stopping rule)."""
        return choose_sampler(self.study.sampler, len(self.objectives), self.study.n_trials,
                              self.study.concurrency, self.early_stopping.kind)

    @property
    def num_classes(self) -> int:
        return num_classes(self.data.dataset, self.data.root)

    # ------------------------------------------------------------ sampling
    def _value(self, trial: optuna.Trial, name: str, default: Any, stage: int | None = None
               ) -> Any:
        parameter = getattr(self.parameters, name)
        if parameter is None:
            return default
        if isinstance(parameter, tuple):
            parameter = parameter[stage]
            name = f"{name}_{stage + 1}"
        return parameter.suggest(trial, name) if isinstance(parameter, Distribution) \
            else parameter

    def sample(self, trial: optuna.Trial) -> tuple[ArchitectureConfig, Recipe]:
        """Draw one architecture and recipe. Whatever the space leaves out comes from the
        base preset and the ``train`` section. Raises ConfigError for an unbuildable draw."""
        base = get_preset(self.base, self.num_classes)
        count = self._value(trial, "num_stages", len(base.stages))
        given = self.parameters.given()
        # Explicit transition widths belong to the base's own stage shapes; once rates or
        # stage counts are searched, widths follow from the rates instead.
        derive_widths = count != len(base.stages) or any(
            name in given for name in ("dense_reduction", "harmonic_reduction"))
        stages = []
        for index in range(count):
            template = base.stages[min(index, len(base.stages) - 1)]
            changes = {name: self._value(trial, name, getattr(template, name), index)
                       for name in STAGE_PARAMETERS}
            if derive_widths:
                changes["transition_width"] = None
            if index >= len(base.stages):
                changes["downsample"] = False
            stages.append(template.replace(**changes))
        stem = self._value(trial, "stem", None)
        threshold = self._value(trial, "threshold", base.threshold)
        config = base.replace(
            stem=STEM_STYLES[stem] if stem else base.stem, stages=tuple(stages),
            threshold=math.inf if threshold == "inf" else threshold,
            dense_reduction=self._value(trial, "dense_reduction", base.dense_reduction),
            harmonic_reduction=self._value(trial, "harmonic_reduction",
                                           base.harmonic_reduction))
        recipe = self.train.override(**{name: self._value(trial, name, None)
                                        for name in RECIPE_PARAMETERS})
        return config, recipe

    def network_of(self, params: Mapping[str, Any],
                   fill: Callable[[str, BaseDistribution], Any]
                   ) -> tuple[str | None, dict[str, Any]]:
        """The hash of the network a trial drawing ``params`` builds (None: it builds
        none), and the parameters it needs besides them, drawn by ``fill`` (a name and its
        distribution) as the trial would ask for them."""
        trial = _FilledIn(params, fill)
        try:
            config, _ = self.sample(trial)  # type: ignore[arg-type]
        except ConfigError:
            return None, trial.filled
        return config.hash, trial.filled

    # ------------------------------------------------------------- loading
    @classmethod
    def from_dict(cls, data: Any, source: Path | None = None) -> SearchSpace:
        space = cls.parse(data)
        space._source = source
        return space


class _FilledIn:
    """What ``SearchSpace.sample`` asks a trial, answered from given parameters and, for
    the others, by ``fill`` (noted in ``filled``)."""

    def __init__(self, params: Mapping[str, Any],
                 fill: Callable[[str, BaseDistribution], Any]) -> None:
        self.params, self.fill = dict(params), fill
        self.filled: dict[str, Any] = {}

    def _value(self, name: str, distribution: BaseDistribution) -> Any:
        if distribution.single():  # as a trial answers it, without its sampler
            return (distribution.choices[0]
                    if isinstance(distribution, CategoricalDistribution) else distribution.low)
        if name not in self.params:
            self.params[name] = self.filled[name] = self.fill(name, distribution)
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int:
        return self._value(name, IntDistribution(low, high, step=step, log=log))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        return self._value(name, FloatDistribution(low, high, step=step, log=log))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._value(name, CategoricalDistribution(choices))


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space file; errors name the file and the key path."""
    path = Path(path)
    try:
        return SearchSpace.from_dict(read_structured_file(path), source=path)
    except ConfigError as error:
        text = str(error)
        raise SpaceError(text if text.startswith(str(path)) else f"{path}: {text}") from None
