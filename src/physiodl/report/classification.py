"""Report sections for classification runs: scores, confusion matrices, calibration, ROC."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import numpy as np

from physiodl.errors import DataError
from physiodl.report import html, plots
from physiodl.report.html import Section
from physiodl.report.rundir import RunData, level_metrics, to_float
from physiodl.report.sections import FigureStore, model_colours

MAIN_METRICS = (
    ("cinc_score", "CinC score (mean F1 of N, A, O)"),
    ("af_f1", "AF F1"),
    ("balanced_accuracy", "balanced accuracy"),
)
CALIBRATION_KEYS = ("confidence", "accuracy", "counts", "ece")
_RERUN = "re-run the recipe with `physiodl run`"


def classification_sections(run: RunData, store: FigureStore) -> list[Section]:
    """Scores, confusion matrices, reliability diagram and ROC curves, all at record level."""
    return [
        scores_section(run, store),
        confusion_section(run, store),
        calibration_section(run, store),
        roc_section(run, store),
    ]


def main_metric(run: RunData) -> tuple[str, str] | None:
    """The first of `MAIN_METRICS` that every model reports at record level: (key, label)."""
    for key, label in MAIN_METRICS:
        if all(_record(run, model).get(key) is not None for model in run.models):
            return key, label
    return None


def scores_section(run: RunData, store: FigureStore) -> Section:
    """The main record-level metric per model with its chunk-level value beside it."""
    metric = main_metric(run)
    if metric is None:
        keys = ", ".join(key for key, _ in MAIN_METRICS)
        text = f"No model-wide record-level metric among {keys} in metrics.json: no score chart."
        return Section("scores", "Scores", html.notice(text))
    key, label = metric
    models = list(run.models)
    record = [to_float(_record(run, m)[key]) for m in models]
    chunk = [to_float((level_metrics(run, m, "chunk") or {}).get(key)) for m in models]
    caption = (
        f"{label} on the validation split: whole recordings (solid, chunk outputs aggregated "
        "per recording) and single chunks (hatched)."
    )
    best = max(range(len(models)), key=lambda i: record[i])
    caption += f" Best on whole recordings: {models[best]} ({record[best]:.3f})."
    if lacking := [m for m, v in zip(models, chunk, strict=True) if np.isnan(v)]:
        caption += f" No chunk-level {label} for: {', '.join(lacking)}."
    fig = plots.score_bars(models, record, chunk, label, model_colours(run))
    body = store.embed("scores", fig, f"{label} per model", caption)
    auroc_notes = {m: _record(run, m).get("auroc_note") for m in models}
    if reasons := [f"{m}: {note}" for m, note in auroc_notes.items() if note]:
        body += html.notice("No record-level AUROC for " + "; ".join(reasons) + ".")
    return Section("scores", "Scores", body)


def confusion_section(run: RunData, store: FigureStore) -> Section:
    """Record-level confusion matrices: counts, coloured by the fraction of each true class."""
    k = len(run.classes)
    matrices: dict[str, np.ndarray] = {}
    for model in run.models:
        confusion = _record(run, model).get("confusion")
        if confusion is None:
            continue
        try:
            counts = np.array(confusion, dtype=float)
        except ValueError as err:
            raise DataError(
                f"{_where(run, model)}.confusion is not a matrix ({err}); {_RERUN}"
            ) from err
        if counts.shape != (k, k):
            raise DataError(
                f"{_where(run, model)}.confusion has shape {counts.shape}, expected ({k}, {k}) "
                f"for the classes {run.classes}; {_RERUN}"
            )
        matrices[model] = counts.astype(int)
    body = _lacking_notice(run, matrices, "a record-level confusion matrix")
    if matrices:
        fig = plots.confusion_matrices(matrices, run.classes)
        caption = (
            "Validation records: rows are the true class, columns the predicted class; each cell "
            "gives the count and the percentage of its row."
        )
        body += store.embed("confusion", fig, "confusion matrices per model", caption)
    return Section("confusion", "Confusion matrices", body)


def calibration_section(run: RunData, store: FigureStore) -> Section:
    """A reliability diagram with one line per model."""
    calibrations: dict[str, dict[str, Any]] = {}
    for model in run.models:
        calibration = _record(run, model).get("calibration")
        if calibration is None:
            continue
        absent = [key for key in CALIBRATION_KEYS if key not in calibration]
        lengths = {len(calibration[key]) for key in CALIBRATION_KEYS[:3] if key in calibration}
        if absent or len(lengths) > 1:
            raise DataError(
                f"{_where(run, model)}.calibration needs {list(CALIBRATION_KEYS)} with bins of "
                f"equal length (missing: {absent}); {_RERUN}"
            )
        calibrations[model] = calibration
    body = _lacking_notice(run, calibrations, "record-level calibration")
    if calibrations:
        fig = plots.reliability_diagram(calibrations, model_colours(run))
        caption = (
            "Validation records binned by the confidence of the predicted class: a calibrated "
            "model lies on the diagonal. ECE: expected calibration error (lower is better)."
        )
        body += store.embed("reliability", fig, "reliability diagram", caption)
    return Section("calibration", "Calibration", body)


def roc_section(run: RunData, store: FigureStore) -> Section:
    """ROC curves from ``predictions.csv`` for two-class runs."""
    if len(run.classes) != 2:
        text = (
            f"ROC curves are drawn for two-class runs; this run has {len(run.classes)} classes "
            "(AUROC is in the comparison table)."
        )
        return Section("roc", "ROC curves", html.notice(text))
    positive = run.classes[1]
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    one_class = []
    for model, predictions in run.predictions.items():
        is_positive = np.array([t == positive for t in predictions.targets])
        score = predictions.probabilities[:, 1]
        if is_positive.all() or not is_positive.any():
            one_class.append(model)
        else:
            scores[model] = (is_positive, score)
    body = _lacking_notice(run, run.predictions, "predictions.csv")
    if one_class:
        body += html.notice(f"Only one class among the records of: {', '.join(one_class)}.")
    if scores:
        fig = plots.roc_curves(scores, positive, model_colours(run))
        caption = f"Validation records, positive class {positive}, scored by p_{positive}."
        body += store.embed("roc", fig, "ROC curves per model", caption)
    return Section("roc", "ROC curves", body)


def _record(run: RunData, model: str) -> dict[str, Any]:
    values = level_metrics(run, model, "record")
    if values is None:
        raise DataError(f"{run.path / 'metrics.json'}: models.{model} has no 'record'; {_RERUN}")
    return values


def _where(run: RunData, model: str) -> str:
    return f"{run.path / 'metrics.json'}: models.{model}.record"


def _lacking_notice(run: RunData, present: Container[str], what: str) -> str:
    lacking = [m for m in run.models if m not in present]
    return html.notice(f"No {what} for: {', '.join(lacking)}.") if lacking else ""
