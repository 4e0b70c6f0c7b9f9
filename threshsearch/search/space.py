"""The search-space file: a validated YAML schema and the sampler that turns an Optuna trial
into an architecture config and a training recipe.

Every problem in a file is reported with its key path (``space.depth[2].high``), the bad value
and what would be valid. See ``search_spaces/default.yaml`` for a documented example.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna

from threshsearch.config import (
    STEM_STYLES,
    ArchitectureConfig,
    ConfigError,
    read_structured_file,
)
from threshsearch.data import DATASETS, INPUT_SIZE, DataError, num_classes
from threshsearch.folders import MAX_IMAGE_PIXELS, MAX_TEST_FRACTION
from threshsearch.measure import DEVICES
from threshsearch.presets import PRESETS, get_preset
from threshsearch.search.baselines import parse_baselines
from threshsearch.search.objectives import CHEAP_METRICS, METRICS
from threshsearch.search.samplers import (
    SamplerChoice,
    SamplerSpec,
    choose_sampler,
    parse_sampler,
)
from threshsearch.train import DEFAULT_RECIPE, RECIPES, Recipe, RecipeError
from threshsearch.validation import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    is_int,
    is_number,
    join_path,
    parse_fields,
    show,
    unknown_key_message,
)

DIRECTIONS = ("maximize", "minimize")
EARLY_STOPPING = ("pareto", "asha", "none")
STAGE_PARAMETERS = ("depth", "growth", "multiplier")
GLOBAL_PARAMETERS = ("threshold", "num_stages", "dense_reduction", "harmonic_reduction", "stem",
                     "lr", "batch_size")
PARAMETERS = GLOBAL_PARAMETERS + STAGE_PARAMETERS
DISTRIBUTION_TYPES = ("int", "float", "categorical")


class SpaceError(ConfigError):
    """An invalid search-space file."""


# ------------------------------------------------------------------- the schema
@dataclass(frozen=True)
class StudySettings:
    name: str = "threshsearch"
    storage: str | None = None  # an Optuna storage URL; None: SQLite under studies/<name>/
    sampler: SamplerSpec | Any = "auto"  # a name or mapping, parsed into a SamplerSpec
    seed: int | None = 0
    n_trials: int = 20
    timeout_s: float | None = None
    concurrency: int = 1
    heartbeat_s: int = 5  # how often a running trial is marked alive in the storage
    grace_s: int = 20  # a running trial silent this long belonged to a dead driver


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str | None = None  # default: the metric's natural direction


@dataclass(frozen=True)
class Constraint:
    metric: str
    max: float | None = None
    min: float | None = None


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


@dataclass(frozen=True)
class DataSettings:
    dataset: str = "cifar10"
    root: str = "data"
    device: str = "auto"
    latency_batch_size: int = 1
    ship: bool = True  # the driver ships the prepared dataset to the workers (Ray's object
    # store); false: every node reads data.root itself
    test_fraction: float = 0.0  # folder without test/: share of each class held out as test
    max_image_pixels: int = MAX_IMAGE_PIXELS  # folder: larger images are skipped, unread


@dataclass(frozen=True)
class Measurement:
    """How latency is measured (see ``threshsearch.latency``)."""

    min_passes: int = 20  # timed passes in the first round; rounds double until it settles
    max_time_s: float = 2.0  # per network: the passes stop here, settled or not
    min_time_s: float = 0.25  # per network: the passes never settle sooner
    tolerance: float = 0.02  # settled: the estimate moved less than this between rounds
    exclusive: bool = True  # measure with the device to itself (other trials pause)
    retime_front: bool = True  # time the front again, one network at a time, at the end

    def for_trials(self) -> dict[str, Any]:
        """What a worker's measurement takes (``LatencySettings`` fields and exclusive)."""
        return {"min_passes": self.min_passes, "max_time_s": self.max_time_s,
                "min_time_s": self.min_time_s, "tolerance": self.tolerance,
                "exclusive": self.exclusive}


@dataclass(frozen=True)
class EarlyStopping:
    kind: str | None = None  # None: pareto for several objectives, asha for one
    grace_epochs: int = 1
    reduction_factor: int = 2


@dataclass(frozen=True)
class Resources:
    cpus: float = 1
    gpus: float = 0


