"""The fifo-choice benchmark's simulated run: as many trials as asked, the given number still
running, and the live scheduler holding only those."""

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from benchmarks.fifo_choice import simulated_run


def test_a_simulated_run_ends_with_its_running_trials_alone_live():
    controller, live = simulated_run(300, 7)
    trials = controller.get_trials()
    assert len(trials) == 300
    assert [trial.status for trial in trials[-7:]] == [Trial.RUNNING] * 7
    assert {trial.status for trial in trials[:-7]} == {Trial.TERMINATED}
    # The run asked for a choice after each addition: the ended trials are gone already.
    assert list(live._live) == trials[-7:]
    assert live.choose_trial_to_run(controller) is FIFOScheduler().choose_trial_to_run(
        controller) is None
