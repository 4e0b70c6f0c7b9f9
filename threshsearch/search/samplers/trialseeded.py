"""A sampler whose every trial's draw is seeded by the study's seed and the trial's number,
not by the draws its driver made before.

Optuna seeds a sampler once, so two drivers of one study started with one seed (the same
space file, the natural way to add a driver) draw the same networks in the same order:
every start-up draw of the second repeats one of the first's, and a repeat trains nothing
(measured on two drivers of a PostgreSQL study: 4 to 5 of 7 to 9 trials were repeats).
Trials' numbers are the study's, one each, so seeded by their number two drivers' trials
draw apart, while one driver's study still draws the same from one seed to the next run.
A trial's draw no longer depends on how many random numbers its driver's earlier draws
used (a repeat's re-asks), but on the study it reads; GP's, past its start-up trials, also
on the kernel fit it carries from its driver's previous draw. Imports no Ray.
"""

from __future__ import annotations

import numpy as np
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from threshsearch.search.samplers.wrapping import WrappingSampler, seed_sampler


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial ``number``'s draw in a study seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeeded(WrappingSampler):
    """``model``, its random state seeded before each trial from ``seed`` and the trial's
    number (``trial_seed``)."""

    def __init__(self, model: BaseSampler, seed: int) -> None:
        super().__init__(model)
        self.seed = seed

    def __str__(self) -> str:
        return f"{self.model} (each trial's draw seeded by its number)"

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        seed_sampler(self.model, trial_seed(self.seed, trial.number))
        super().before_trial(study, trial)
