"""The sections of a search-space file (study, objectives, constraints, data, measurement,
train, early stopping, resources) and its searched parameters, as pydantic models: every key
with its default, bounds and description. ``threshsearch.search.space`` puts them together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import optuna
from annotated_types import Gt, Len
from pydantic import (
    AllowInfNan,
    BaseModel,
    Discriminator,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    Tag,
    model_validator,
)

from threshsearch.config import STEM_STYLES, ConfigError
from threshsearch.data import DATASETS, DataError, num_classes
from threshsearch.folders import MAX_IMAGE_PIXELS, MAX_TEST_FRACTION
from threshsearch.measure import DEVICES
from threshsearch.search.objectives import CHEAP_METRICS, METRICS
from threshsearch.search.samplers import AutoSampler, Sampler
from threshsearch.train import RECIPES, Recipe
from threshsearch.validation import Bool, Choice, Int, Number, Schema, expect, problem

DIRECTIONS = ("maximize", "minimize")
AUTO_DEVICE_MODEL = "auto"  # measurement.device_model: profile this machine at the first run
EARLY_STOPPING = ("pareto", "asha", "none")


class SpaceError(ConfigError):
    """An invalid search-space file."""


class Section(Schema):
    """A part of a search-space file."""

    error = SpaceError


Finite = Annotated[float, Strict(), AllowInfNan(False), expect("a finite number")]


class StudySettings(Section):
    name: Annotated[str, Strict(), StringConstraints(pattern=r"^[\w-][\w.-]*$"), expect(
        "letters, digits, '-', '_' or '.' (it names the folder studies/<name>/)")] = Field(
        "threshsearch", description="the study; its files go to studies/<name>/")
    storage: Annotated[str, Strict(), StringConstraints(pattern="://"), expect(
        "an Optuna storage URL such as sqlite:///path/study.db or postgresql://...")] | None \
        = Field(None, description="an Optuna storage URL; default: SQLite in studies/<name>/")
    sampler: Sampler = Field(AutoSampler(), description="a sampler name, or a mapping of "
                             "kind and that sampler's settings")
    seed: Int(0, 2**32 - 1) | None = Field(0, description="seeds the sampler and the trials")
    n_trials: Int(1, 1_000_000) = Field(
        20, description="trials to run (a draw of a network already tried is not counted)")
    timeout_s: Number(0, 10**8, low_open=True) | None = Field(
        None, description="stop starting trials after this many seconds")
    concurrency: Int(1, 4096) = Field(1, description="trials at once")
    heartbeat_s: Int(1, 3600) = Field(
        5, description="how often a running trial is marked alive in the storage")
    grace_s: Int(2, 86_400) = Field(
        20, description="a running trial silent this long belonged to a dead driver")

    @model_validator(mode="after")
    def _grace_after_heartbeat(self) -> StudySettings:
        if self.grace_s <= self.heartbeat_s:
            raise problem(f"{self.grace_s} is invalid; expected more than study.heartbeat_s "
                          f"({self.heartbeat_s})", "grace_s")
        return self


class Objective(Section):
    metric: Choice(*METRICS) = Field(description="a metric a trial reports")
    direction: Choice(*DIRECTIONS) | None = Field(
        None, description="default: the metric's natural direction")


class Constraint(Section):
    metric: Choice(*CHEAP_METRICS) = Field(description="a metric known before training")
    max: Finite | None = Field(None, description="feasible when the metric is <= max")
    min: Finite | None = Field(None, description="feasible when the metric is >= min")

    @model_validator(mode="after")
    def _satisfiable(self) -> Constraint:
        if self.max is None and self.min is None:
            raise problem("no bound; expected max, min or both")
        # Every metric known before training is positive for any network.
        for bound, value in (("max", self.max), ("min", self.min)):
            if value is not None and value <= 0:
                meaning = "no network can meet it" if bound == "max" else "it never binds"
                raise problem(f"{value:.15g} is invalid: {self.metric} is always positive, so "
                              f"{meaning}; expected a number > 0", bound)
        if self.max is not None and self.min is not None and self.min > self.max:
            raise problem(f"min {self.min:.15g} > max {self.max:.15g}: no network can meet both; "
                          "expected min <= max")
        return self


def constraint_values(constraints: tuple[Constraint, ...], metrics: dict[str, Any]
                      ) -> dict[str, float]:
    """Optuna constraint values (feasible when <= 0), one per bound, relative to the bound
    so that constraints in different units weigh alike: (value - max) / |max| and
    (min - value) / |min|."""
    values = {}
    for constraint in constraints:
        value = float(metrics[constraint.metric])
        for bound, sign in (("max", 1.0), ("min", -1.0)):
            limit = getattr(constraint, bound)
            if limit is not None:
                values[f"{constraint.metric}_{bound}"] = (
                    sign * (value - limit) / (abs(limit) or 1.0))
    return values


class DataSettings(Section):
    dataset: Choice(*DATASETS) = Field("cifar10", description="the dataset")
    root: Annotated[str, Strict(), expect("a folder path")] = Field(
        "data", description="where the dataset is (or is downloaded to)")
    device: Choice(*DEVICES) = Field("auto", description="where trials train and are timed")
    latency_batch_size: Int(1, 4096) = Field(1, description="images per timed pass")
    ship: Bool = Field(True, description="the driver ships the prepared dataset to the workers "
                       "(Ray's object store); false: every node reads data.root itself")
    test_fraction: Number(0, MAX_TEST_FRACTION, high_open=True) = Field(
        0.0, description="for a folder dataset without a test/ folder: the share of each "
        "class held out as a test split (else the test split is the validation split)")
    max_image_pixels: Int(1, 10**12) = Field(
        MAX_IMAGE_PIXELS, description="for a folder dataset: images with more pixels (width x "
        "height) are skipped unread, and listed")

    @model_validator(mode="after")
    def _folder_readable(self) -> DataSettings:
        if self.test_fraction and self.dataset != "folder":
            raise problem(f"{self.test_fraction:g} is invalid for dataset {self.dataset!r}, "
                          f"which has a test split; expected 0", "test_fraction")
        if self.dataset == "folder":
            try:
                num_classes("folder", self.root)
            except DataError as error:
                raise problem(str(error), "root") from None
        return self


class Measurement(Section):
    """How latency is measured on the trials' device (see ``threshsearch.latency``), or
    predicted from a device model (``threshsearch.devicemodel``)."""

    min_passes: Int(1, 100_000) = Field(
        20, description="timed passes in the first round; rounds double until it settles")
    max_time_s: Number(0, 3600, low_open=True) = Field(
        2.0, description="per network: the passes stop here, settled or not")
    min_time_s: Number(0, 3600) = Field(
        0.25, description="per network: the passes never settle sooner (<= max_time_s)")
    tolerance: Number(0, 1, low_open=True, high_open=True) = Field(
        0.02, description="settled: the estimate moved less than this between rounds")
    exclusive: Bool = Field(True, description="measure with the device to itself (other "
                            "trials pause)")
    cuda_graph: Bool = Field(False, description="on a CUDA device: time replays of the network "
                             "captured as a CUDA graph (as served through CUDA graphs: kernel "
                             "launches paid once) rather than eager passes; no effect on the "
                             "CPU")
    retime_front: Bool = Field(True, description="time the front again, one network at a "
                               "time, at the end")
    device_model: Annotated[str, Strict(), expect(
        "the path of a device-model file written by `threshsearch device-profile`, or "
        "auto")] | None = Field(
        None, description="a device-model file (`threshsearch device-profile`), or auto: this "
        "machine's CPU, profiled for the space at the study's first run and kept in "
        "studies/<name>/device-model.json. predicted_latency_ms comes from it, on the driver, "
        "before training: no worker time is spent timing")

    @model_validator(mode="after")
    def _min_below_max(self) -> Measurement:
        if self.min_time_s > self.max_time_s:
            raise problem(f"{self.min_time_s:g} is invalid; expected a number in [0, "
                          f"{self.max_time_s}] (at most measurement.max_time_s)", "min_time_s")
        return self

    def for_trials(self) -> dict[str, Any]:
        """What a worker's measurement takes (``LatencySettings`` fields and exclusive)."""
        return self.model_dump(exclude={"retime_front", "device_model"})


