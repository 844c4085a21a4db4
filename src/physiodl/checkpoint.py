"""Self-contained model checkpoints that load with ``torch.load(..., weights_only=True)``.

A checkpoint holds the weights and everything needed to use them on new recordings: the
model's registry name and hyperparameters, the task (with class names), the fitted feature
pipeline, the resolved recipe and the validation metrics. Only plain Python values and tensors
are stored, never pickled objects. The models of cross-validation folds are stored as one
`FoldEnsemble` (``ensemble``: the number of members), whose members carry their folds'
input scaling; its feature pipeline then has no normaliser of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from physiodl.ensemble import FoldEnsemble
from physiodl.errors import CheckpointError
from physiodl.features import FeaturePipeline
from physiodl.models import build_model
from physiodl.tasks import Task, task_from_dict

FORMAT = "physiodl-checkpoint-1"


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


def save_checkpoint(path: Path, trained: TrainedModel) -> None:
    """Write ``trained`` to ``path`` atomically (a temp file renamed into place)."""
    payload = {
        "format": FORMAT,
        "arch": trained.arch,
        "hparams": trained.hparams,
        "in_channels": _in_channels(trained),
        "task": trained.task.to_dict(),
        "features": trained.features.to_dict(),
        "dataset": trained.dataset,
        "recipe": trained.recipe,
        "metrics": trained.metrics,
        "ensemble": trained.ensemble,
        "state_dict": {k: v.detach().cpu() for k, v in trained.model.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> TrainedModel:
    """Load a checkpoint written by `save_checkpoint`, in eval mode on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(
            f"{path} is not a readable physiodl checkpoint ({type(err).__name__}: {err}); "
            "use models/<name>/best.ckpt from a run directory"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a physiodl checkpoint (format {FORMAT!r} expected); "
            "Lightning's lightning/last.ckpt is for --resume only, use best.ckpt"
        )
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
        ensemble=payload.get("ensemble"),
    )


def _in_channels(trained: TrainedModel) -> int:
    channels = trained.dataset.get("feature_channels")
    if not channels:
        raise CheckpointError("dataset['feature_channels'] is needed to rebuild the model")
    return len(channels)
