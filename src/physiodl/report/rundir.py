"""Read a run directory (``docs/architecture.md``, "The run directory") for the report.

Only ``metrics.json`` is required; every other file is optional and, when absent, is
listed in `RunData.missing` so that the report can say what it could not show.
A file that is present but malformed raises a `DataError` naming the file.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physiodl.errors import DataError


def _bad(path: Path, problem: str) -> DataError:
    """An error for a malformed file of the run directory, saying what to do."""
    advice = "re-run the recipe with `physiodl run`"
    if path.name != "metrics.json":
        advice += ", or delete the file to leave it out of the report"
    return DataError(f"{path}: {problem}; {advice}")


@dataclass(frozen=True)
class Table:
    """A CSV file: its path, column names and rows (strings), in file order."""

    path: Path
    columns: list[str]
    rows: list[dict[str, str]]


@dataclass(frozen=True)
class Predictions:
    """Record-level predictions of a classifier, aligned with the run's ``classes``."""

    path: Path
    ids: list[str]
    targets: list[str]
    predictions: list[str]
    probabilities: np.ndarray  # (records, classes)


@dataclass(frozen=True)
class Example:
    """One example record: its raw signal (mV) and its model features ``(channels, frames)``."""

    id: str
    label: str
    raw: np.ndarray
    features: np.ndarray


@dataclass(frozen=True)
class Examples:
    """The contents of ``examples.npz``."""

    raw_fs: float
    feature_fs: float
    feature_channels: list[str]
    items: list[Example]


@dataclass(frozen=True)
class RunData:
    """Everything the report shows, read from one run directory."""

    path: Path
    recipe: str
    task: str
    classes: list[str]
    models: dict[str, dict[str, Any]]
    comparison: Table | None
    histories: dict[str, dict[str, np.ndarray]]
    predictions: dict[str, Predictions]
    examples: Examples | None
    metadata: dict[str, Any] | None
    config_text: str | None
    missing: list[str]


def read_run_dir(run_dir: Path) -> RunData:
    """Read ``run_dir``; a `DataError` if ``metrics.json`` is absent or any file is malformed."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise DataError(
            f"{metrics_path} not found: a report needs the metrics.json that `physiodl run` "
            "writes into its run directory; pass that directory (runs/<recipe>/<run id>)"
        )
    metrics = _read_json(metrics_path)
    models = _require(metrics, "models", metrics_path)
    if not isinstance(models, dict) or not models:
        raise _bad(metrics_path, "'models' must map model names to metrics")
    if bad := [name for name, entry in models.items() if not isinstance(entry, dict)]:
        raise _bad(metrics_path, f"the entries of models {bad} are not objects")
    task = str(metrics.get("task", "classification"))
    classes = [str(c) for c in metrics.get("classes") or []]
    if task == "classification" and not classes:
        raise _bad(metrics_path, "a classification run needs 'classes'")

    missing: list[str] = []

    def optional(relative: str) -> Path | None:
        path = run_dir / relative
        if path.is_file():
            return path
        missing.append(relative)
        return None

    comparison_path = optional("comparison.csv")
    histories: dict[str, dict[str, np.ndarray]] = {}
    predictions: dict[str, Predictions] = {}
    for name, entry in models.items():
        if entry.get("trainable") is False:
            pass  # nothing trained, no history
        elif (fold0 := run_dir / "models" / name / "fold0" / "history.csv").is_file():
            histories[name] = _read_history(fold0)  # cross-validation: the first fold's
        elif history_path := optional(f"models/{name}/history.csv"):
            histories[name] = _read_history(history_path)
        if task != "classification":
            continue
        if predictions_path := optional(f"models/{name}/predictions.csv"):
            predictions[name] = classification_predictions(read_csv(predictions_path), classes)
    examples_path = optional("examples.npz") if task == "classification" else None
    metadata_path = optional("metadata.json")
    metadata = _read_json(metadata_path) if metadata_path else None
    if metadata_path and metadata:
        try:
            to_float(metadata.get("duration_s"))
        except (TypeError, ValueError) as err:
            raise _bad(metadata_path, f"duration_s is not a number of seconds ({err})") from err
    config_path = optional("config.toml")
    return RunData(
        path=run_dir,
        recipe=str(metrics.get("recipe", run_dir.name)),
        task=task,
        classes=classes,
        models=models,
        comparison=read_csv(comparison_path) if comparison_path else None,
        histories=histories,
        predictions=predictions,
        examples=_read_examples(examples_path) if examples_path else None,
        metadata=metadata,
        config_text=config_path.read_text(encoding="utf-8") if config_path else None,
        missing=missing,
    )


def read_csv(path: Path) -> Table:
    """A CSV file with a header row as a `Table`."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise _bad(path, "empty (no header row)")
        rows = list(reader)
    if any(None in row for row in rows):
        raise _bad(path, "rows with more cells than header columns")
    return Table(path=path, columns=list(reader.fieldnames), rows=rows)