class EarlyStopping(Section):
    kind: Choice(*EARLY_STOPPING) | None = Field(
        None, description="default: pareto for several objectives, asha for one")
    grace_epochs: Int(1, 100_000) = Field(1, description="epochs every trial gets")
    reduction_factor: Int(2, 100) = Field(2, description="keep 1 in this many at each rung")


class Resources(Section):
    cpus: Number(0, 1024, low_open=True) = Field(1, description="CPU cores per trial")
    gpus: Number(0, 64) = Field(0, description="GPUs per trial (fractions share one)")


class TrainSettings(Recipe):
    """The recipe trials train with: a named recipe, fields overridden."""

    error = SpaceError
    recipe: Choice(*RECIPES) | None = Field(
        None, description="the recipe the other fields default to; default: the dataset's")


# ---------------------------------------------------------------- distributions
class _Range(Section):
    log: Bool = Field(False, description="sample on a log scale (low > 0, no step)")

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if self.low > self.high:
            raise problem(f"low {self.low} > high {self.high}; expected low <= high")
        if self.log and (self.step is not None or self.low <= 0):
            raise problem("a log scale needs low > 0 and no step", "log")
        return self


class IntRange(_Range):
    type: Literal["int"]
    low: Annotated[int, Strict(), expect("a finite integer")]
    high: Annotated[int, Strict(), expect("a finite integer")]
    step: Annotated[int, Strict(), Gt(0), expect("a positive integer")] | None = None

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step or 1, log=self.log)


