"""Confirmation-test helpers: pairs and records made by hand."""

from threshsearch.confirm.records import Pair, finish_record, start_record

KEY = "the search's recipe"


def pair(network: str, seed: int, config_hash: str = "h") -> Pair:
    trial = None if not network.startswith("trial ") else int(network.split()[1])
    return Pair(network, trial, None if trial is not None else network, config_hash,
                {"stem": "cifar"}, {"epochs": 1}, seed)


def add_record(confirm, item: Pair, accuracy: float | None, key: str = KEY,
               costs: dict | None = None) -> None:
    """A finished record: COMPLETE with ``accuracy``, FAIL when it is None."""
    record = start_record(confirm, item, key, "synthetic")
    result = ({"failed": "out of memory"} if accuracy is None else
              {"test_accuracy": accuracy, "val_accuracy": accuracy, **(costs or {})})
    finish_record(record, result, 1.0)
