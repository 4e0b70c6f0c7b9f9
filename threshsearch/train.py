"""Training: the paper's recipes, the loop, per-epoch callbacks, atomic checkpoints."""

from __future__ import annotations

import math
import os
import pickle
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from annotated_types import Ge
from pydantic import Field, Strict
from torch import nn

from threshsearch.data import ImageDataset, Normalizer, Split, batches, training_augmentation
from threshsearch.devicelock import DeviceLock
from threshsearch.errors import UserError
from threshsearch.measure import device_name, mixed_precision, synchronize
from threshsearch.validation import Bool, Choice, Int, Number, Schema, SchemaError, expect

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "step", "cosine")
NAN_CHECK_EVERY = 20  # steps; a host sync on CUDA, so not every step


class RecipeError(SchemaError):
    """An invalid training recipe."""


class Recipe(Schema):
    """How to train. ``milestones`` (epochs) and ``gamma`` belong to the "step" schedule.
    ``amp`` (bf16 where supported, else fp16) applies on CUDA only; ``channels_last`` on
    every device (measured faster on CPU too: docs/benchmarks.md)."""

    error = RecipeError
    what = "recipe"

    optimizer: Choice(*OPTIMIZERS) = Field("adam", description="the optimizer")
    lr: Number(0, 10, low_open=True) = Field(1e-3, description="the initial learning rate")
    momentum: Number(0, 1, high_open=True) = Field(0.9, description="SGD's momentum")
    nesterov: Bool = Field(False, description="SGD with Nesterov momentum")
    weight_decay: Number(0, 1) = Field(0.0, description="L2 weight decay")
    batch_size: Int(1, 65536) = Field(100, description="images per training step")
    epochs: Int(1, 100_000) = Field(300, description="epochs to train")
    schedule: Choice(*SCHEDULES) = Field("constant", description="the learning-rate schedule")
    milestones: Annotated[tuple[Annotated[int, Strict(), Ge(1)], ...],
                          expect("a list of epochs >= 1", whole=True)] = Field(
        (), description="step schedule: epochs at which the rate is multiplied by gamma")
    gamma: Number(0, 1, low_open=True) = Field(0.1, description="step schedule: the factor")
    label_smoothing: Number(0, 1, high_open=True) = Field(
        0.0, description="cross-entropy label smoothing")
    amp: Bool = Field(True, description="mixed precision on CUDA (bf16 where supported)")
    channels_last: Bool = Field(True, description="channels-last memory format")

    def override(self, **changes: Any) -> Self:
        """A copy with the given fields changed; None values are ignored."""
        return self.replace(**{key: value for key, value in changes.items()
                               if value is not None})

    @classmethod
    def from_dict(cls, data: Any, path: str = "recipe", base: Recipe | None = None) -> Recipe:
        """A recipe from plain data; the fields it leaves out come from ``base``."""
        if isinstance(data, dict) and base is not None:
            data = base.to_dict() | data
        return cls.parse(data, path)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in Recipe.model_fields} | {
            "milestones": list(self.milestones)}


RECIPES: dict[str, Recipe] = {
    # The paper: CIFAR-10 and SVHN with Adam 1e-3, batch 100 (300 and 60 epochs).
    "cifar10": Recipe(optimizer="adam", lr=1e-3, batch_size=100, epochs=300),
    "svhn": Recipe(optimizer="adam", lr=1e-3, batch_size=100, epochs=60),
    # The paper's reference CIFAR-10 code: 200 epochs, lr halved at 75 and 150.
    "cifar10-reference": Recipe(optimizer="adam", lr=1e-3, batch_size=100, epochs=200,
                                schedule="step", milestones=(75, 150), gamma=0.5),
    # CIFAR-100: SGD, Nesterov 0.9, lr 0.1 divided by 5 at 60/120/160, wd 5e-4, batch 128.
    "cifar100": Recipe(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                       weight_decay=5e-4, batch_size=128, epochs=200, schedule="step",
                       milestones=(60, 120, 160), gamma=0.2),
    # Small data that trains in minutes on a CPU: the paper's Adam recipe, fewer epochs.
    "quick": Recipe(optimizer="adam", lr=1e-3, batch_size=100, epochs=15),
}
DEFAULT_RECIPE = {"cifar10": "cifar10", "cifar100": "cifar100", "svhn": "svhn",
                  "digits": "quick", "synthetic": "quick"}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise RecipeError(f"recipe: unknown recipe {name!r}; expected one of "
                          f"{', '.join(RECIPES)}")
    return RECIPES[name]


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float  # top-1, in [0, 1]
    val_top5: float
    epoch_time_s: float  # the training pass only, less any pause for a neighbour's measurement
    images_per_s: float
    lr: float
    eval_time_s: float = 0.0  # the validation pass, less any pause
    paused_s: float = 0.0  # waited, in this epoch, for a neighbour's latency measurement


