"""`fit`: one model trained with Lightning into a model directory; `predict_batches`."""

from __future__ import annotations

import math
import pickle
import signal
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from physiodl.errors import CheckpointError, RecipeError
from physiodl.tasks import ClassificationTask, Task
from physiodl.training.callbacks import EpochHistory, RngStateCheckpoint
from physiodl.training.data import ChunkDataModule
from physiodl.training.module import OptimizerSettings, SignalModule, settings_dict
from physiodl.transforms.balance import LOSS_WEIGHT_POWER

# Trainer arguments that `fit` sets itself, and where a recipe sets them instead.
_OWN_TRAINER_ARGS = {
    "max_epochs": "train.max_epochs",
    "gradient_clip_val": "train.gradient_clip",
    "callbacks": "train.early_stopping",
    "logger": "the run directory",
    "default_root_dir": "the run directory",
    "enable_checkpointing": "the run directory",
}
# Settings of a recipe's train table that `fit` does not use: the DataModule's, and which
# epoch's weights the pipeline keeps.
_DATA_SETTINGS = {"batch_size", "num_workers", "augment", "keep", "rate_scale"}


@dataclass(frozen=True)
class FitConfig:
    """How to train: the recipe's ``[train]`` table minus the DataModule's settings.

    ``scheduler``: ``none``, ``onecycle``, ``cosine`` or ``plateau`` (see `SignalModule`);
    ``early_stopping``: patience in epochs of the task's monitor (``None``: off);
    ``gradient_clip``: maximum gradient norm (``None``: off); ``trainer`` goes to
    ``lightning.pytorch.Trainer`` untouched (devices, strategy, accelerator, precision,
    limits, ``enable_progress_bar`` ...); ``progress_refresh_rate``: batches between
    progress-bar updates (1 costs ~0.1 ms a step).
    """

    max_epochs: int = 20
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    scheduler: str = "none"
    early_stopping: int | None = None
    gradient_clip: float | None = None
    trainer: Mapping[str, Any] = field(default_factory=dict)
    progress_refresh_rate: int = 10

    @classmethod
    def of(cls, value: Any) -> FitConfig:
        """From a FitConfig, a mapping or a pydantic/dataclass train config."""
        if isinstance(value, cls):
            return value
        names = {f.name for f in fields(cls)}
        data = settings_dict(value, "train", names | _DATA_SETTINGS)
        settings = {k: v for k, v in data.items() if k in names}
        settings["optimizer"] = OptimizerSettings.of(settings.get("optimizer") or {})
        return cls(**settings)


@dataclass(frozen=True)
class FitResult:
    """What `fit` reports; epochs are counted from 1.

    ``train_seconds`` is the wall time of all epochs (training and validation, summed over a
    resume); ``examples_per_second`` is the training throughput (training batches only).
    ``global_rank`` is this process's DDP rank: only rank 0 should write results.
    """

    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_epoch: int | None
    best_score: float | None
    history: list[dict[str, float]]
    train_seconds: float
    examples_per_second: float
    interrupted: bool
    global_rank: int = 0

    @property
    def best_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's weights at the best epoch (keys as in ``model.state_dict()``)."""
        if self.best_checkpoint is None:
            raise CheckpointError("no best checkpoint was saved (no validation epoch finished)")
        checkpoint = torch.load(self.best_checkpoint, map_location="cpu", weights_only=True)
        prefix = "model."
        state = checkpoint["state_dict"]
        return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def fit(
    model: nn.Module,
    task: Task,
    datamodule: ChunkDataModule,
    *,
    out_dir: Path,
    train_cfg: Any,
    seed: int = 0,
    resume: bool = False,
    tensorboard_dir: Path | None = None,
    callbacks: Sequence[pl.Callback] = (),
) -> FitResult:
    """Train ``model`` on ``datamodule`` for ``task``; checkpoints go to ``out_dir/lightning``.

    Writes ``out_dir/history.csv`` (one row per epoch), ``lightning/best.ckpt`` (best epoch
    by ``task.monitor``) and ``lightning/last.ckpt``; TensorBoard events go to
    ``tensorboard_dir`` when given. ``resume=True`` continues from ``last.ckpt`` when it exists
    (else starts afresh) and ends with the same weights as an uninterrupted run.

    Under DDP (``trainer = {devices = 2, strategy = "ddp"}``) Lightning starts the other ranks
    by running the calling script again from the start, with ``LOCAL_RANK`` set; every rank
    returns from `fit`, and ``FitResult.global_rank`` tells them apart.

    Args:
        model: a ``(batch, channels, time)`` model, initialised by the caller (seeded).
        task: the loss, metrics and monitored metric.
        datamodule: training and validation batches.
        out_dir: the model's directory.
        train_cfg: `FitConfig` or a recipe's train table (mapping or pydantic model).
        seed: seeds Python, numpy and torch (``pl.seed_everything(seed, workers=True)``).
        resume: continue from ``out_dir/lightning/last.ckpt`` if it exists.
        tensorboard_dir: the model's TensorBoard directory (e.g. ``run/tensorboard/<model>``).
        callbacks: extra Lightning callbacks (e.g. a hyperparameter search's pruner).
    """
    cfg = FitConfig.of(train_cfg)
    _check_balance(task, datamodule)
    out_dir = Path(out_dir)
    checkpoint_dir = out_dir / "lightning"
    last = checkpoint_dir / "last.ckpt"
    if not resume and last.exists():
        raise CheckpointError(
            f"{checkpoint_dir} already holds a checkpoint; resume it (--resume) or train into "
            "a fresh run directory"
        )
    pl.seed_everything(seed, workers=True, verbose=False)
    module = SignalModule(model, task, optimizer=cfg.optimizer, scheduler=cfg.scheduler)
    best = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="best",
        monitor=task.monitor,
        mode=task.monitor_mode,
        save_top_k=1,
        save_last=True,
        save_on_train_epoch_end=True,
    )
    # a live bar in a terminal; elsewhere (CI, a log file) one readable line per epoch
    show_bar = bool(cfg.trainer.get("enable_progress_bar", sys.stderr.isatty()))
    history = EpochHistory(out_dir / "history.csv", log_epochs=not show_bar)
    all_callbacks: list[pl.Callback] = [RngStateCheckpoint(), history, best, *callbacks]
    if cfg.early_stopping is not None:
        all_callbacks.append(
            EarlyStopping(task.monitor, mode=task.monitor_mode, patience=cfg.early_stopping)
        )
    if show_bar:
        all_callbacks.append(TQDMProgressBar(refresh_rate=cfg.progress_refresh_rate))
    args = _trainer_args(cfg, all_callbacks, out_dir, tensorboard_dir)
    args["enable_progress_bar"] = show_bar
    trainer = pl.Trainer(**args)
    resume_from = last if resume and last.exists() else None
    if resume_from is not None:
        datamodule.first_epoch = _next_epoch(resume_from)
    interrupt_handler = signal.getsignal(signal.SIGINT)
    try:
        with warnings.catch_warnings():
            # metrics are logged per epoch only, so log_every_n_steps does not matter
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval")
            if resume_from is not None:  # the checkpoints being resumed are expected there
                warnings.filterwarnings("ignore", message=".*exists and is not empty")
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    except SystemExit:
        # Lightning turns Ctrl-C into a graceful stop followed by sys.exit(1)
        if not trainer.interrupted:
            raise
    finally:
        signal.signal(signal.SIGINT, interrupt_handler)  # Lightning leaves Ctrl-C ignored
    return _result(trainer, task, best, history.history)