class FloatRange(_Range):
    type: Literal["float"]
    low: Finite
    high: Finite
    step: Annotated[float, Strict(), Gt(0), expect("a positive number")] | None = None

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        value = trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)
        # A stepped grid is low + k * step in binary floating point: 1.5999999999999999
        # for 1.6. Rounding keeps configs (and their files) readable.
        return round(value, 10) if self.step else value


Scalar = StrictBool | StrictInt | Annotated[float, Strict(), AllowInfNan(False)] | StrictStr


class Categorical(Section):
    type: Literal["categorical"]
    choices: Annotated[tuple[Scalar, ...], Len(1), expect(
        "a non-empty list of numbers or strings", whole=True)]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))


Distribution = IntRange | FloatRange | Categorical
Fixed = Annotated[Scalar, expect("a number, a string or a distribution {type: int|float|"
                                 "categorical, ...}", whole=True)]
Parameter = Annotated[
    Annotated[Fixed, Tag("fixed")]
    | Annotated[Annotated[Distribution, Field(discriminator="type")], Tag("distribution")],
    Discriminator(lambda value: "distribution" if isinstance(value, Mapping | BaseModel)
                  else "fixed")]
PerStage = Annotated[
    Annotated[Parameter, Tag("shared")] | Annotated[tuple[Parameter, ...], Tag("per_stage")],
    Discriminator(lambda value: "per_stage" if isinstance(value, list | tuple) else "shared")]


class Parameters(Section):
    """What a trial draws; whatever is left out comes from the base preset and ``train``."""

    threshold: Parameter | None = Field(None, description="channels from which a stage is "
                                        "harmonic ('inf': all dense)")
    num_stages: Parameter | None = Field(None, description="stages in the network")
    dense_reduction: Parameter | None = Field(None, description="dense transition rate")
    harmonic_reduction: Parameter | None = Field(None, description="harmonic transition rate")
    stem: Parameter | None = Field(None, description=f"a stem style: {', '.join(STEM_STYLES)}")
    lr: Parameter | None = Field(None, description="the learning rate")
    batch_size: Parameter | None = Field(None, description="the training batch size")
    depth: PerStage | None = Field(None, description="layers per block; a list: per stage")
    growth: PerStage | None = Field(None, description="growth rate; a list: per stage")
    multiplier: PerStage | None = Field(None, description="HarDNet's m; a list: per stage")

    def given(self) -> dict[str, Any]:
        """The parameters the space names, in file order."""
        return {name: getattr(self, name) for name in type(self).model_fields
                if getattr(self, name) is not None}