@dataclass
class TrainResult:
    """``status`` is "completed", "stopped" (a callback asked) or "diverged" (non-finite
    loss); ``reason`` says why training ended early."""

    status: str
    reason: str | None
    epochs: list[EpochMetrics]
    device: str
    dtype: str
    batch_size: int
    input_size: int
    test_accuracy: float | None = None
    test_top5: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> EpochMetrics | None:
        return self.epochs[-1] if self.epochs else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["final"] = asdict(self.final) if self.final else None
        return data


EpochCallback = Callable[[EpochMetrics], bool | None]


# -------------------------------------------------------------------- the loop
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _amp_dtype(device: torch.device, recipe: Recipe) -> torch.dtype:
    if device.type != "cuda" or not recipe.amp:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer, fused: one kernel per step instead of several per parameter
    (measured: the step is a sixth of a CPU training step unfused)."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov, weight_decay=recipe.weight_decay,
                               fused=True)
    return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                            fused=True)


def _scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe
               ) -> torch.optim.lr_scheduler.LRScheduler:
    if recipe.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(recipe.milestones),
                                                    recipe.gamma)
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, recipe.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def evaluate(model: nn.Module, split: Split, normalize: Normalizer, batch_size: int = 500,
             amp_dtype: torch.dtype = torch.float32) -> tuple[float, float, float]:
    """(mean loss, top-1, top-5) of ``model`` on ``split``."""
    model.eval()
    device = split.labels.device
    loss = torch.zeros((), device=device)
    top1 = torch.zeros((), device=device)
    top5 = torch.zeros((), device=device)
    with torch.inference_mode(), mixed_precision(device, amp_dtype):
        for images, labels in batches(split, batch_size):
            logits = model(normalize(images)).float()
            loss += F.cross_entropy(logits, labels, reduction="sum")
            best = logits.topk(min(5, logits.shape[1]), dim=1).indices
            top1 += (best[:, 0] == labels).sum()
            top5 += (best == labels[:, None]).any(dim=1).sum()
    count = max(len(split), 1)
    return loss.item() / count, top1.item() / count, top5.item() / count


