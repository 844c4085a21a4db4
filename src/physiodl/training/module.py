"""`SignalModule`: a registry model plus a `Task` as a LightningModule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from physiodl.errors import RecipeError
from physiodl.tasks import ClassificationTask, Task

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "onecycle", "cosine", "plateau")


@dataclass(frozen=True)
class OptimizerSettings:
    """Optimizer by name; ``momentum`` is used by ``sgd`` only."""

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise RecipeError(
                f"optimizer.name = {self.name!r} is not one of {', '.join(OPTIMIZERS)}"
            )
        if self.lr <= 0 or self.weight_decay < 0:
            raise RecipeError(
                f"optimizer needs lr > 0 and weight_decay >= 0, got lr={self.lr}, "
                f"weight_decay={self.weight_decay}"
            )

    @classmethod
    def of(cls, value: Any) -> OptimizerSettings:
        """From settings, a mapping, a dataclass or a pydantic model with the same fields."""
        if isinstance(value, cls):
            return value
        return cls(**settings_dict(value, "optimizer", {f.name for f in fields(cls)}))


class SignalModule(pl.LightningModule):
    """Trains ``model`` on ``task``; logs per-epoch loss and the task's metrics.

    Logged once per epoch: ``train_loss``, ``train_<metric>``, ``val_loss``, ``val_<metric>``
    (``acc`` or ``mae``) and, for classification, ``val_balanced_accuracy`` from the epoch's
    confusion counts. Batches only add to sums kept on the device (no per-step logging, no
    host sync); the sums are reduced over DDP ranks before dividing, so the means are exact
    (Lightning's ``sync_dist`` averages per-rank means with truncated integer batch counts).

    Args:
        model: maps ``(batch, channels, time)`` to the task's outputs.
        task: loss, metrics and the monitored metric.
        optimizer: `OptimizerSettings` or anything `OptimizerSettings.of` accepts.
        scheduler: ``none``, ``onecycle`` (per step, peak at ``lr``), ``cosine`` (per epoch,
            over ``max_epochs``) or ``plateau`` (halves the lr when the monitor stalls 3 epochs).
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        *,
        optimizer: Any = None,
        scheduler: str = "none",
    ) -> None:
        super().__init__()
        if scheduler not in SCHEDULERS:
            raise RecipeError(f"scheduler = {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
        self.model = model
        self.task = task
        self.optimizer_settings = OptimizerSettings.of(optimizer or {})
        self.scheduler = scheduler
        self.save_hyperparameters(
            {
                "task": task.to_dict(),
                "optimizer": asdict(self.optimizer_settings),
                "scheduler": scheduler,
            }
        )
        self._sums: dict[str, tuple[list[str], Tensor]] = {}
        self._confusion: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        outputs = self.model(x)
        loss = self.task.loss(outputs, y)
        self._accumulate("train", loss, outputs.detach(), y)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        outputs = self.model(x)
        self._accumulate("val", self.task.loss(outputs, y), outputs, y)
        if isinstance(self.task, ClassificationTask):
            k = self.task.n_classes
            pairs = y * k + self.task.predicted_codes(outputs)
            counts = torch.bincount(pairs, minlength=k * k).reshape(k, k)
            self._confusion = counts if self._confusion is None else self._confusion + counts

    def on_train_epoch_start(self) -> None:
        self._sums.pop("train", None)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # log at the last batch, so callbacks see the epoch's means in on_train_epoch_end
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self._log_epoch("train")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")  # an epoch stopped early

    def on_validation_epoch_start(self) -> None:
        self._sums.pop("val", None)
        self._confusion = None

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        if self._confusion is None:
            return
        confusion = self.trainer.strategy.reduce(self._confusion, reduce_op="sum").double()
        support = confusion.sum(dim=1)
        recall = confusion.diagonal()[support > 0] / support[support > 0]
        self._log({"val_balanced_accuracy": recall.mean()}, prog_bar=True)

    def configure_optimizers(self) -> Any:
        s = self.optimizer_settings
        params = self.model.parameters()
        optimizer: torch.optim.Optimizer
        if s.name == "adam":
            optimizer = torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
        elif s.name == "adamw":
            optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        else:
            optimizer = torch.optim.SGD(
                params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay
            )
        if self.scheduler == "none":
            return optimizer
        scheduler: dict[str, Any]
        if self.scheduler == "onecycle":
            total = int(self.trainer.estimated_stepping_batches)
            onecycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, s.lr, total_steps=total)
            scheduler = {"scheduler": onecycle, "interval": "step"}
        elif self.scheduler == "cosine":
            epochs = max(int(self.trainer.max_epochs or 1), 1)
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
            scheduler = {"scheduler": cosine, "interval": "epoch"}
        else:
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=self.task.monitor_mode, factor=0.5, patience=3
            )
            scheduler = {"scheduler": plateau, "interval": "epoch", "monitor": self.task.monitor}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def _accumulate(self, stage: str, loss: Tensor, outputs: Tensor, targets: Tensor) -> None:
        """Add a batch's example-weighted loss and metrics to the epoch's sums (no host sync)."""
        metrics = self.task.batch_metrics(outputs, targets)
        n = len(outputs)
        values = torch.stack([loss.detach().new_ones(()), loss.detach(), *metrics.values()]) * n
        if stage in self._sums:
            names, sums = self._sums[stage]
            self._sums[stage] = (names, sums + values)
        else:
            self._sums[stage] = (["loss", *metrics], values)

    def _log_epoch(self, stage: str) -> None:
        """Log the epoch means, exact over all DDP ranks (sums reduced, then divided)."""
        if stage not in self._sums:
            return
        names, sums = self._sums.pop(stage)
        totals = self.trainer.strategy.reduce(sums.double(), reduce_op="sum")
        means = totals[1:] / totals[0]
        self._log(
            {f"{stage}_{name}": mean for name, mean in zip(names, means, strict=True)},
            prog_bar=stage == "val",
        )

    def _log(self, values: dict[str, Tensor], prog_bar: bool) -> None:
        # values are identical on every rank; sync_dist (a mean of equal numbers, exact) only
        # keeps Lightning from warning about epoch-level logging under DDP
        self.log_dict(
            {k: v.float() for k, v in values.items()},
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            batch_size=1,
            prog_bar=prog_bar,
        )


def settings_dict(value: Any, what: str, allowed: set[str]) -> dict[str, Any]:
    """Plain dict of a mapping, dataclass or pydantic model; unknown keys are a RecipeError."""
    if isinstance(value, Mapping):
        data = dict(value)
    elif hasattr(value, "model_dump"):
        data = value.model_dump()
    elif is_dataclass(value) and not isinstance(value, type):
        data = asdict(value)
    else:
        raise RecipeError(f"{what} must be a table of settings, got {value!r}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RecipeError(
            f"{what} has no setting {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )
    return data
