import pytest
import yaml

from tests.search.helpers import TINY_SPACE
from threshsearch.search.progress import Progress
from threshsearch.search.runner import open_study
from threshsearch.search.searcher import StudySearcher
from threshsearch.search.space import load_space
from threshsearch.search.trial import evaluate_candidate


@pytest.fixture(scope="package")
def offline_study(tmp_path_factory):
    """A study made by the real searcher and trial code, run in this process (no Ray):
    complete, infeasible and (simulated early-stopped) pruned trials."""
    folder = tmp_path_factory.mktemp("results")
    data = {**TINY_SPACE, "study": {**TINY_SPACE["study"], "n_trials": 7,
                                    "storage": f"sqlite:///{folder / 'study.db'}"},
            "objectives": [{"metric": "val_accuracy"}, {"metric": "memrw_mib"},
                           {"metric": "params"}],
            # a bound every trial meets: the trials measure latency, as the results show it
            "constraints": [*TINY_SPACE["constraints"], {"metric": "latency_ms", "max": 1e6}]}
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    space = load_space(path)
    study = open_study(space)
    stopped = {"t1": "stopped by asha on val_accuracy at the epoch-1 rung (simulated)"}
    searcher = StudySearcher(space, study, 32, Progress(space, quiet=True), stopped)
    try:
        for index in range(space.study.n_trials):
            trial_id = f"t{index}"
            spec = searcher.suggest(trial_id)
            if not isinstance(spec, dict):
                continue
            reports = []
            evaluate_candidate(spec, reports.append)
            if index == 1 and len(reports) > 1:
                reports = reports[:1]  # as if early stopping stopped it after epoch 1
            for report in reports:
                searcher.on_trial_result(trial_id, report)
            searcher.on_trial_complete(trial_id, reports[-1])
    finally:
        searcher.close()
    return space, study
