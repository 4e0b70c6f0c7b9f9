"""One pair's training on a worker, without Ray."""

from tests.helpers import TINY
from threshsearch.confirm.pair import confirm_pair
from threshsearch.data import synthetic

SPEC = {"architecture": TINY, "recipe": {"epochs": 2, "batch_size": 50}, "seed": 3,
        "device": "cpu", "measurement": {"min_passes": 5, "max_time_s": 0.5,
                                         "min_time_s": 0.01}, "latency_batch_size": 1}


def test_a_pair_is_trained_tested_and_timed():
    result = confirm_pair(SPEC, synthetic(train=200, val=100, test=100))
    assert result["epochs"] == 2
    assert 0 <= result["test_accuracy"] <= 1 and 0 <= result["val_accuracy"] <= 1
    assert result["params"] > 0 and result["latency_ms"] > 0
    assert result["latency"]["measurement"].startswith("confirmation")
    # the same seed trains the same network
    again = confirm_pair(SPEC, synthetic(train=200, val=100, test=100))
    assert again["test_accuracy"] == result["test_accuracy"]


def test_a_pair_that_cannot_train_says_why():
    broken = {**SPEC, "architecture": {**TINY, "stem": "no-such-stem"}}
    result = confirm_pair(broken, synthetic(train=50, val=20, test=20))
    assert "failed" in result and "ConfigError" in result["failed"]
