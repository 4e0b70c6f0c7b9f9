"""The search run: open the study, start or join Ray, run the trials under Ray Tune with the
study's searcher and early stopping, re-time the front.

The searcher (``search/searcher.py``), the cluster checks (``search/cluster.py``), the
progress printer (``search/progress.py``) and what Tune may forget of an ended trial
(``search/endedtrials.py``) are rooms of their own; this module only puts them
together. Importing it does not import Ray.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna

from threshsearch.data import ImageDataset, load_dataset
from threshsearch.folders import skipped_summary
from threshsearch.search.baselines import open_baselines_study
from threshsearch.search.cluster import check_cluster, quiet_ray, ray_session
from threshsearch.search.pricing import models_this_device, priced_space, record_device_model
from threshsearch.search.progress import Progress
from threshsearch.search.retime import retime_front
from threshsearch.search.space import RECIPE_PARAMETERS, SearchSpace, SpaceError
from threshsearch.search.storage import open_storage
from threshsearch.search.studycache import CachedStudyStorage
from threshsearch.search.trial import ShippedData, ray_trainable
from threshsearch.search.worktime import WorkTally


def open_study(space: SearchSpace) -> optuna.Study:
    """Create or load the space's study, with its objective names set for the dashboard."""
    storage = CachedStudyStorage(open_storage(space.storage_url, space.study.heartbeat_s,
                                              space.study.grace_s))
    directions = space.directions
    choice = space.sampler_choice
    study = optuna.create_study(
        study_name=space.study.name, storage=storage, directions=directions,
        sampler=choice.build(space.study.seed, keep=RECIPE_PARAMETERS,
                             identity=space.network_of),
        load_if_exists=True,
    )
    stored = [direction.name.lower() for direction in study.directions]
    if stored != directions:
        raise SpaceError(f"objectives: study {space.study.name!r} in {space.storage_url} "
                         f"has {len(stored)} objectives ({', '.join(stored)}); this space "
                         f"asks for {', '.join(directions)}; use another study.name")
    names = study.metric_names
    if names is None:
        study.set_metric_names(space.metric_names)
    elif list(names) != space.metric_names:
        raise SpaceError(f"objectives: study {space.study.name!r} optimises "
                         f"{', '.join(names)}; this space asks for "
                         f"{', '.join(space.metric_names)}; use another study.name")
    stored = study.user_attrs.get("measurement")
    before = (stored or {}).get("cuda_graph", False)
    if stored is not None and space.measures_latency and before != space.measurement.cuda_graph:
        raise SpaceError(f"measurement.cuda_graph: study {space.study.name!r} measured "
                         f"latency_ms {'as CUDA graph replays' if before else 'eagerly'}; "
                         f"this space asks for {str(space.measurement.cuda_graph).lower()}, "
                         f"which would put both on one axis; use {str(before).lower()} or "
                         f"another study.name")
    # What an exported result needs besides the trial: how its data was set up.
    study.set_user_attr("data", {"dataset": space.data.dataset, "root": space.data.root,
                                 "test_fraction": space.data.test_fraction,
                                 "max_image_pixels": space.data.max_image_pixels,
                                 "num_classes": space.num_classes,
                                 "device": space.data.device,
                                 "latency_batch_size": space.data.latency_batch_size})
    study.set_user_attr("base", space.base)
    # What `threshsearch confirm` needs from the storage alone: the seed its seeds derive
    # from, and the recipe baselines train under.
    study.set_user_attr("seed", space.study.seed or 0)
    study.set_user_attr("recipe", space.train.to_dict())
    # What re-timing the front needs, so that `threshsearch retime` works from the storage.
    study.set_user_attr("measurement", space.measurement.for_trials())
    study.set_user_attr("resources", space.resources.model_dump())
    study.set_user_attr("sampler", {"kind": choice.kind, "settings": choice.settings,
                                    "reason": choice.reason})
    record_device_model(study, space)
    return study


SKIPPED_LIST = "skipped-files.txt"  # under the study folder: what the data folder did not read


def announce_dataset(space: SearchSpace, dataset: ImageDataset, quiet: bool) -> None:
    """Say at the start of a run what the data folder did not read (every entry listed in
    the study folder) and when the test split is the validation split."""
    listing = space.study_dir / SKIPPED_LIST
    listing.unlink(missing_ok=True)  # an earlier run's list, of a folder since mended
    if dataset.skipped:
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{item}\n" for item in dataset.skipped))
        if not quiet:
            print(f"data: {skipped_summary(dataset.skipped)}; every one listed in {listing}")
    if dataset.test_is_validation and not quiet:
        print(f"data: the test split is {dataset.test_split}; set data.test_fraction to "
              f"hold out a test split")


@dataclass
class SearchSummary:
    study: optuna.Study
    trials: int  # the trials the budget counts
    wall_s: float
    work: WorkTally  # where the workers' time went in this run, trials and baselines
    baselines_trained: int = 0
    baselines_s: float = 0.0  # compute seconds the baselines took this run
    exhausted: str | None = None  # why the search ended before its budget: the space tried
    repeats: int = 0  # draws of a network already tried, outside the budget


