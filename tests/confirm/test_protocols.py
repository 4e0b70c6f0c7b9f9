"""Named protocols, their overrides, and the seeds a confirmation trains with."""

import optuna
import pytest

from threshsearch.confirm.protocols import (
    SEED_OFFSET,
    confirmation_seeds,
    get_protocol,
    study_seed,
)
from threshsearch.errors import UserError


def test_seeds_differ_from_the_search_and_grow_by_prefix():
    three = confirmation_seeds(7, 3)
    assert three == [7 + SEED_OFFSET, 8 + SEED_OFFSET, 9 + SEED_OFFSET]
    assert confirmation_seeds(7, 5)[:3] == three  # more seeds later: only the new ones
    # the search's seeds are the study's seed plus a trial number
    assert not set(three) & {7 + number for number in range(10_000)}


def test_study_seed_from_the_attribute_or_from_the_trials():
    study = optuna.create_study()
    for number in range(3):
        trial = study.ask()
        trial.set_user_attr("seed", 5 + number)
        study.tell(trial, 0.5)
    assert study_seed(study) == 5
    study.set_user_attr("seed", 9)
    assert study_seed(study) == 9


def test_paper_protocols_carry_the_paper_recipe_and_models():
    protocol = get_protocol("paper-cifar100", "cifar100")
    assert (protocol.recipe, protocol.dataset) == ("cifar100", "cifar100")
    assert protocol.baselines == ("threshnet79", "threshnet95", "hardnet68", "densenet121")
    assert protocol.key == "recipe cifar100"
    assert get_protocol("search", "digits").with_options(epochs=30).key == \
        "the search's recipe, 30 epochs"


@pytest.mark.parametrize(("name", "dataset", "options", "message"), [
    ("paper-svhn", "digits", {}, "--protocol: paper-svhn is for svhn"),
    ("nope", "digits", {}, "--protocol: 'nope' is not a protocol"),
    ("search", "digits", {"seeds": 0}, "--seeds: 0 is invalid"),
    ("search", "digits", {"epochs": 0}, "--epochs: 0 is invalid"),
    ("search", "digits", {"recipe": "fast"}, "--recipe: 'fast' is not a recipe"),
])
def test_bad_protocol_options_name_the_flag(name, dataset, options, message):
    with pytest.raises(UserError, match=message):
        get_protocol(name, dataset).with_options(**options)