@dataclass(frozen=True)
class Distribution:
    """One searched parameter: int or float in [low, high] (``step``, ``log``), or a
    categorical ``choices`` list."""

    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        if self.type == "float":
            value = trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)
            # A stepped grid is low + k * step in binary floating point: 1.5999999999999999
            # for 1.6. Rounding keeps configs (and their files) readable.
            return round(value, 10) if self.step else value
        return trial.suggest_categorical(name, list(self.choices))


Parameter = Distribution | list[Distribution | Any] | Any


@dataclass(frozen=True)
class SearchSpace:
    study: StudySettings
    objectives: tuple[Objective, ...]
    base: str
    data: DataSettings = field(default_factory=DataSettings)
    recipe: str | None = None
    train: Recipe = field(default_factory=Recipe)
    constraints: tuple[Constraint, ...] = ()
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    measurement: Measurement = field(default_factory=Measurement)
    resources: Resources = field(default_factory=Resources)
    parameters: dict[str, Parameter] = field(default_factory=dict)
    baselines: tuple[str, ...] = ()  # presets trained beside the search, as reference points
    source: Path | None = None

    # ------------------------------------------------------------ derived
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
    def measures_latency(self) -> bool:
        """Whether an objective or a constraint is measured latency: trials of a study that
        asks for none measure none (and take no device lock)."""
        return any(metric == "latency_ms" for metric in
                   [*self.metric_names, *(c.metric for c in self.constraints)])

    @property
    def directions(self) -> list[str]:
        return [objective.direction or METRICS[objective.metric].direction
                for objective in self.objectives]

    @property
    def sampler_choice(self) -> SamplerChoice:
        """The sampler this study runs with (``auto`` resolved from the budget)."""
        return choose_sampler(self.study.sampler, len(self.objectives), self.study.n_trials,
                              self.study.concurrency)

    @property
    def num_classes(self) -> int:
        return num_classes(self.data.dataset, self.data.root)

    # ------------------------------------------------------------ sampling
    def _value(self, trial: optuna.Trial, name: str, default: Any, stage: int | None = None
               ) -> Any:
        parameter = self.parameters.get(name)
        if parameter is None:
            return default
        if isinstance(parameter, list):
            parameter = parameter[stage]
            name = f"{name}_{stage + 1}"
        return parameter.suggest(trial, name) if isinstance(parameter, Distribution) \
            else parameter

    def sample(self, trial: optuna.Trial) -> tuple[ArchitectureConfig, Recipe]:
        """Draw one architecture and recipe. Whatever the space leaves out comes from the
        base preset and the ``train`` section. Raises ConfigError for an unbuildable draw."""
        base = get_preset(self.base, self.num_classes)
        count = self._value(trial, "num_stages", len(base.stages))
        # Explicit transition widths belong to the base's own stage shapes; once rates or
        # stage counts are searched, widths follow from the rates instead.
        derive_widths = count != len(base.stages) or any(
            name in self.parameters for name in ("dense_reduction", "harmonic_reduction"))
        stages = []
        for index in range(count):
            template = base.stages[min(index, len(base.stages) - 1)]
            changes = {name: self._value(trial, name, getattr(template, name), index)
                       for name in STAGE_PARAMETERS}
            if derive_widths:
                changes["transition_width"] = None
            if index >= len(base.stages):
                changes["downsample"] = False
            stages.append(replace(template, **changes))
        stem = self._value(trial, "stem", None)
        threshold = self._value(trial, "threshold", base.threshold)
        config = ArchitectureConfig(
            stem=STEM_STYLES[stem] if stem else base.stem,
            stages=tuple(stages),
            threshold=math.inf if threshold == "inf" else threshold,
            dense_reduction=self._value(trial, "dense_reduction", base.dense_reduction),
            harmonic_reduction=self._value(trial, "harmonic_reduction",
                                           base.harmonic_reduction),
            activation=base.activation, dropout=base.dropout, head_norm=base.head_norm,
            num_classes=base.num_classes,
        )
        recipe = self.train.override(lr=self._value(trial, "lr", None),
                                     batch_size=self._value(trial, "batch_size", None))
        return config, recipe

    # ------------------------------------------------------------- loading
    @classmethod
    def from_dict(cls, data: Any, source: Path | None = None) -> SearchSpace:
        problems: list[str] = []
        values = _parse_top(data, problems)
        if problems:
            raise SpaceError(problems)
        try:
            space = cls(**values, source=source)
        except ConfigError as error:
            raise SpaceError(error.problems) from None
        _check_sample(space, problems)
        if problems:
            raise SpaceError(problems)
        return space


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space file; errors name the file and the key path."""
    path = Path(path)
    try:
        return SearchSpace.from_dict(read_structured_file(path), source=path)
    except ConfigError as error:
        text = str(error)
        raise SpaceError(text if text.startswith(str(path)) else f"{path}: {text}") from None


# ------------------------------------------------------------------- parsing
_TOP_KEYS = ("study", "objectives", "constraints", "data", "measurement", "train",
             "early_stopping", "resources", "base", "baselines", "space")


def _section(data: dict, key: str, cls: type, problems: list[str]) -> Any:
    if key not in data or data[key] is None:
        return cls()
    values = parse_fields(data[key], cls, key, problems)
    if values is None:
        return cls()
    return cls(**values)


def _parse_top(data: Any, problems: list[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        problems.append(f"search space: expected a mapping with keys {', '.join(_TOP_KEYS)}, "
                        f"got {show(data)}")
        return {}
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(unknown_key_message("", key, list(_TOP_KEYS)))
    study = _section(data, "study", StudySettings, problems)
    study = replace(study, sampler=parse_sampler(study.sampler, "study.sampler", problems))
    _check_study(study, problems)
    data_settings = _section(data, "data", DataSettings, problems)
    _check_data(data_settings, problems)
    measurement = _section(data, "measurement", Measurement, problems)
    check_int(problems, "measurement.min_passes", measurement.min_passes, 1, 100_000)
    check_number(problems, "measurement.max_time_s", measurement.max_time_s, 0, 3600,
                 low_inclusive=False)
    if is_number(measurement.max_time_s):
        check_number(problems, "measurement.min_time_s", measurement.min_time_s, 0,
                     measurement.max_time_s)
    check_number(problems, "measurement.tolerance", measurement.tolerance, 0, 1,
                 low_inclusive=False, high_inclusive=False)
    check_bool(problems, "measurement.exclusive", measurement.exclusive)
    check_bool(problems, "measurement.retime_front", measurement.retime_front)
    objectives = _parse_objectives(data.get("objectives"), problems)
    resources = _section(data, "resources", Resources, problems)
    check_number(problems, "resources.cpus", resources.cpus, 0, 1024, low_inclusive=False)
    check_number(problems, "resources.gpus", resources.gpus, 0, 64)
    base = data.get("base", "threshnet79")
    check_choice(problems, "base", base, tuple(PRESETS))
    recipe_name, recipe = _parse_train(data.get("train"), data_settings, problems)
    early = _parse_early_stopping(data, objectives, recipe, problems)
    return {
        "study": study,
        "objectives": objectives,
        "constraints": _parse_constraints(data.get("constraints"), problems),
        "data": data_settings,
        "recipe": recipe_name,
        "train": recipe,
        "early_stopping": early,
        "measurement": measurement,
        "baselines": parse_baselines(data.get("baselines"), INPUT_SIZE, problems),
        "resources": resources,
        "base": base,
        "parameters": _parse_parameters(data.get("space"), problems),
    }


def _check_study(study: StudySettings, problems: list[str]) -> None:
    name = study.name
    if not isinstance(name, str) or not name or not all(
            c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        problems.append(f"study.name: {show(name)} is invalid; expected letters, digits, "
                        "'-', '_' or '.' (it names the folder studies/<name>/)")
    if study.storage is not None and (not isinstance(study.storage, str)
                                      or "://" not in study.storage):
        problems.append(f"study.storage: {show(study.storage)} is invalid; expected an Optuna "
                        "storage URL such as sqlite:///path/study.db or postgresql://...")
    if study.seed is not None:
        check_int(problems, "study.seed", study.seed, 0, 2**32 - 1)
    check_int(problems, "study.n_trials", study.n_trials, 1, 1_000_000)
    if study.timeout_s is not None:
        check_number(problems, "study.timeout_s", study.timeout_s, 0, 10**8, low_inclusive=False)
    check_int(problems, "study.concurrency", study.concurrency, 1, 4096)
    check_int(problems, "study.heartbeat_s", study.heartbeat_s, 1, 3600)
    check_int(problems, "study.grace_s", study.grace_s, 2, 86_400)
    if not problems and study.grace_s <= study.heartbeat_s:
        problems.append(f"study.grace_s: {study.grace_s} is invalid; expected more than "
                        f"study.heartbeat_s ({study.heartbeat_s})")


def _parse_early_stopping(data: dict, objectives: tuple[Objective, ...], recipe: Recipe,
                          problems: list[str]) -> EarlyStopping:
    early = _section(data, "early_stopping", EarlyStopping, problems)
    if early.kind is None:
        early = replace(early, kind="pareto" if len(objectives) > 1 else "asha")
    check_choice(problems, "early_stopping.kind", early.kind, EARLY_STOPPING)
    check_int(problems, "early_stopping.grace_epochs", early.grace_epochs, 1, 100_000)
    check_int(problems, "early_stopping.reduction_factor", early.reduction_factor, 2, 100)
    if (early.kind != "none" and is_int(early.grace_epochs) and is_int(recipe.epochs)
            and early.grace_epochs >= recipe.epochs):
        problems.append(f"early_stopping.grace_epochs: {early.grace_epochs} is invalid; "
                        f"expected fewer than train.epochs ({recipe.epochs}), or "
                        f"early_stopping.kind: none")
    return early


def _check_data(data: DataSettings, problems: list[str]) -> None:
    check_choice(problems, "data.dataset", data.dataset, DATASETS)
    if not isinstance(data.root, str):
        problems.append(f"data.root: {show(data.root)} is invalid; expected a folder path")
    elif data.dataset == "folder":
        try:
            num_classes("folder", data.root)
        except DataError as error:
            problems.append(f"data.root: {error}")
    check_choice(problems, "data.device", data.device, DEVICES)
    check_int(problems, "data.latency_batch_size", data.latency_batch_size, 1, 4096)
    check_bool(problems, "data.ship", data.ship)
    check_number(problems, "data.test_fraction", data.test_fraction, 0, MAX_TEST_FRACTION,
                 high_inclusive=False)
    if data.test_fraction and data.dataset != "folder":
        problems.append(f"data.test_fraction: {show(data.test_fraction)} is invalid for "
                        f"dataset {show(data.dataset)}, which has a test split; expected 0")
    check_int(problems, "data.max_image_pixels", data.max_image_pixels, 1, 10**12)


def _parse_train(data: Any, data_settings: DataSettings, problems: list[str]
                 ) -> tuple[str | None, Recipe]:
    data = {} if data is None else data
    if not isinstance(data, dict):
        problems.append(f"train: expected a mapping of a recipe name and recipe fields, "
                        f"got {show(data)}")
        return None, Recipe()
    data = dict(data)
    name = data.pop("recipe", None)
    dataset = data_settings.dataset
    default = DEFAULT_RECIPE.get(dataset, "cifar10") if isinstance(dataset, str) else "cifar10"
    if name is not None and not (isinstance(name, str) and name in RECIPES):
        problems.append(f"train.recipe: {show(name)} is invalid; expected one of "
                        f"{', '.join(RECIPES)}")
        name = None
    try:
        return name, Recipe.from_dict(data, path="train", base=RECIPES[name or default])
    except RecipeError as error:
        problems.extend(str(error).split("; "))
        return name, Recipe()


def _metric_records(items: list[Any], cls: type, key: str, problems: list[str]
                    ) -> Iterator[tuple[str, Any]]:
    """(key path, record) for each entry of a list of ``{metric, ...}`` records that has the
    fields of ``cls``; ``parse_fields`` has already reported what is wrong with the others."""
    for index, item in enumerate(items):
        path = f"{key}[{index}]"
        values = parse_fields(item, cls, path, problems)
        if values is not None and "metric" in values:
            yield path, cls(**values)


def _parse_objectives(data: Any, problems: list[str]) -> tuple[Objective, ...]:
    if not isinstance(data, list) or not data:
        problems.append(f"objectives: {show(data)} is invalid; expected a non-empty list of "
                        f"{{metric, direction}} with metrics from {', '.join(METRICS)}")
        return ()
    objectives = []
    for path, objective in _metric_records(data, Objective, "objectives", problems):
        valid = check_choice(problems, f"{path}.metric", objective.metric, tuple(METRICS))
        if objective.direction is not None:
            valid &= check_choice(problems, f"{path}.direction", objective.direction,
                                  DIRECTIONS)
        if valid:
            objectives.append(objective)
    names = [objective.metric for objective in objectives]
    if len(set(names)) != len(names):
        problems.append(f"objectives: {names} names a metric twice; expected each once")
    return tuple(objectives)


def _parse_constraints(data: Any, problems: list[str]) -> tuple[Constraint, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        problems.append(f"constraints: {show(data)} is invalid; expected a list of "
                        "{metric, max and/or min}")
        return ()
    constraints = []
    for path, constraint in _metric_records(data, Constraint, "constraints", problems):
        if not check_choice(problems, f"{path}.metric", constraint.metric, CHEAP_METRICS):
            continue
        if constraint.max is None and constraint.min is None:
            problems.append(f"{path}: no bound; expected max, min or both")
        for bound in ("max", "min"):
            value = getattr(constraint, bound)
            if value is not None and (not is_number(value) or math.isinf(value)):
                problems.append(f"{path}.{bound}: {show(value)} is invalid; expected a number")
        constraints.append(constraint)
    return tuple(constraints)


def _parse_distribution(data: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        if isinstance(data, bool | int | float | str) and not (
                isinstance(data, float) and math.isnan(data)):
            return data  # a fixed value
        problems.append(f"{path}: {show(data)} is invalid; expected a number, a string or a "
                        "distribution {type: int|float|categorical, ...}")
        return None
    values = parse_fields(data, Distribution, path, problems)
    if values is None:
        return None
    kind = values.get("type")
    if kind not in DISTRIBUTION_TYPES:
        problems.append(f"{path}.type: {show(kind)} is invalid; expected one of "
                        f"{', '.join(DISTRIBUTION_TYPES)}")
        return None
    if kind == "categorical":
        choices = values.get("choices")
        if not isinstance(choices, list) or not choices or not all(
                isinstance(choice, bool | int | float | str) for choice in choices):
            problems.append(f"{path}.choices: {show(choices)} is invalid; expected a non-empty "
                            "list of numbers or strings")
            return None
        return Distribution("categorical", choices=tuple(choices))
    low, high = values.get("low"), values.get("high")
    number = (lambda v: isinstance(v, int) and not isinstance(v, bool)) if kind == "int" \
        else is_number
    valid = True
    for key, value in (("low", low), ("high", high)):
        if not number(value) or math.isinf(value):
            problems.append(f"{path}.{key}: {show(value)} is invalid; expected a finite "
                            f"{'integer' if kind == 'int' else 'number'}")
            valid = False
    if valid and low > high:
        problems.append(f"{path}: low {low} > high {high}; expected low <= high")
        valid = False
    step, log = values.get("step"), values.get("log", False)
    if step is not None and (not number(step) or step <= 0):
        problems.append(f"{path}.step: {show(step)} is invalid; expected a positive number")
        valid = False
    if not isinstance(log, bool):
        problems.append(f"{path}.log: {show(log)} is invalid; expected true or false")
        valid = False
    elif log and (step is not None or (valid and low <= 0)):
        problems.append(f"{path}.log: a log scale needs low > 0 and no step")
        valid = False
    return Distribution(kind, low, high, step, log) if valid else None


def _parse_parameters(data: Any, problems: list[str]) -> dict[str, Parameter]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"space: expected a mapping of parameters ({', '.join(PARAMETERS)}), "
                        f"got {show(data)}")
        return {}
    parameters: dict[str, Parameter] = {}
    for name, spec in data.items():
        path = join_path("space", str(name))
        if name not in PARAMETERS:
            problems.append(unknown_key_message("space", name, list(PARAMETERS)))
        elif isinstance(spec, list) and name in STAGE_PARAMETERS:
            parameters[name] = [_parse_distribution(item, f"{path}[{index}]", problems)
                                for index, item in enumerate(spec)]
        else:
            parameters[name] = _parse_distribution(spec, path, problems)
    return parameters


def _check_sample(space: SearchSpace, problems: list[str]) -> None:
    """Stage lists must cover the largest stage count; stems must be known styles."""
    stages = space.parameters.get("num_stages")
    if isinstance(stages, Distribution):
        most = int(stages.high) if stages.type != "categorical" else max(stages.choices)
    else:
        most = stages if isinstance(stages, int) else len(get_preset(space.base).stages)
    for name in STAGE_PARAMETERS:
        value = space.parameters.get(name)
        if isinstance(value, list) and len(value) < most:
            problems.append(f"space.{name}: {len(value)} per-stage entries for up to {most} "
                            f"stages; expected one value for all stages or at least {most}")
    stem = space.parameters.get("stem")
    choices = stem.choices if isinstance(stem, Distribution) else (stem,) if stem else ()
    for choice in choices:
        if choice not in STEM_STYLES:
            problems.append(f"space.stem: {show(choice)} is invalid; expected one of "
                            f"{', '.join(STEM_STYLES)}")