def run_search(space: SearchSpace, address: str | None = None, quiet: bool = False,
               trainable: Callable[..., None] = ray_trainable) -> SearchSummary:
    """Run (or resume) the study a space describes, on a local Ray or the cluster at
    ``address``. Returns when the trial budget or time budget is used up. The study in the
    storage is not touched before Ray is reached and the cluster can run the trials.
    ``trainable``: what a trial runs, ``trial.ray_trainable`` (training) unless a benchmark
    or test of the driver passes ``surrogate.surrogate_trainable``'s model instead."""
    quiet_ray()
    import ray
    from ray import tune

    from threshsearch.search.endedtrials import ShedEndedTrials, SilentTrialProgress
    from threshsearch.search.schedulers import make_early_stopper
    from threshsearch.search.searcher import StudySearcher

    # Fail fast on the driver (missing dataset files, bad root) before any worker starts.
    dataset = load_dataset(space.data.dataset, space.data.root, "cpu",
                           test_fraction=space.data.test_fraction,
                           max_pixels=space.data.max_image_pixels)
    announce_dataset(space, dataset, quiet)
    searcher = None
    with ray_session(address):
        try:
            check_cluster(space, dataset, f"the Ray cluster at {address}" if address
                          else "this machine's Ray")
            space = priced_space(space, dataset.input_size, quiet)
            study = open_study(space)
            study.set_user_attr("test_split", dataset.test_split)
            progress = Progress(space, quiet)
            # The rungs start from every epoch already in the storage: a resumed study prunes
            # on the same evidence as one that was never interrupted.
            stopper = make_early_stopper(space, study.get_trials(deepcopy=False))
            if stopper.evidence and not quiet:
                print(f"early stopping resumes with {stopper.evidence} rung records from the "
                      f"storage")
            companion = (open_baselines_study(study, space.metric_names, space.directions)
                         if space.baselines else None)
            searcher = StudySearcher(space, study, dataset.input_size, progress,
                                     stopper.stop_reasons, companion)
            queued = len(searcher.baseline_queue)
            if space.baselines and not quiet:
                print(f"baselines {', '.join(space.baselines)}: {queued} to train first, under "
                      f"the study's recipe, {len(space.baselines) - queued} already trained "
                      f"or training under another driver")
            if space.data.ship:
                # Once, from the driver: workers fetch it by reference and keep it on their
                # device between trials; they need no copy of the data of their own.
                shipped = ShippedData(f"{dataset.name}-{uuid.uuid4().hex[:12]}", ray.put(dataset))
                trainable = tune.with_parameters(trainable, data=shipped)
            trainable = tune.with_resources(trainable, {"cpu": space.resources.cpus,
                                                        "gpu": space.resources.gpus})
            experiment = Path(space.study_dir / "ray").resolve()
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=searcher, scheduler=stopper.scheduler,
                                            num_samples=-1,
                                            max_concurrent_trials=space.study.concurrency,
                                            reuse_actors=True,
                                            time_budget_s=space.study.timeout_s),
                run_config=tune.RunConfig(name=f"run-{time.strftime('%Y%m%d-%H%M%S')}",
                                          storage_path=str(experiment), verbose=0,
                                          failure_config=tune.FailureConfig(max_failures=1),
                                          callbacks=[ShedEndedTrials(),
                                                     SilentTrialProgress()]),
            )
            start = time.perf_counter()
            tuner.fit()
            # Before the front is re-timed: a cut trial's slot ends when the run did.
            searcher.end_cut_trials()
            model = space.device_model
            if space.measurement.retime_front and space.measures_latency:
                retime_front(study, dataset.input_size, quiet)
            elif (space.measurement.retime_front and model is not None and address is None
                  and models_this_device(model, space.data.device)):
                # Predicted for this very device (a local run's workers are this machine):
                # measure the front for real, with the model's settings.
                retime_front(study, dataset.input_size, quiet, threads=model.data.settings.threads,
                             device_model=model.model_id)
        finally:
            if searcher is not None:
                try:
                    searcher.end_cut_trials()
                except Exception as error:  # the storage failing: the run's own error stands
                    print(f"warning: the trials cut short could not be ended in the storage "
                          f"({type(error).__name__}: {error}); a later run's stale check "
                          f"fails them and queues them again", flush=True)
                finally:
                    searcher.close()
    searcher.index.refresh()
    counts = searcher.index.counts()
    return SearchSummary(study, counts.finished, time.perf_counter() - start, searcher.work,
                         queued, searcher.baseline_s, searcher.exhausted, counts.repeats)


def with_overrides(space: SearchSpace, storage: str | None = None,
                   n_trials: int | None = None) -> SearchSpace:
    """The space with the CLI's --storage and --n-trials applied."""
    study = space.study
    if storage is not None:
        study = study.replace(storage=storage)
    if n_trials is not None:
        if n_trials < 1:
            raise SpaceError(f"--n-trials: {n_trials} is invalid; expected an integer >= 1")
        study = study.replace(n_trials=n_trials)
    return space.replace(study=study)
