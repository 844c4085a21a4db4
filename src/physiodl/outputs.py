"""The files of a run directory besides checkpoints: tables, predictions, examples, metadata."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.metadata
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physiodl.errors import PhysioDLError
from physiodl.evaluation import Evaluation
from physiodl.features import FeaturePipeline
from physiodl.peak_matching import match, peaks_of
from physiodl.recipes import RecipeConfig
from physiodl.signalset import SignalSet
from physiodl.splits import Split
from physiodl.tasks import DetectionTask, Task
from physiodl.trace_evaluation import TraceEvaluation

_SUMMARY_COLUMNS = ("arch", "n_params", "best_epoch", "train_seconds", "examples_per_second")
_LEVEL_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "cinc_score", "af_f1")
_REGRESSION_METRICS = (
    "mae",
    "subject_mae",
    "rmse",
    "bias",
    "within_5",
    "within_10",
    "pearson_r",
)
_DETECTION_METRICS = ("efficiency", "fp_per_event", "position_error", "threshold")
_BIN_METRICS = ("bin_accuracy", "bin_mae")
_LEVELS = ("chunk", "record", "offline", "causal")


def comparison_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per model: summary columns, then the metrics of each level (chunk and
    record; offline and causal for per-window traces), then the same on the test part."""
    rows = []
    for name, result in results.items():
        row: dict[str, Any] = {"model": name}
        row |= {c: result.get(c) for c in _SUMMARY_COLUMNS}
        row |= _level_columns(result, "")
        if isinstance(result.get("test"), Mapping):
            row |= _level_columns(result["test"], "test_")
        rows.append(row)
    return rows


