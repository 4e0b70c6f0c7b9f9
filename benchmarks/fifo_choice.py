"""What choosing the next trial costs Tune's driver as a run grows: Tune's FIFOScheduler
(every trial of the run read at each choice) against this project's LiveFIFOScheduler (the
trials not yet ended), after a simulated run of N trials with 64 running at a time, as Ray
Tune's loop calls it (no trial pending: the common case between trials).

    python -m benchmarks.fifo_choice                 # 1,000, 5,000 and 10,000 trials, seconds
"""

from __future__ import annotations

import argparse
import timeit
from types import SimpleNamespace

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from threshsearch.search.schedulers import LiveFIFOScheduler


class _Trial:
    """What the choice reads of a trial: its status."""

    def __init__(self) -> None:
        self.status = Trial.RUNNING


def simulated_run(trials: int, running: int) -> tuple[SimpleNamespace, LiveFIFOScheduler]:
    """A controller of ``trials`` trials added one by one, the oldest running one ended as
    each is added past ``running``, and a LiveFIFOScheduler that saw it all, asked after each
    addition as Tune's loop asks."""
    added: list[_Trial] = []
    controller = SimpleNamespace(get_trials=lambda: added)
    scheduler = LiveFIFOScheduler()
    for index in range(trials):
        added.append(_Trial())
        scheduler.on_trial_add(controller, added[-1])
        if index >= running:
            added[index - running].status = Trial.TERMINATED
        scheduler.choose_trial_to_run(controller)
    return controller, scheduler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--running", type=int, default=64)
    args = parser.parse_args()
    print("| trials in the run | FIFOScheduler, µs a choice | LiveFIFOScheduler, µs a choice |")
    print("|---|---|---|")
    for trials in args.trials:
        controller, live = simulated_run(trials, args.running)
        costs = [min(timeit.repeat(lambda s=scheduler, c=controller: s.choose_trial_to_run(c),
                                   number=200, repeat=5)) / 200 * 1e6
                 for scheduler in (FIFOScheduler(), live)]
        print(f"| {trials:,} | {costs[0]:.1f} | {costs[1]:.1f} |")


if __name__ == "__main__":
    main()
