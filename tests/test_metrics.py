"""Metrics against hand-computed values; CinC score by the official definition."""

from __future__ import annotations

import json

import numpy as np
import pytest

from physiodl.errors import DataError
from physiodl.metrics import calibration, classification_metrics, regression_metrics

CLASSES = ("N", "A", "O", "~")
# rows = true class, columns = predicted class
CONFUSION = np.array(
    [
        [5, 1, 0, 0],
        [1, 3, 0, 0],
        [1, 0, 2, 1],
        [0, 0, 1, 1],
    ]
)


def from_confusion(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets and probabilities (0.7 on the predicted class) giving ``confusion``."""
    y_true, y_pred = [], []
    for t, row in enumerate(confusion):
        for p, count in enumerate(row):
            y_true += [t] * count
            y_pred += [p] * count
    k = confusion.shape[0]
    proba = np.full((len(y_pred), k), 0.3 / (k - 1))
    proba[np.arange(len(y_pred)), y_pred] = 0.7
    return np.array(y_true), proba


def test_four_class_scores_match_the_hand_computed_confusion_matrix() -> None:
    m = classification_metrics(*from_confusion(CONFUSION), CLASSES)
    assert m["confusion"] == CONFUSION.tolist()
    assert m["n"] == 16
    assert m["accuracy"] == pytest.approx(11 / 16)
    assert m["balanced_accuracy"] == pytest.approx((5 / 6 + 3 / 4 + 2 / 4 + 1 / 2) / 4)
    assert m["per_class"]["N"]["precision"] == pytest.approx(5 / 7)
    assert m["per_class"]["O"]["recall"] == pytest.approx(2 / 4)
    assert m["per_class"]["~"]["support"] == 2
    # official CinC 2017: F1 of a class = 2 * Nxx / (sum of its row + sum of its column)
    f1 = {
        c: 2 * CONFUSION[i, i] / (CONFUSION[i].sum() + CONFUSION[:, i].sum())
        for i, c in enumerate(CLASSES)
    }
    assert (f1["N"], f1["A"], f1["O"], f1["~"]) == pytest.approx((10 / 13, 6 / 8, 4 / 7, 2 / 4))
    for c in CLASSES:
        assert m["per_class"][c]["f1"] == pytest.approx(f1[c])
    assert m["cinc_score"] == pytest.approx((10 / 13 + 6 / 8 + 4 / 7) / 3)
    assert m["macro_f1"] == pytest.approx(np.mean(list(f1.values())))
    assert m["af_f1"] == pytest.approx(0.75)
    assert 0.5 < m["auroc"] <= 1.0 and m["auroc_note"] is None
    json.dumps(m, allow_nan=False)


def test_binary_auroc_and_af_f1() -> None:
    y_true = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(y_true, np.stack([1 - p1, p1], axis=1), ("N", "A"))
    assert m["auroc"] == pytest.approx(0.75)
    # predictions N, N, N, A: F1 of A = 2 * 1 / (2 + 1)
    assert m["af_f1"] == pytest.approx(2 / 3)
    assert "cinc_score" not in m


def test_auroc_is_none_with_a_reason_when_a_class_is_absent() -> None:
    y_true, proba = from_confusion(np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]]))
    m = classification_metrics(y_true, proba, ("N", "A", "O"))
    assert m["auroc"] is None and "class O" in m["auroc_note"]
    assert m["per_class"]["O"]["f1"] == 0.0 and m["per_class"]["O"]["support"] == 0
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1) / 2)


def test_calibration_bins_and_expected_calibration_error() -> None:
    y_true = np.array([0, 1, 0, 1])
    proba = np.array([[0.95, 0.05], [0.95, 0.05], [0.65, 0.35], [0.35, 0.65]])
    c = calibration(y_true, proba, n_bins=10)
    assert c["counts"] == [0, 0, 0, 0, 0, 0, 2, 0, 0, 2]
    assert c["accuracy"][9] == 0.5 and c["accuracy"][6] == 1.0 and c["accuracy"][0] is None
    assert c["confidence"][9] == pytest.approx(0.95) and c["confidence"][6] == pytest.approx(0.65)
    assert c["bin_centres"][0] == pytest.approx(0.05)
    assert c["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.35)
    perfect = calibration(np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert perfect["ece"] == 0.0 and perfect["counts"][-1] == 2


def test_regression_metrics_known_values() -> None:
    m = regression_metrics(np.array([60, 70, 80, 90]), np.array([62, 67, 80, 101]))
    assert m["mae"] == pytest.approx(4.0)
    assert m["rmse"] == pytest.approx(np.sqrt(33.5))
    assert m["bias"] == pytest.approx(2.5)
    assert (m["within_5"], m["within_10"]) == (0.75, 0.75)
    assert m["pearson_r"] == pytest.approx(np.corrcoef([60, 70, 80, 90], [62, 67, 80, 101])[0, 1])
    assert regression_metrics(np.array([1.0, 2.0]), np.array([3.0, 3.0]))["pearson_r"] is None


def test_bad_inputs_are_data_errors() -> None:
    with pytest.raises(DataError, match=r"shape \(2, 2\)"):
        classification_metrics(np.array([0, 1]), np.ones((2, 3)) / 3, ("N", "A"))
    with pytest.raises(DataError, match=r"class codes 0\.\.1"):
        classification_metrics(np.array([0, 2]), np.full((2, 2), 0.5), ("N", "A"))
    with pytest.raises(DataError, match="sum to 1"):
        classification_metrics(np.array([0, 1]), np.ones((2, 2)), ("N", "A"))
    with pytest.raises(DataError, match="NaN"):
        regression_metrics(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
