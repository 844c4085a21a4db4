"""Self-contained model checkpoints that load with ``torch.load(..., weights_only=True)``.

A checkpoint holds the weights and everything needed to use them on new recordings: the
model's registry name and hyperparameters, the task (with class names), the fitted feature
pipeline, the resolved recipe and the validation metrics. Only plain Python values and tensors
are stored, never pickled objects. An ensemble's checkpoint embeds its members' checkpoints.
The models of cross-validation folds are stored as one `FoldEnsemble` (``ensemble``: the number
of members), whose members carry their folds' input scaling; its feature pipeline then has no
normaliser of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from physiodl.ensemble import FoldEnsemble
from physiodl.errors import CheckpointError
from physiodl.evaluation import predict_records
from physiodl.features import FeaturePipeline
from physiodl.models import build_model
from physiodl.signalset import SignalSet
from physiodl.tasks import Task, task_from_dict

FORMAT = "physiodl-checkpoint-1"
ENSEMBLE_FORMAT = "physiodl-ensemble-1"


@dataclass(frozen=True)
class TrainedModel:
    """A model ready for inference, with its task and preprocessing."""

    model: nn.Module
    task: Task
    features: FeaturePipeline
    arch: str
    hparams: dict[str, Any]
    dataset: dict[str, Any]
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    path: Path | None = None
    ensemble: int | None = None

    @property
    def classes(self) -> tuple[str, ...] | None:
        return getattr(self.task, "classes", None)

    def predict(self, recordings: SignalSet) -> np.ndarray:
        """Record-level predictions for raw recordings (any length, resampled as needed)."""
        chunks = self.features.config.chunks
        return predict_records(
            self.model, self.task, self.features(recordings), **chunks.evaluation()
        )


@dataclass(frozen=True)
class TrainedEnsemble:
    """Several trained models whose record-level class probabilities are averaged."""

    members: tuple[TrainedModel, ...]
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    path: Path | None = None

    @property
    def task(self) -> Task:
        return self.members[0].task

    @property
    def dataset(self) -> dict[str, Any]:
        return self.members[0].dataset

    @property
    def classes(self) -> tuple[str, ...] | None:
        return self.members[0].classes

    def predict(self, recordings: SignalSet) -> np.ndarray:
        return np.mean([member.predict(recordings) for member in self.members], axis=0)


Trained = TrainedModel | TrainedEnsemble


def save_checkpoint(path: Path, trained: TrainedModel) -> None:
    """Write ``trained`` to ``path`` atomically (a temp file renamed into place)."""
    channels = trained.dataset.get("feature_channels")
    if not channels:
        raise CheckpointError("dataset['feature_channels'] is needed to rebuild the model")
    _write(
        path,
        {
            "format": FORMAT,
            "arch": trained.arch,
            "hparams": trained.hparams,
            "in_channels": len(channels),
            "task": trained.task.to_dict(),
            "features": trained.features.to_dict(),
            "dataset": trained.dataset,
            "recipe": trained.recipe,
            "metrics": trained.metrics,
            "ensemble": trained.ensemble,
            "state_dict": {k: v.detach().cpu() for k, v in trained.model.state_dict().items()},
        },
    )


def save_ensemble(
    path: Path, members: list[Path], *, recipe: dict[str, Any], metrics: dict[str, Any]
) -> None:
    """Write an ensemble checkpoint embedding the members' checkpoints."""
    payloads = [_read(member) for member in members]
    _write(
        path, {"format": ENSEMBLE_FORMAT, "members": payloads, "recipe": recipe, "metrics": metrics}
    )


def load_checkpoint(path: str | Path) -> Trained:
    """Load a checkpoint written by `save_checkpoint` or `save_ensemble` (eval mode, CPU)."""
    path = Path(path)
    payload = _read(path)
    if payload.get("format") == ENSEMBLE_FORMAT:
        return TrainedEnsemble(
            members=tuple(_trained(p, path) for p in payload["members"]),
            recipe=payload["recipe"],
            metrics=payload["metrics"],
            path=path,
        )
    return _trained(payload, path)


def _trained(payload: dict[str, Any], path: Path) -> TrainedModel:
    task = task_from_dict(payload["task"])
    features = FeaturePipeline.from_dict(payload["features"])

    def build() -> nn.Module:
        return build_model(
            payload["arch"],
            in_channels=payload["in_channels"],
            out_size=task.out_size,
            input_length=features.config.chunks.length,
            fs=payload["dataset"].get("feature_fs"),
            **payload["hparams"],
        )

    members = payload.get("ensemble")
    if members:
        model: nn.Module = FoldEnsemble([build() for _ in range(members)], payload["in_channels"])
    else:
        model = build()
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return TrainedModel(
        model=model,
        task=task,
        features=features,
        arch=payload["arch"],
        hparams=payload["hparams"],
        dataset=payload["dataset"],
        recipe=payload["recipe"],
        metrics=payload["metrics"],
        path=path,
        ensemble=members,
    )


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(
            f"{path} is not a readable physiodl checkpoint ({type(err).__name__}: {err}); "
            "use models/<name>/best.ckpt from a run directory"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, ENSEMBLE_FORMAT):
        raise CheckpointError(
            f"{path} is not a physiodl checkpoint (format {FORMAT!r} expected); "
            "Lightning's lightning/last.ckpt is for --resume only, use best.ckpt"
        )
    return payload


def _write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