def predict_batches(model: nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Outputs of ``model`` for ``x`` ``(n, channels, time)``, in eval mode, batch by batch."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.inference_mode():
            for lo in range(0, len(x), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[lo : lo + batch_size]))
                outputs.append(model(batch.to(device)).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros((0,), dtype=np.float32)


def _next_epoch(checkpoint: Path) -> int:
    """The epoch a run resumed from ``checkpoint`` starts with."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        return int(state["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (OSError, RuntimeError, KeyError, pickle.UnpicklingError) as err:
        raise CheckpointError(
            f"cannot resume from {checkpoint}: {err}; delete it to start this model afresh"
        ) from err


def _check_balance(task: Task, datamodule: ChunkDataModule) -> None:
    """Class-weight balancing samples naturally; the weights must be in the loss."""
    if datamodule.balance in LOSS_WEIGHT_POWER and (
        not isinstance(task, ClassificationTask) or task.class_weights is None
    ):
        raise RecipeError(
            f"balance = {datamodule.balance!r} needs a classification task with class_weights "
            "(physiodl.transforms.balance.class_weights of the training targets)"
        )


def _trainer_args(
    cfg: FitConfig, callbacks: list[pl.Callback], out_dir: Path, tensorboard_dir: Path | None
) -> dict[str, Any]:
    clash = sorted(set(cfg.trainer) & set(_OWN_TRAINER_ARGS))
    if clash:
        where = ", ".join(f"trainer.{k} (set {_OWN_TRAINER_ARGS[k]})" for k in clash)
        raise RecipeError(f"physiodl sets these Trainer arguments itself: {where}")
    logger: TensorBoardLogger | bool = False
    if tensorboard_dir is not None:
        tensorboard_dir = Path(tensorboard_dir)
        logger = TensorBoardLogger(
            save_dir=tensorboard_dir.parent,
            name=tensorboard_dir.name,
            version="",
            default_hp_metric=False,
        )
    return {
        "max_epochs": cfg.max_epochs,
        "gradient_clip_val": cfg.gradient_clip,
        "callbacks": callbacks,
        "logger": logger,
        "default_root_dir": out_dir,
        "enable_model_summary": False,
        **cfg.trainer,
    }


def _result(
    trainer: pl.Trainer, task: Task, best: ModelCheckpoint, history: list[dict[str, float]]
) -> FitResult:
    scores = [row.get(task.monitor, math.nan) for row in history]
    best_epoch = None
    if any(math.isfinite(s) for s in scores):
        pick = np.nanargmax if task.monitor_mode == "max" else np.nanargmin
        best_epoch = int(history[int(pick(scores))]["epoch"])
    seconds = sum(row["train_seconds"] for row in history)
    examples = sum(row["train_examples"] for row in history)
    last = Path(best.last_model_path) if best.last_model_path else None
    return FitResult(
        best_checkpoint=Path(best.best_model_path) if best.best_model_path else None,
        last_checkpoint=last,
        best_epoch=best_epoch,
        best_score=None if best.best_model_score is None else float(best.best_model_score),
        history=history,
        train_seconds=sum(row["epoch_seconds"] for row in history),
        examples_per_second=examples / seconds if seconds > 0 else 0.0,
        interrupted=trainer.interrupted,
        global_rank=trainer.global_rank,
    )
