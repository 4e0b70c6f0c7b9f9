"""The surrogate's fit recovers the landscape that made its curves: curves drawn from the
surrogate itself give back its coefficients and its noise components."""

import numpy as np
import pytest

from benchmarks.surrogate_fit import Curve, fit, one_per_training, size_table
from threshsearch.search import surrogate


def drawn_curves(networks: int = 600, repeats: tuple[float, ...] = (0.6, 0.2, 0.2),
                 epochs: int = 6) -> list[Curve]:
    """Curves of ``networks`` networks, each trained with k seeds with probability
    ``repeats[k - 1]`` (most once, as in a search)."""
    rng = np.random.default_rng(0)
    curves = []
    for number in range(networks):
        params = float(10 ** rng.uniform(4.4, 5.9))
        config_hash = f"{rng.integers(2**63):016x}"
        for seed in range(1 + int(rng.choice(len(repeats), p=repeats))):
            trial_seed = number * len(repeats) + seed
            curves.append(Curve(params, config_hash, trial_seed, 10, tuple(surrogate.curve(
                params, config_hash, 10, epochs, trial_seed))))
    return curves


def test_the_fit_gives_back_the_surrogates_own_landscape():
    curves = drawn_curves()
    result = fit(curves)
    assert result.coefficients == pytest.approx(
        (surrogate.INTERCEPT, surrogate.PER_LOG_PARAMS, surrogate.PER_LOG_EPOCH,
         surrogate.SMALL_NETWORK_SLOWDOWN, surrogate.LEVELLING), abs=0.15)
    assert result.within_var[4] == pytest.approx(surrogate.SEED_SD ** 2, rel=0.3)
    assert result.within_var[1] == pytest.approx(
        surrogate.SEED_SD ** 2 + surrogate.FIRST_EPOCH_SD ** 2, rel=0.3)
    assert result.between_var[6] == pytest.approx(surrogate.CONFIG_SD ** 2, rel=0.35)
    assert result.between_var[2] < result.between_var[6]
    assert result.seed_memory == pytest.approx(surrogate.SEED_MEMORY, abs=0.1)
    assert result.curves == len(curves) and result.points == 6 * len(curves)


def test_one_curve_is_kept_per_config_and_seed_the_longest():
    short = Curve(1e5, "a" * 16, 1, 10, (0.2, 0.5))
    long = Curve(1e5, "a" * 16, 1, 10, (0.2, 0.5, 0.7))
    other_seed = Curve(1e5, "a" * 16, 2, 10, (0.3,))
    kept = one_per_training([short, long, other_seed])
    assert sorted(kept, key=lambda c: c.seed) == [long, other_seed]


def test_the_size_table_compares_data_and_model_by_size_and_epoch():
    curves = drawn_curves(networks=60, repeats=(1.0,), epochs=3)
    text = size_table(curves, fit(curves), bins=3)
    lines = text.splitlines()
    assert lines[0] == "| params | epoch 1 | epoch 2 | epoch 3 |"
    assert len(lines) == 2 + 3 and all(line.count(" / ") == 3 for line in lines[2:])
