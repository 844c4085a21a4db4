"""Evaluation of a trained model at two levels: windows (chunks) and whole recordings.

Windows slide over every record with the model's evaluation stride; a last window aligned to
the record's end covers any tail, so every sample of a record counts at record level. The
window outputs are aggregated per record by the task (mean of logits for classification).
Windows are cut and fed in batches, so hours-long recordings need little memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from physiodl.metrics import classification_metrics, regression_metrics
from physiodl.signalset import SignalSet
from physiodl.tasks import Task
from physiodl.transforms.windows import chunk_index, extract_chunks


@dataclass(frozen=True)
class Windows:
    """Window positions over a set of records."""

    owner: np.ndarray
    starts: np.ndarray
    length: int | None
    is_tail: np.ndarray

    def __len__(self) -> int:
        return len(self.owner)


def evaluation_windows(lengths: np.ndarray, length: int | None, stride: int | None) -> Windows:
    """Regular windows (as in training) plus one end-aligned window per uncovered tail."""
    if length is None:
        owner = np.arange(len(lengths), dtype=np.int64)
        zeros = np.zeros(len(lengths), dtype=np.int64)
        return Windows(owner, zeros, None, zeros.astype(bool))
    owner, starts = chunk_index(lengths, length, stride)
    last_end = np.zeros(len(lengths), dtype=np.int64)
    np.maximum.at(last_end, owner, starts + length)
    tails = np.flatnonzero(last_end < lengths)
    return Windows(
        owner=np.concatenate([owner, tails]),
        starts=np.concatenate([starts, lengths[tails] - length]),
        length=length,
        is_tail=np.concatenate([np.zeros(len(owner), bool), np.ones(len(tails), bool)]),
    )


@torch.inference_mode()
def window_outputs(
    model: nn.Module, signals: list[np.ndarray], windows: Windows, batch_size: int = 512
) -> np.ndarray:
    """Model outputs for every window, in the order of ``windows``."""
    model.eval()
    outputs: list[np.ndarray] = []
    order: list[np.ndarray] = []
    for index, batch in _window_batches(signals, windows, batch_size):
        outputs.append(model(torch.from_numpy(batch)).float().numpy())
        order.append(index)
    result = np.concatenate(outputs)
    return result[np.argsort(np.concatenate(order), kind="stable")]


def _window_batches(
    signals: list[np.ndarray], windows: Windows, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if windows.length is not None:
        for lo in range(0, len(windows), batch_size):
            index = np.arange(lo, min(lo + batch_size, len(windows)))
            x = extract_chunks(signals, windows.owner[index], windows.starts[index], windows.length)
            yield index, x
        return
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, record in enumerate(windows.owner):
        by_length[signals[record].shape[1]].append(i)
    for same_length in by_length.values():
        for lo in range(0, len(same_length), batch_size):
            index = np.asarray(same_length[lo : lo + batch_size], dtype=np.int64)
            yield index, np.stack([signals[windows.owner[i]] for i in index])


@dataclass(frozen=True)
class Evaluation:
    """Scores at both levels and the per-window and per-record predictions behind them."""

    window_metrics: dict[str, Any]
    record_metrics: dict[str, Any]
    record_outputs: np.ndarray
    record_predictions: np.ndarray
    ids: tuple[str, ...] = ()
    record_targets: np.ndarray | None = None
    window_targets: np.ndarray | None = None
    window_predictions: np.ndarray | None = None

    def levels(self) -> dict[str, Any]:
        """The metrics by level, as ``metrics.json`` holds them: ``chunk`` and ``record``."""
        return {"chunk": self.window_metrics, "record": self.record_metrics}

    @classmethod
    def pooled(cls, task: Task, parts: Sequence[Evaluation]) -> Evaluation:
        """One evaluation of the records of all ``parts`` (e.g. cross-validation folds)."""
        if any(p.record_targets is None or p.window_targets is None for p in parts):
            raise ValueError("only evaluations made by `evaluate` can be pooled")

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        window_targets, window_predictions = joined("window_targets"), joined("window_predictions")
        record_targets, record_predictions = joined("record_targets"), joined("record_predictions")
        return cls(
            window_metrics=score(task, window_targets, window_predictions, with_calibration=False),
            record_metrics=score(task, record_targets, record_predictions),
            record_outputs=joined("record_outputs"),
            record_predictions=record_predictions,
            ids=tuple(i for p in parts for i in p.ids),
            record_targets=record_targets,
            window_targets=window_targets,
            window_predictions=window_predictions,
        )


def evaluate(
    model: nn.Module,
    task: Task,
    data: SignalSet,
    *,
    length: int | None,
    stride: int | None = None,
    batch_size: int = 512,
) -> Evaluation:
    """Score ``model`` on normalised features ``data`` with known targets."""
    windows = evaluation_windows(data.lengths, length, stride)
    outputs = window_outputs(model, data.signals, windows, batch_size)
    targets = np.asarray(data.targets)
    regular = ~windows.is_tail
    window_targets = targets[windows.owner[regular]]
    window_predictions = task.predict(outputs[regular])
    window_scores = score(task, window_targets, window_predictions, with_calibration=False)
    record_outputs = task.aggregate(outputs, windows.owner, len(data))
    record_predictions = task.predict(record_outputs)
    return Evaluation(
        window_metrics=window_scores,
        record_metrics=score(task, targets, record_predictions),
        record_outputs=record_outputs,
        record_predictions=record_predictions,
        ids=data.ids,
        record_targets=targets,
        window_targets=window_targets,
        window_predictions=window_predictions,
    )


def predict_records(
    model: nn.Module,
    task: Task,
    data: SignalSet,
    *,
    length: int | None,
    stride: int | None = None,
    batch_size: int = 512,
) -> np.ndarray:
    """Record-level predictions (probabilities for classification) for unlabelled records."""
    windows = evaluation_windows(data.lengths, length, stride)
    outputs = window_outputs(model, data.signals, windows, batch_size)
    return task.predict(task.aggregate(outputs, windows.owner, len(data)))


def score(
    task: Task, targets: np.ndarray, predictions: np.ndarray, *, with_calibration: bool = True
) -> dict[str, Any]:
    """The task's metrics for targets and predictions (probabilities for classification)."""
    if task.kind == "classification":
        metrics = classification_metrics(targets, predictions, task.classes)
        if not with_calibration:
            metrics.pop("calibration", None)
        return metrics
    return regression_metrics(targets, predictions)
