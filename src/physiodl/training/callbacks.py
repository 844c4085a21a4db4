"""Callbacks of `fit`: exact resume of the random state, and the per-epoch history."""

from __future__ import annotations

import csv
import logging
import random
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class RngStateCheckpoint(Callback):
    """Keeps the Python, numpy and torch random states in every checkpoint.

    Lightning restores model, optimizer and loop state but not the global generators, so
    dropout masks and DataLoader worker seeds would differ after ``--resume``. The states
    saved at the end of an epoch are put back at the start of the next training epoch, after
    Lightning's own start-up (sanity check, seeding), so a resumed run continues exactly.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        numpy_state = np.random.get_state(legacy=False)
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": {
                "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                "pos": int(numpy_state["state"]["pos"]),
                "has_gauss": int(numpy_state["has_gauss"]),
                "gauss": float(numpy_state["gauss"]),
            },
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        numpy_state = state["numpy"]
        np.random.set_state(
            (
                "MT19937",
                numpy_state["key"].numpy().astype(np.uint32),
                numpy_state["pos"],
                numpy_state["has_gauss"],
                numpy_state["gauss"],
            )
        )
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class EpochHistory(Callback):
    """One row per epoch: the logged metrics, the learning rate and timings.

    ``train_seconds`` runs from the epoch's start to the end of its last training batch (data
    loading and optimisation, no validation); ``examples_per_second`` divides the training
    examples of all ranks by it (this rank's time). ``epoch_seconds`` is the whole epoch with
    validation. Rank 0 rewrites ``path`` (CSV) after every epoch. Rows are kept in
    checkpoints, so a resumed run reports the whole history.
    """

    def __init__(self, path: Path | None, *, log_epochs: bool = False) -> None:
        self.path = path
        self.log_epochs = log_epochs
        self.history: list[dict[str, float]] = []
        self._started = 0.0
        self._last_batch_end = 0.0
        self._examples = 0
        self._validated = False

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(row) for row in self.history]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(row) for row in state_dict["history"]]

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = self._last_batch_end = time.perf_counter()
        self._examples = 0
        self._validated = False

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._last_batch_end = time.perf_counter()
        self._examples += len(batch[0])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validated = self._validated or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.perf_counter()
        row: dict[str, float] = {"epoch": trainer.current_epoch + 1}
        metrics = trainer.callback_metrics
        row.update({k: float(v) for k, v in sorted(metrics.items()) if k.startswith("train_")})
        if self._validated:
            row.update({k: float(v) for k, v in sorted(metrics.items()) if k.startswith("val_")})
        row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        train_seconds = self._last_batch_end - self._started
        examples = torch.tensor(float(self._examples), device=pl_module.device)
        row["train_examples"] = float(trainer.strategy.reduce(examples, reduce_op="sum"))
        row["train_seconds"] = train_seconds
        row["examples_per_second"] = row["train_examples"] / max(train_seconds, 1e-9)
        row["epoch_seconds"] = now - self._started
        self.history.append(row)
        if self.path is not None and trainer.is_global_zero:
            write_history(self.path, self.history)
        if self.log_epochs and trainer.is_global_zero:
            log.info("      %s", _epoch_line(row, trainer.max_epochs))


def _epoch_line(row: dict[str, float], max_epochs: int | None) -> str:
    """``epoch 3/20  train_loss 0.41  val_loss 0.38 ...  12.3 s``"""
    shown = [f"epoch {int(row['epoch'])}/{max_epochs}"]
    shown += [
        f"{key} {value:.4g}"
        for key, value in row.items()
        if key.startswith(("train_", "val_")) and key not in ("train_examples", "train_seconds")
    ]
    shown.append(f"{row['epoch_seconds']:.1f} s")
    return "  ".join(shown)


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """Write the rows as CSV; columns in first-seen order, missing values left empty."""
    columns: dict[str, None] = {}
    for row in history:
        columns.update(dict.fromkeys(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), restval="")
        writer.writeheader()
        writer.writerows(history)