class Trainer:
    """Trains one model on one dataset with one recipe. ``checkpoint`` (a file path) is
    written atomically after every epoch; ``resume`` continues from it when it exists. With a
    ``device_lock``, every step (with the making of its batch) and every evaluation (with the
    epoch's bookkeeping) holds it shared, so that a latency measurement on the same device
    never overlaps them; time paused for one is not training time."""

    def __init__(self, model: nn.Module, dataset: ImageDataset, recipe: Recipe, *,
                 seed: int = 0, checkpoint: str | Path | None = None,
                 metadata: dict[str, Any] | None = None,
                 device_lock: DeviceLock | None = None):
        self.dataset = dataset
        self.recipe = recipe
        self.device = dataset.device
        self.amp_dtype = _amp_dtype(self.device, recipe)
        self.memory_format = (torch.channels_last if recipe.channels_last
                              else torch.contiguous_format)
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.optimizer = make_optimizer(self.model, recipe)
        self.scheduler = _scheduler(self.optimizer, recipe)
        # fp16 needs loss scaling; bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler(enabled=self.amp_dtype == torch.float16)
        self.normalize = Normalizer(dataset, memory_format=self.memory_format)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.augment = training_augmentation(dataset, self.generator)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.metadata = metadata or {}
        self.device_lock = device_lock
        self.history: list[EpochMetrics] = []

    @contextmanager
    def _sharing_device(self) -> Iterator[None]:
        if self.device_lock is None:
            yield
            return
        with self.device_lock.shared():
            yield
            synchronize(self.device)  # CUDA work still queued is work on the device

    # ------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "format": 1,
            "epoch": len(self.history),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "recipe": self.recipe.to_dict(),
            "history": [asdict(epoch) for epoch in self.history],
            "metadata": self.metadata,
        }

    def save(self, path: Path) -> None:
        save_atomically(self.state(), path)

    def load(self, path: Path) -> None:
        state = load_checkpoint(path, self.device)
        self._check_same_run(state, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        self.history = [EpochMetrics(**epoch) for epoch in state["history"]]

    def _check_same_run(self, state: dict[str, Any], path: Path) -> None:
        """Refuse a checkpoint another run wrote (another network, dataset or recipe): its
        weights could load and train on under settings they were never trained with."""
        pairs = [(f"recipe.{key}", old, new) for key, old, new in
                 _differences(state.get("recipe") or {}, self.recipe.to_dict())]
        pairs += _differences(state.get("metadata") or {}, self.metadata)
        if pairs:
            differ = "; ".join(f"{key} {old!r} there, {new!r} here" for key, old, new in pairs)
            raise UserError(f"checkpoint {path}: written by another run ({differ}); resume "
                            f"with the settings it was written with, or choose another --out")

    # ----------------------------------------------------------------- training
    def _paused_s(self) -> float:
        return self.device_lock.paused_s if self.device_lock else 0.0

    def _train_epoch(self) -> tuple[float, float, int, float, float] | str:
        """(mean loss, accuracy, images, seconds, seconds paused), or the reason training
        must stop."""
        model, device = self.model, self.device
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        synchronize(device)
        paused_before = self._paused_s()
        start = time.perf_counter()
        autocast = mixed_precision(device, self.amp_dtype)
        epoch_batches = iter(batches(self.dataset.train, self.recipe.batch_size,
                                     self.generator, self.augment))
        step = 0
        while True:
            # The batch is made (cropped, flipped) on the device: that is device work too.
            with self._sharing_device():
                batch = next(epoch_batches, None)
                if batch is None:
                    break
                images, labels = batch
                step += 1
                with autocast:
                    logits = model(self.normalize(images))
                    loss = F.cross_entropy(logits.float(), labels,
                                           label_smoothing=self.recipe.label_smoothing)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                loss_sum += loss.detach() * len(labels)
                correct += (logits.detach().argmax(1) == labels).sum()
                seen += len(labels)
                if step % NAN_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
                    return (f"non-finite training loss at epoch {len(self.history) + 1}, "
                            f"step {step}")
        with self._sharing_device():
            loss_total, correct_total = loss_sum.item(), correct.item()
        paused = self._paused_s() - paused_before
        seconds = time.perf_counter() - start - paused
        mean_loss = loss_total / max(seen, 1)
        if not math.isfinite(mean_loss):
            return f"non-finite training loss in epoch {len(self.history) + 1}"
        return mean_loss, correct_total / max(seen, 1), seen, seconds, paused

    def fit(self, epochs: int | None = None, callbacks: Iterable[EpochCallback] = (),
            resume: bool = False) -> TrainResult:
        """Train up to ``epochs`` (default: the recipe's) and return what happened."""
        epochs = epochs or self.recipe.epochs
        callbacks = list(callbacks)
        if resume and self.checkpoint and self.checkpoint.exists():
            self.load(self.checkpoint)
        status, reason = "completed", None
        while len(self.history) < epochs:
            outcome = self._train_epoch()
            if isinstance(outcome, str):
                status, reason = "diverged", outcome
                break
            train_loss, train_accuracy, seen, seconds, paused = outcome
            paused_before = self._paused_s()
            start = time.perf_counter()
            # Evaluation and the epoch's bookkeeping hold the device; the callbacks (which
            # report, and wait) do not.
            with self._sharing_device():
                val_loss, val_top1, val_top5 = evaluate(
                    self.model, self.dataset.val, self.normalize, amp_dtype=self.amp_dtype)
                eval_paused = self._paused_s() - paused_before
                metrics = EpochMetrics(
                    epoch=len(self.history) + 1, train_loss=train_loss,
                    train_accuracy=train_accuracy, val_loss=val_loss, val_accuracy=val_top1,
                    val_top5=val_top5, epoch_time_s=seconds, images_per_s=seen / seconds,
                    lr=self.optimizer.param_groups[0]["lr"],
                    eval_time_s=time.perf_counter() - start - eval_paused,
                    paused_s=paused + eval_paused,
                )
                self.scheduler.step()
                self.history.append(metrics)
                if self.checkpoint:
                    self.save(self.checkpoint)
            if any([bool(callback(metrics)) for callback in callbacks]):
                status, reason = "stopped", f"stopped by a callback after epoch {metrics.epoch}"
                break
        return TrainResult(
            status=status, reason=reason, epochs=list(self.history),
            device=device_name(self.device), dtype=str(self.amp_dtype).removeprefix("torch."),
            batch_size=self.recipe.batch_size, input_size=self.dataset.input_size,
        )

    def test(self, result: TrainResult) -> TrainResult:
        """Fill in test accuracy (only after a full training: searches never look at it)."""
        _, result.test_accuracy, result.test_top5 = evaluate(
            self.model, self.dataset.test, self.normalize, amp_dtype=self.amp_dtype)
        return result


def _differences(there: dict[str, Any], here: dict[str, Any]
                 ) -> list[tuple[str, Any, Any]]:
    return [(key, there.get(key), here.get(key)) for key in sorted(there.keys() | here.keys())
            if there.get(key) != here.get(key)]


def save_atomically(state: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash never leaves half a
    checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely: tensors and plain data only (``weights_only=True``)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        summary = " ".join(str(error).split())[:200]
        raise UserError(f"checkpoint {path}: cannot be loaded ({summary})") from None