def to_float(text: str | float | None) -> float:
    """A CSV or JSON number as a float; empty, ``None`` and ``nan`` give NaN."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "nan", "none")):
        return math.nan
    return float(text)


def classification_predictions(table: Table, classes: list[str]) -> Predictions:
    """Parse a ``predictions.csv`` table: ``id, target, prediction, p_<class>...``.

    ``target`` and ``prediction`` may be class names or class indices.
    """
    needed = ["id", "target", "prediction", *(f"p_{c}" for c in classes)]
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise _bad(table.path, f"the columns {absent} are missing")

    def class_name(value: str, row: int) -> str:
        if value in classes:
            return value
        if value.isdigit() and int(value) < len(classes):
            return classes[int(value)]
        raise _bad(table.path, f"row {row + 2}: {value!r} is not one of the classes {classes}")

    try:
        probabilities = np.array(
            [[to_float(r[f"p_{c}"]) for c in classes] for r in table.rows], dtype=float
        ).reshape(len(table.rows), len(classes))
    except ValueError as err:
        raise _bad(table.path, f"a probability is not a number ({err})") from err
    if not np.isfinite(probabilities).all():
        raise _bad(table.path, "some class probabilities are missing or not finite")
    return Predictions(
        path=table.path,
        ids=[r["id"] for r in table.rows],
        targets=[class_name(r["target"], i) for i, r in enumerate(table.rows)],
        predictions=[class_name(r["prediction"], i) for i, r in enumerate(table.rows)],
        probabilities=probabilities,
    )


def _require(mapping: dict[str, Any], key: str, path: Path) -> Any:
    if key not in mapping:
        raise _bad(path, f"no {key!r} entry")
    return mapping[key]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _bad(path, f"not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise _bad(path, "not a JSON object")
    return value


def _read_history(path: Path) -> dict[str, np.ndarray]:
    table = read_csv(path)
    if "epoch" not in table.columns:
        raise _bad(path, "no 'epoch' column")
    try:
        return {c: np.array([to_float(r[c]) for r in table.rows]) for c in table.columns}
    except ValueError as err:
        raise _bad(path, f"a value is not a number ({err})") from err


def _read_examples(path: Path) -> Examples:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as err:
        raise _bad(path, f"not a readable .npz file ({err})") from err
    for key in ("ids", "labels", "raw_fs", "feature_fs", "feature_channels"):
        if key not in arrays:
            raise _bad(path, f"no {key!r} array")
    ids, labels = arrays["ids"], arrays["labels"]
    if len(ids) != len(labels):
        raise _bad(path, f"{len(ids)} ids but {len(labels)} labels")
    items = []
    for i, (record_id, label) in enumerate(zip(ids, labels, strict=True)):
        if f"raw_{i}" not in arrays or f"features_{i}" not in arrays:
            raise _bad(path, f"no raw_{i} or features_{i} array for example {record_id}")
        features = arrays[f"features_{i}"]
        if features.ndim != 2:
            raise _bad(path, f"features_{i} must be (channels, frames), not {features.shape}")
        if features.shape[0] != len(arrays["feature_channels"]):
            raise _bad(
                path,
                f"features_{i} has {features.shape[0]} rows for "
                f"{len(arrays['feature_channels'])} feature_channels",
            )
        items.append(Example(str(record_id), str(label), arrays[f"raw_{i}"].ravel(), features))
    return Examples(
        raw_fs=float(arrays["raw_fs"]),
        feature_fs=float(arrays["feature_fs"]),
        feature_channels=[str(c) for c in arrays["feature_channels"]],
        items=items,
    )


def level_metrics(run: RunData, model: str, level: str) -> dict[str, Any] | None:
    """``metrics.json`` ``models.<model>.<level>`` (``"record"`` or ``"chunk"``), if present."""
    value = run.models[model].get(level)
    if value is not None and not isinstance(value, dict):
        raise _bad(run.path / "metrics.json", f"models.{model}.{level} must be an object")
    return value
