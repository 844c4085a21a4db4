"""Classification and regression metrics as plain floats and lists (JSON-ready), from sklearn."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from physiodl.errors import DataError

#: The CinC 2017 score is the mean F1 of these classes (noise, ``~``, is left out).
CINC_CLASSES = ("N", "A", "O")


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Scores of class probabilities ``proba`` ``(n, K)`` against class codes ``y_true``.

    Returns accuracy, balanced accuracy, macro F1, per-class precision / recall / F1 / support
    keyed by class name, AUROC (binary: class 1 positive; multi-class: one-vs-rest macro; ``None``
    with ``auroc_note`` saying why when a class is absent), the confusion matrix (rows = true
    class), `calibration`, the CinC 2017 score (mean F1 of N, A and O) when those classes are
    present, and ``af_f1`` (F1 of class A) when A is a class.
    """
    classes = list(classes)
    y_true, proba = _check_classification(y_true, proba, len(classes))
    labels = np.arange(len(classes))
    y_pred = proba.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class absent from y_true
        balanced = skm.balanced_accuracy_score(y_true, y_pred)
    auroc, note = _auroc(y_true, proba, classes)
    out: dict[str, Any] = {
        "n": len(y_true),
        "classes": classes,
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "auroc": auroc,
        "auroc_note": note,
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "calibration": calibration(y_true, proba),
    }
    if set(CINC_CLASSES) <= set(classes):
        out["cinc_score"] = float(np.mean([f1[classes.index(c)] for c in CINC_CLASSES]))
    if "A" in classes:
        out["af_f1"] = float(f1[classes.index("A")])
    return out


def calibration(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Reliability of the top-class probability in ``n_bins`` equal-width bins over [0, 1].

    Returns bin centres, per-bin accuracy and mean confidence (``None`` for an empty bin), counts
    and the expected calibration error ``ece = sum(count / n * |accuracy - confidence|)``.
    """
    if n_bins < 1:
        raise ValueError(f"calibration needs n_bins >= 1, got {n_bins}")
    y_true, proba = _check_classification(y_true, proba, np.asarray(proba).shape[-1])
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    hits = np.bincount(bins, weights=correct, minlength=n_bins)
    sure = np.bincount(bins, weights=confidence, minlength=n_bins)
    filled = counts > 0
    accuracy = np.divide(hits, counts, out=np.zeros(n_bins), where=filled)
    mean_confidence = np.divide(sure, counts, out=np.zeros(n_bins), where=filled)
    ece = float(np.sum(counts * np.abs(accuracy - mean_confidence)) / len(y_true))
    return {
        "bin_centres": ((np.arange(n_bins) + 0.5) / n_bins).tolist(),
        "accuracy": [float(a) if f else None for a, f in zip(accuracy, filled, strict=True)],
        "confidence": [
            float(c) if f else None for c, f in zip(mean_confidence, filled, strict=True)
        ],
        "counts": counts.tolist(),
        "ece": ece,
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """MAE, RMSE, bias (mean prediction minus truth), shares within 5 and 10 units, Pearson r.

    ``pearson_r`` is ``None`` when either side is constant.
    """
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape or len(y_true) == 0:
        raise DataError(
            f"regression metrics need equal, non-empty sizes: {y_true.shape}, {y_pred.shape}"
        )
    if not (np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
        raise DataError("regression metrics: targets or predictions contain NaN or inf")
    error = np.abs(y_pred - y_true)
    constant = np.ptp(y_true) == 0 or np.ptp(y_pred) == 0
    return {
        "n": len(y_true),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": float(skm.root_mean_squared_error(y_true, y_pred)),
        "bias": float(np.mean(y_pred - y_true)),
        "within_5": float(np.mean(error <= 5)),
        "within_10": float(np.mean(error <= 10)),
        "pearson_r": None if constant else float(stats.pearsonr(y_true, y_pred).statistic),
    }


def _auroc(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str]
) -> tuple[float | None, str | None]:
    absent = [c for i, c in enumerate(classes) if not np.any(y_true == i)]
    if absent:
        return None, f"AUROC undefined: no true examples of class {', '.join(absent)}"
    if len(classes) == 2:
        return float(skm.roc_auc_score(y_true, proba[:, 1])), None
    score = skm.roc_auc_score(
        y_true, proba, multi_class="ovr", average="macro", labels=np.arange(len(classes))
    )
    return float(score), None


def _check_classification(
    y_true: np.ndarray, proba: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (len(y_true), n_classes):
        raise DataError(
            f"classification metrics need probabilities of shape ({len(y_true)}, {n_classes}), "
            f"got {proba.shape}"
        )
    if len(y_true) == 0:
        raise DataError("classification metrics: no examples")
    codes_ok = np.issubdtype(y_true.dtype, np.integer)
    if not codes_ok or y_true.min() < 0 or y_true.max() >= n_classes:
        raise DataError(f"classification metrics need class codes 0..{n_classes - 1} as targets")
    if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-4):
        raise DataError("classification metrics need probabilities that sum to 1 per example")
    return y_true, proba / proba.sum(axis=1, keepdims=True)
