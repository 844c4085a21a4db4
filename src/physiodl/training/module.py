"""`SignalModule`: a registry model plus a `Task` as a LightningModule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from physiodl.errors import RecipeError
from physiodl.tasks import ClassificationTask, DetectionTask, Task

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
    confusion counts; for detection ``val_efficiency`` from peak-matching counts. A step only
    keeps references to its detached outputs (no per-step logging, no host sync); at epoch
    end the sums are reduced over DDP ranks before dividing, so the means are exact
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
        self._epoch: dict[str, _EpochOutputs] = {}

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        outputs = self.model(x)
        loss = self.task.loss(outputs, y)
        self._epoch.setdefault("train", _EpochOutputs()).add(loss, outputs, y)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        outputs = self.model(x)
        self._epoch.setdefault("val", _EpochOutputs()).add(self.task.loss(outputs, y), outputs, y)

    def on_train_epoch_start(self) -> None:
        self._epoch.pop("train", None)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # log at the last batch, so callbacks see the epoch's means in on_train_epoch_end
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self._log_epoch("train")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")  # an epoch stopped early

    def on_validation_epoch_start(self) -> None:
        self._epoch.pop("val", None)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

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

    def _log_epoch(self, stage: str) -> None:
        """Log the epoch's loss and metrics, exact over all DDP ranks (sums, then divide)."""
        epoch = self._epoch.pop(stage, None)
        if epoch is None:
            return
        outputs, targets = _concatenate(epoch.outputs), _concatenate(epoch.targets)
        metrics = self.task.batch_metrics(outputs, targets)
        n = float(sum(epoch.sizes))
        sizes = torch.tensor(epoch.sizes, dtype=torch.float64, device=outputs.device)
        loss_sum = (torch.stack(epoch.losses).double() * sizes).sum()
        sums = torch.stack([sizes.sum(), loss_sum, *(m.double() * n for m in metrics.values())])
        totals = self.trainer.strategy.reduce(sums, reduce_op="sum")
        names = ["loss", *metrics]
        values = {f"{stage}_{k}": t / totals[0] for k, t in zip(names, totals[1:], strict=True)}
        if stage == "val" and isinstance(self.task, ClassificationTask):
            values["val_balanced_accuracy"] = self._balanced_accuracy(self.task, outputs, targets)
        if stage == "val" and isinstance(self.task, DetectionTask):
            counts = self.task.epoch_counts(epoch.outputs, epoch.targets).to(outputs.device)
            counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
            values |= {f"val_{k}": v for k, v in self.task.epoch_scores(counts).items()}
        self._log(values, prog_bar=stage == "val")

    def _balanced_accuracy(
        self, task: ClassificationTask, outputs: Tensor, targets: Tensor
    ) -> Tensor:
        """Mean recall over the classes present, from confusion counts summed over ranks."""
        k = task.n_classes
        pairs = targets * k + task.predicted_codes(outputs)
        confusion = torch.bincount(pairs, minlength=k * k).reshape(k, k)
        confusion = self.trainer.strategy.reduce(confusion, reduce_op="sum").double()
        support = confusion.sum(dim=1)
        return (confusion.diagonal()[support > 0] / support[support > 0]).mean()

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


def _concatenate(parts: list[Tensor]) -> Tensor:
    """Batches joined along the examples; per-bin outputs of different lengths (whole
    records) are flattened first, as their metrics are per bin anyway."""
    if len({p.shape[1:] for p in parts}) == 1:
        return torch.cat(parts)
    return torch.cat([p.reshape(-1) for p in parts])


class _EpochOutputs:
    """A stage's detached batch losses, outputs and targets, reduced once at epoch end.

    Keeping references costs no tensor operation per step; the metrics then run once over
    the epoch (small for window-level outputs; per-bin outputs cost time x windows floats).
    """

    def __init__(self) -> None:
        self.losses: list[Tensor] = []
        self.sizes: list[int] = []
        self.outputs: list[Tensor] = []
        self.targets: list[Tensor] = []

    def add(self, loss: Tensor, outputs: Tensor, targets: Tensor) -> None:
        self.losses.append(loss.detach())
        self.sizes.append(len(outputs))
        self.outputs.append(outputs.detach())
        self.targets.append(targets)
