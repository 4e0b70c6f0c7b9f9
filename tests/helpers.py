"""Shared test data, the tests' shared local Ray, and a recorder of a study cache's
whole reads."""

TINY = {
    "stem": {"widths": [8], "kernel": 3, "stride": 1, "pool": False},
    "threshold": 16,
    "stages": [
        {"depth": 2, "growth": 4, "transition_width": 12},
        {"depth": 2, "growth": 6, "downsample": False},
    ],
    "num_classes": 10,
}


def ensure_local_ray() -> None:
    """A plain local Ray in this process, started by the first test that asks and kept for
    the module's next ones (``ray.init`` costs seconds and most of a GiB; tests/conftest.py
    shuts it down after the module). Four CPUs: the surrogate's
    run has four trials at a time; the others cap their own concurrency. A test that needs
    a cluster of its own shuts it down first (see ``two_nodes`` in tests/search); the next
    test that asks starts it again. A new instance of its own ("local"): a bare ``ray.init``
    joins any Ray already running on the machine (another test run's) or fails to."""
    import ray

    from threshsearch.search.cluster import connect_ray

    if not ray.is_initialized():
        connect_ray(None, num_cpus=4)


def whole_reads(storage, monkeypatch) -> list[list[int]]:
    """The trial ids (sorted) of each whole read that ``storage``'s backend makes from now
    on (Optuna's ``RDBStorage._get_trials``, which the driver's study cache reads through)."""
    reads: list[list[int]] = []
    read = storage._backend._get_trials

    def recording(study_id, states, included_trial_ids, trial_id_greater_than):
        trials = read(study_id, states, included_trial_ids, trial_id_greater_than)
        reads.append(sorted(t._trial_id for t in trials))
        return trials
    monkeypatch.setattr(storage._backend, "_get_trials", recording)
    return reads