def _level_columns(result: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for level in _LEVELS:
        metrics = result.get(level, {})
        for key in (*_LEVEL_METRICS, *_REGRESSION_METRICS, *_DETECTION_METRICS, *_BIN_METRICS):
            if metrics.get(key) is not None:
                row[f"{prefix}{level}_{key}"] = metrics[key]
        if level == "record":
            for cls, scores in metrics.get("per_class", {}).items():
                row[f"{prefix}record_f1_{cls}"] = scores["f1"]
    return row


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows as CSV: every key of any row is a column (in first-seen order), blank where a row
    lacks it; floats with 6 significant digits."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def write_predictions(path: Path, evaluation: Evaluation | TraceEvaluation, task: Task) -> None:
    """The predictions behind an evaluation: one row per window of target traces (id, group,
    window, start_s, target, offline, causal); for detection one row per record with its true
    and predicted peaks (`event_peak_rows`); else one per record (id, target, prediction and,
    for classification, one probability per class)."""
    if isinstance(evaluation, TraceEvaluation):
        evaluation.write_csv(path)
        return
    ids, targets = evaluation.ids, evaluation.record_targets
    predictions = evaluation.record_predictions
    assert targets is not None
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        if isinstance(task, DetectionTask):
            rows = event_peak_rows(task, ids, list(targets), list(predictions))
            writer.writerow(list(rows[0]))
            writer.writerows(row.values() for row in rows)
        elif task.kind == "classification":
            classes = task.classes
            writer.writerow(["id", "target", "prediction", *(f"p_{c}" for c in classes)])
            for rid, target, proba in zip(ids, targets, predictions, strict=True):
                best = classes[int(np.argmax(proba))]
                writer.writerow([rid, classes[int(target)], best, *(f"{p:.6f}" for p in proba)])
        else:
            writer.writerow(["id", "target", "prediction"])
            for rid, target, pred in zip(ids, targets, predictions, strict=True):
                writer.writerow([rid, float(np.mean(target)), float(np.mean(pred))])


def event_peak_rows(
    task: DetectionTask,
    ids: Sequence[str],
    targets: Sequence[np.ndarray] | None,
    predictions: Sequence[np.ndarray],
) -> list[dict[str, Any]]:
    """Per record: predicted peak positions (bins) at the task's threshold and their scores;
    with targets also the true peaks, how many were found and the false positives."""
    matching = task.matching
    rows = []
    for i, (rid, scores) in enumerate(zip(ids, predictions, strict=True)):
        mask = None if targets is None else np.isnan(targets[i])
        peaks = peaks_of(scores, task.threshold, task.min_distance, mask=mask)
        row: dict[str, Any] = {"id": rid}
        if targets is not None:
            true = matching.true_peaks(targets[i])
            found = len(match(true, peaks.positions, task.tolerance))
            row |= {
                "true_peaks": _positions(true),
                "found": found,
                "false_positives": len(peaks.positions) - found,
            }
        row |= {"peaks": _positions(peaks.positions), "scores": _positions(peaks.heights, ".3f")}
        rows.append(row)
    return rows


def _positions(values: np.ndarray, fmt: str = ".1f") -> str:
    return " ".join(f"{v:{fmt}}" for v in values)


def write_bin_examples(
    path: Path, data: SignalSet, predictions: Sequence[np.ndarray], n: int = 3
) -> None:
    """The first ``n`` records' first input channel, target and per-bin prediction (report)."""
    chosen = range(min(n, len(data)))
    np.savez(
        path,
        ids=np.array([data.ids[i] for i in chosen]),
        channel=np.array(data.channels[0]),
        inputs=np.stack([data.signals[i][0] for i in chosen]),
        targets=np.stack([np.asarray(data.targets[i]) for i in chosen]),  # type: ignore[index]
        predictions=np.stack([predictions[i] for i in chosen]),
    )


def read_record_probabilities(
    path: Path, classes: tuple[str, ...]
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Record ids, target class codes and class probabilities of `write_predictions`'s file."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        targets = np.array([classes.index(row["target"]) for row in rows])
        proba = np.array([[float(row[f"p_{c}"]) for c in classes] for row in rows])
    except (KeyError, ValueError) as err:
        raise PhysioDLError(
            f"{path} is not a prediction file for the classes {', '.join(classes)} ({err}); "
            "re-run the recipe"
        ) from None
    return tuple(row["id"] for row in rows), targets, proba


def write_examples(
    path: Path, raw: SignalSet, split: Split, pipeline: FeaturePipeline, per_class: int = 2
) -> None:
    """Two validation records per class, raw and as a model sees them, for the report."""
    if raw.classes is None or not isinstance(raw.targets, np.ndarray):
        return
    val = split.validation
    chosen = [i for c in range(len(raw.classes)) for i in val[raw.targets[val] == c][:per_class]]
    examples = raw.subset(chosen)
    features = pipeline(examples)
    arrays: dict[str, Any] = {
        "ids": np.array(examples.ids),
        "labels": np.array([raw.classes[int(t)] for t in examples.targets]),
        "raw_fs": raw.fs,
        "feature_fs": features.fs,
        "feature_channels": np.array(features.channels),
    }
    for i, (x, f) in enumerate(zip(examples.signals, features.signals, strict=True)):
        arrays[f"raw_{i}"] = x[0]
        arrays[f"features_{i}"] = f
    np.savez(path, **arrays)


def run_metadata(
    config: RecipeConfig,
    raw: SignalSet,
    splits: Sequence[Split],
    command: str,
    started: float,
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """Versions, platform, command, data provenance and timings of a run."""
    finished = dt.datetime.now().astimezone()
    began = dt.datetime.fromtimestamp(started).astimezone()
    data: dict[str, Any] = {
        "dataset": config.data.dataset,
        "path": raw.meta.get("source"),
        "sha256": raw.meta.get("sha256"),
        "n_records": len(raw),
        "excluded": raw.meta.get("excluded", {}),
        "skipped": raw.meta.get("skipped", {}),
    }
    if raw.classes is not None:
        data["class_counts"] = raw.class_counts()
    return {
        **{pkg: _version(pkg) for pkg in ("physiodl", "torch", "lightning", "numpy", "scipy")},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "command": command,
        "seed": config.seed,
        "started": began.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "duration_s": round(finished.timestamp() - started, 1),
        "data": data,
        "split": _split_sizes(config, raw, splits),
        "threads": environ.get("OMP_NUM_THREADS"),
    }


def _split_sizes(config: RecipeConfig, raw: SignalSet, splits: Sequence[Split]) -> dict[str, Any]:
    """Records per part (per fold under cross-validation) and the test groups."""
    sizes: dict[str, Any] = {"kind": config.split.kind}
    if len(splits) > 1:
        sizes["folds"] = len(splits)
        sizes["train"] = [len(s.train) for s in splits]
        sizes["validation"] = [len(s.validation) for s in splits]
    else:
        sizes["train"] = len(splits[0].train)
        sizes["validation"] = len(splits[0].validation)
    sizes["test"] = len(splits[0].test)
    if raw.groups is not None and len(splits[0].test):
        sizes["test_groups"] = sorted({str(g) for g in raw.groups[splits[0].test]})
    return sizes


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
