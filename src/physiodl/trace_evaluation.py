"""Evaluation against per-window target traces (heart rate every 2 s, say).

Every window of a reference trace is scored on its own: the model sees exactly the window
the reference value belongs to, the task decodes the consecutive window outputs of each
recording into values (tracking them across windows where the task does), and the errors
are pooled over all windows and broken down per recording and per subject (group). Both
decodings are kept: ``offline`` (the whole recording at once) and ``causal`` (each window
from the past windows only, as a wearable decides in real time).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from physiodl.errors import DataError
from physiodl.evaluation import Windows, window_outputs
from physiodl.metrics import regression_metrics
from physiodl.signalset import SignalSet
from physiodl.tasks import RegressionTask, Task
from physiodl.window_targets import TargetWindows, trace_windows

DECODINGS = ("offline", "causal")
PER_PART_KEYS = ("n", "mae", "rmse", "bias", "within_5", "within_10")
FIELDS = ("ids", "groups", "window", "start_s", "target", *DECODINGS)
CSV_HEADER = ("id", "group", "window", "start_s", "target", *DECODINGS)


@dataclass(frozen=True)
class TraceEvaluation:
    """One row per scored window: record id, group, window index, start (s), target and the
    value of each decoding. Metrics are computed from these rows only, so evaluations of
    several parts (cross-validation folds) pool by concatenating them."""

    ids: np.ndarray
    groups: np.ndarray
    window: np.ndarray
    start_s: np.ndarray
    target: np.ndarray
    offline: np.ndarray
    causal: np.ndarray

    @classmethod
    def pooled(cls, parts: Sequence[TraceEvaluation]) -> TraceEvaluation:
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in FIELDS})

    def levels(self) -> dict[str, Any]:
        """Pooled metrics per decoding, and the same per recording and per group.

        ``offline``/``causal`` also hold ``subject_mae``, the mean of the per-group MAEs (each
        subject counts once, however long its recordings). Windows with a NaN target are not
        scored; their number is ``unscored_windows``.
        """
        known = np.isfinite(self.target)
        if not known.any():
            raise DataError("no window has a known target value: nothing to score")
        out: dict[str, Any] = {}
        per_group = self._breakdown(self.groups, known)
        for decoding in DECODINGS:
            metrics = regression_metrics(self.target[known], getattr(self, decoding)[known])
            maes = [entry[decoding]["mae"] for entry in per_group.values() if entry["n"]]
            out[decoding] = {**metrics, "subject_mae": float(np.mean(maes))}
        out["per_record"] = self._breakdown(self.ids, known, with_group=True)
        out["per_group"] = per_group
        out["unscored_windows"] = int((~known).sum())
        return out

    def _breakdown(
        self, keys: np.ndarray, known: np.ndarray, *, with_group: bool = False
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in dict.fromkeys(keys.tolist()):  # first-seen order
            rows = (keys == key) & known
            entry: dict[str, Any] = {"n": int(rows.sum())}
            if with_group:
                entry["group"] = str(self.groups[keys == key][0])
            for decoding in DECODINGS:
                if rows.any():
                    metrics = regression_metrics(self.target[rows], getattr(self, decoding)[rows])
                    entry[decoding] = {k: metrics[k] for k in PER_PART_KEYS}
            out[str(key)] = entry
        return out

    def write_csv(self, path: Path) -> None:
        """The rows as CSV, NaN targets as empty cells."""
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_HEADER)
            for row in zip(*(getattr(self, name) for name in FIELDS), strict=True):
                rid, group, window, start, target, offline, causal = row
                known = "" if np.isnan(target) else f"{target:.3f}"
                writer.writerow(
                    [
                        rid,
                        group,
                        int(window),
                        f"{start:g}",
                        known,
                        f"{offline:.3f}",
                        f"{causal:.3f}",
                    ]
                )


def reference_windows(data: SignalSet, length: int, stride: int) -> Windows:
    """The window of every value of the records' target traces (starts ``i * stride``)."""
    owner, starts = trace_windows([len(t) for t in data.targets or []], stride)
    return Windows(owner, starts, length, np.zeros(len(owner), dtype=bool))


def recording_windows(lengths: np.ndarray, length: int, stride: int) -> Windows:
    """Every complete window of unlabelled recordings (starts ``i * stride``)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    counts = np.where(lengths >= length, (lengths - length) // stride + 1, 0)
    short = np.flatnonzero(counts == 0)
    if len(short):
        raise DataError(
            f"{len(short)} recordings are shorter than one window of {length} samples "
            f"(the shortest has {int(lengths.min())}); nothing to estimate"
        )
    owner, starts = trace_windows(counts, stride)
    return Windows(owner, starts, length, np.zeros(len(owner), dtype=bool))


def decode_records(
    task: Task, outputs: np.ndarray, windows: Windows, n_records: int
) -> dict[str, list[np.ndarray]]:
    """Each record's window outputs decoded offline and causally (values per window)."""
    if not isinstance(task, RegressionTask):
        raise DataError(
            f"per-window traces are values: the task must be regression, not {task.kind}"
        )
    decoded: dict[str, list[np.ndarray]] = {d: [] for d in DECODINGS}
    for record in range(n_records):
        mine = outputs[windows.owner == record]
        for decoding in DECODINGS:
            decoded[decoding].append(task.decode(mine, causal=decoding == "causal"))
    return decoded


def evaluate_traces(
    model: nn.Module, task: Task, data: SignalSet, *, length: int, batch_size: int = 512
) -> TraceEvaluation:
    """Score ``model`` on normalised features ``data`` whose targets are per-window traces."""
    target_windows = TargetWindows.of(data)
    if target_windows is None or not isinstance(data.targets, list):
        raise DataError("evaluate_traces needs per-window target traces (meta 'target_windows')")
    window_length, stride = target_windows.in_samples(data.fs)
    if window_length != length:
        raise DataError(
            f"the model sees windows of {length} samples, the targets belong to windows of "
            f"{window_length} at {data.fs:g} Hz"
        )
    windows = reference_windows(data, length, stride)
    outputs = window_outputs(model, data.signals, windows, batch_size)
    decoded = decode_records(task, outputs, windows, len(data))
    groups = data.groups if data.groups is not None else np.array(data.ids)
    counts = np.bincount(windows.owner, minlength=len(data))
    return TraceEvaluation(
        ids=np.repeat(np.array(data.ids), counts),
        groups=np.repeat(np.asarray(groups).astype(str), counts),
        window=windows.starts // stride,
        start_s=windows.starts / data.fs,
        target=np.concatenate([np.asarray(t, dtype=np.float64) for t in data.targets]),
        offline=np.concatenate(decoded["offline"]),
        causal=np.concatenate(decoded["causal"]),
    )


def predict_traces(
    model: nn.Module, task: Task, data: SignalSet, *, length: int, stride: int
) -> list[dict[str, np.ndarray]]:
    """Per unlabelled recording of normalised features ``data``: ``start_s`` of every
    complete window and its value decoded ``offline`` and ``causal``."""
    windows = recording_windows(data.lengths, length, stride)
    outputs = window_outputs(model, data.signals, windows)
    decoded = decode_records(task, outputs, windows, len(data))
    return [
        {
            "start_s": windows.starts[windows.owner == r] / data.fs,
            **{d: decoded[d][r] for d in DECODINGS},
        }
        for r in range(len(data))
    ]
