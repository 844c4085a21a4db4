"""Evaluation of a trained model at two levels: windows (chunks) and whole recordings.

Windows slide over every record with the model's evaluation stride; a last window aligned to
the record's end covers any tail, so every sample of a record counts at record level. The
window outputs are aggregated per record by the task (mean of logits for classification).
Per-bin tasks (detection) instead stitch the window outputs back into one output per bin of
each record (the mean where windows overlap) and score records with the task's
`Task.score_records` (peak matching); their window level is scored per bin.
Windows are cut and fed in batches, so hours-long recordings need little memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
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
    record_outputs: np.ndarray | list[np.ndarray]
    record_predictions: np.ndarray | list[np.ndarray]
    """Per record: one row (classification, regression) or one per-bin array (detection)."""

    ids: tuple[str, ...] = ()
    record_targets: np.ndarray | list[np.ndarray] | None = None
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


@torch.inference_mode()
def record_bin_outputs(
    model: nn.Module, signals: list[np.ndarray], windows: Windows, batch_size: int = 512
) -> list[np.ndarray]:
    """Per-bin outputs ``(time,)`` of every record: its windows' outputs, averaged where they
    overlap (every bin is covered: see `evaluation_windows`)."""
    model.eval()
    sums = [np.zeros(x.shape[1], dtype=np.float32) for x in signals]
    counts = [np.zeros(x.shape[1], dtype=np.float32) for x in signals]
    for index, batch in _window_batches(signals, windows, batch_size):
        outputs = model(torch.from_numpy(batch)).float().numpy()
        for i, out in zip(index, outputs, strict=True):
            record, start = windows.owner[i], windows.starts[i]
            sums[record][start : start + len(out)] += out
            counts[record][start : start + len(out)] += 1
    return [s / c for s, c in zip(sums, counts, strict=True)]


def evaluate(
    model: nn.Module,
    task: Task,
    data: SignalSet,
    *,
    length: int | None,
    stride: int | None = None,
    whole_records: bool = False,
    batch_size: int = 512,
) -> Evaluation:
    """Score ``model`` on normalised features ``data`` with known targets: per window, and per
    record from its windows' mean output (``whole_records``: from one pass over the record)."""
    windows = evaluation_windows(data.lengths, length, stride)
    if task.per_bin:
        outputs = record_bin_outputs(model, data.signals, windows, batch_size)
        return score_bins(task, list(data.targets or []), outputs, data.ids)
    outputs = window_outputs(model, data.signals, windows, batch_size)
    targets = np.asarray(data.targets)
    regular = ~windows.is_tail
    window_targets = targets[windows.owner[regular]]
    window_predictions = task.predict(outputs[regular])
    window_scores = score(task, window_targets, window_predictions, with_calibration=False)
    if whole_records:
        record_outputs = _whole_record_outputs(model, task, data, batch_size)
    else:
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


def score_bins(
    task: Task, targets: list[np.ndarray], outputs: list[np.ndarray], ids: tuple[str, ...] = ()
) -> Evaluation:
    """A per-bin task's scores of per-record outputs: per bin and per record."""
    predictions = [task.predict(o) for o in outputs]
    return Evaluation(
        window_metrics=bin_metrics(targets, predictions),
        record_metrics=task.score_records(targets, predictions),
        record_outputs=outputs,
        record_predictions=predictions,
        ids=ids,
        record_targets=targets,
    )


def bin_metrics(targets: list[np.ndarray], predictions: list[np.ndarray]) -> dict[str, Any]:
    """Per-bin agreement over the known (non-NaN) bins: mean absolute error, and accuracy of
    ``prediction >= 0.5`` against ``target >= 0.5``."""
    target = np.concatenate([np.ravel(t) for t in targets])
    prediction = np.concatenate([np.ravel(p) for p in predictions])
    known = ~np.isnan(target)
    target, prediction = target[known], prediction[known]
    return {
        "n_bins": int(known.sum()),
        "masked_bins": int((~known).sum()),
        "bin_mae": float(np.abs(prediction - target).mean()) if known.any() else float("nan"),
        "bin_accuracy": float(((prediction >= 0.5) == (target >= 0.5)).mean())
        if known.any()
        else float("nan"),
    }


def with_operating_point(
    task: Task, data: SignalSet, result: Evaluation
) -> tuple[Task, Evaluation]:
    """The task with its decision settings chosen on ``data`` (validation records) and the
    evaluation re-scored with them; unchanged for tasks without such settings."""
    if not task.per_bin:
        return task, result
    targets = list(data.targets or [])
    predictions = list(result.record_predictions)
    chosen = task.with_operating_point(targets, predictions)
    metrics = chosen.score_records(targets, predictions)
    return chosen, replace(result, record_metrics=metrics)


def predict_records(
    model: nn.Module,
    task: Task,
    data: SignalSet,
    *,
    length: int | None,
    stride: int | None = None,
    whole_records: bool = False,
    batch_size: int = 512,
) -> np.ndarray | list[np.ndarray]:
    """Record-level predictions (probabilities for classification) for unlabelled records, as
    `evaluate` makes them; per-bin tasks give one ``(time,)`` array per record."""
    windows = evaluation_windows(data.lengths, length, stride)
    if task.per_bin:
        outputs = record_bin_outputs(model, data.signals, windows, batch_size)
        return [task.predict(o) for o in outputs]
    if whole_records:
        return task.predict(_whole_record_outputs(model, task, data, batch_size))
    outputs = window_outputs(model, data.signals, windows, batch_size)
    return task.predict(task.aggregate(outputs, windows.owner, len(data)))


def _whole_record_outputs(
    model: nn.Module, task: Task, data: SignalSet, batch_size: int
) -> np.ndarray:
    whole = evaluation_windows(data.lengths, None, None)
    outputs = window_outputs(model, data.signals, whole, batch_size)
    return task.aggregate(outputs, whole.owner, len(data))


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
