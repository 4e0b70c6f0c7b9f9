import re

import pytest
import torch

from threshsearch.data import synthetic
from threshsearch.errors import UserError
from threshsearch.nn import build_model
from threshsearch.train import (
    RECIPES,
    Recipe,
    RecipeError,
    Trainer,
    load_checkpoint,
    save_atomically,
    seed_everything,
)

# Enough data to learn from in three epochs, for the one test that asks for learning
# (more than the synthetic dataset's default, which is sized for smoke runs).
LEARNABLE = {"train": 600, "val": 200}
# Several batches of small images: what the other tests check (seeds, checkpoints, stops)
# does not depend on how much there is to learn, only on more than one batch an epoch.
FEW = {"size": 16, "train": 150, "val": 50, "test": 50}


def make_trainer(config, seed=0, data=FEW, **kwargs) -> Trainer:
    seed_everything(seed)
    recipe = kwargs.pop("recipe", Recipe(batch_size=50, epochs=3, lr=1e-2))
    return Trainer(build_model(config), synthetic(**data), recipe, seed=seed, **kwargs)


def test_the_papers_recipes():
    assert RECIPES["cifar10"] == Recipe(optimizer="adam", lr=1e-3, batch_size=100, epochs=300)
    assert RECIPES["svhn"].epochs == 60
    cifar100 = RECIPES["cifar100"]
    assert (cifar100.optimizer, cifar100.lr, cifar100.momentum, cifar100.nesterov) == (
        "sgd", 0.1, 0.9, True)
    assert (cifar100.milestones, cifar100.gamma, cifar100.weight_decay,
            cifar100.batch_size) == ((60, 120, 160), 0.2, 5e-4, 128)


def test_recipe_overrides_and_errors():
    recipe = RECIPES["cifar10"].override(epochs=5, lr=None)
    assert recipe.epochs == 5 and recipe.lr == 1e-3
    with pytest.raises(RecipeError, match=r"batch_size: 0 is invalid"):
        RECIPES["cifar10"].override(batch_size=0)
    with pytest.raises(RecipeError, match=r"train.lrr: unknown key; did you mean 'lr'"):
        Recipe.from_dict({"lrr": 0.1}, path="train")
    assert Recipe.from_dict({"schedule": "cosine", "milestones": [2]}).milestones == (2,)


def test_training_learns_and_reports_every_epoch(tiny_config):
    result = make_trainer(tiny_config, data=LEARNABLE).fit()
    assert result.status == "completed"
    assert [epoch.epoch for epoch in result.epochs] == [1, 2, 3]
    final = result.final
    assert final.val_accuracy > 0.5 and final.val_top5 >= final.val_accuracy
    assert final.images_per_s > 0 and final.epoch_time_s > 0


def test_same_seed_same_result(tiny_config):
    first = make_trainer(tiny_config, seed=3).fit(epochs=2)
    second = make_trainer(tiny_config, seed=3).fit(epochs=2)
    assert [e.val_loss for e in first.epochs] == [e.val_loss for e in second.epochs]
    other = make_trainer(tiny_config, seed=4).fit(epochs=2)
    assert [e.val_loss for e in other.epochs] != [e.val_loss for e in first.epochs]


def test_non_finite_loss_stops_with_a_reason(tiny_config):
    trainer = make_trainer(tiny_config, recipe=Recipe(batch_size=50, epochs=3))
    trainer.model.classifier.weight.data.fill_(float("nan"))
    result = trainer.fit()
    assert result.status == "diverged"
    assert "non-finite training loss" in result.reason
    assert result.epochs == []


def test_a_callback_can_stop_training(tiny_config):
    result = make_trainer(tiny_config).fit(callbacks=[lambda metrics: metrics.epoch >= 2])
    assert result.status == "stopped" and len(result.epochs) == 2


def test_resume_continues_exactly_where_it_stopped(tiny_config, tmp_path):
    straight = make_trainer(tiny_config).fit(epochs=3)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    make_trainer(tiny_config, checkpoint=checkpoint).fit(epochs=2)
    assert load_checkpoint(checkpoint)["epoch"] == 2
    resumed_trainer = make_trainer(tiny_config, seed=0, checkpoint=checkpoint)
    resumed = resumed_trainer.fit(epochs=3, resume=True)
    assert [e.epoch for e in resumed.epochs] == [1, 2, 3]
    assert resumed.final.val_loss == pytest.approx(straight.final.val_loss, rel=1e-5)


@pytest.mark.parametrize(("changes", "named"), [
    ({"recipe": Recipe(batch_size=50, epochs=3, lr=1e-3)}, r"recipe\.lr 0\.01 there, 0\.001 here"),
    ({"metadata": {"config_hash": "another", "dataset": "synthetic"}},
     r"config_hash 'abc' there, 'another' here"),
])
def test_resume_refuses_a_checkpoint_another_run_wrote(tiny_config, tmp_path, changes, named):
    checkpoint = tmp_path / "checkpoint.pt"
    metadata = {"config_hash": "abc", "dataset": "synthetic"}
    make_trainer(tiny_config, checkpoint=checkpoint, metadata=metadata).fit(epochs=1)
    other = make_trainer(tiny_config, checkpoint=checkpoint,
                         **{"metadata": metadata, **changes})
    refusal = f"checkpoint {re.escape(str(checkpoint))}: written by another run \\({named}\\)"
    with pytest.raises(UserError, match=refusal):
        other.fit(epochs=2, resume=True)
    resumed = make_trainer(tiny_config, checkpoint=checkpoint, metadata=metadata)
    assert [e.epoch for e in resumed.fit(epochs=2, resume=True).epochs] == [1, 2]


class Payload:
    """Not a tensor or plain data: a weights-only load must refuse it."""


def test_checkpoints_load_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"payload": Payload()}, path)
    with pytest.raises(UserError, match="cannot be loaded"):
        load_checkpoint(path)
    save_atomically({"weights": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(load_checkpoint(tmp_path / "ok.pt")["weights"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt", "ok.pt"]
