"""Peak finding and matching: efficiency, false positives, position error, curves."""

from __future__ import annotations

import numpy as np
import pytest

from physiodl.peak_matching import PeakMatching, match, operating_threshold, peaks_of


def bump(length: int, centres: list[float], heights: list[float], width: float = 1.5):
    x = np.arange(length) + 0.5
    out = np.zeros(length)
    for c, h in zip(centres, heights, strict=True):
        out = np.maximum(out, h * np.exp(-0.5 * ((x - c) / width) ** 2))
    return out


def test_peak_positions_are_refined_between_bins() -> None:
    peaks = peaks_of(bump(100, [30.3, 70.8], [1.0, 0.6]), threshold=0.5)
    np.testing.assert_allclose(peaks.positions, [30.3, 70.8], atol=0.06)
    np.testing.assert_allclose(peaks.heights, [1.0, 0.6], atol=0.05)
    assert len(peaks_of(bump(100, [30.3, 70.8], [1.0, 0.6]), threshold=0.7).positions) == 1


def test_matching_is_one_to_one_within_the_tolerance() -> None:
    true = np.array([10.0, 20.0, 50.0])
    # two predictions near 10 (one is a false positive), one 5.5 bins from 50 (too far)
    predicted = np.array([9.0, 11.5, 21.0, 55.5])
    pairs = match(true, predicted, tolerance=5.0)
    np.testing.assert_allclose(sorted(pairs), [1.0, 1.0])
    # with more room, the assignment still maximises the number of matches first
    assert len(match(np.array([10.0, 14.0]), np.array([12.5, 16.0]), tolerance=2.5)) == 2
    assert len(match(true, np.array([]), 5.0)) == 0


def test_scores_count_found_false_positives_and_ignore_masked_bins() -> None:
    targets = [bump(200, [40.5, 100.5], [1.0, 1.0]), bump(200, [60.5], [1.0])]
    targets[1][150:170] = np.nan  # masked region
    outputs = [
        bump(200, [41.5, 180.5], [0.9, 0.8]),  # one found, one false positive
        bump(200, [60.5, 160.5], [0.9, 0.95]),  # found; the peak at 160 is masked
    ]
    scores = PeakMatching(tolerance=5).scores(targets, outputs, threshold=0.5)
    assert scores["n_events"] == 2 and scores["n_true"] == 3
    assert scores["found"] == 2 and scores["false_positives"] == 1
    assert scores["efficiency"] == pytest.approx(2 / 3)
    assert scores["fp_per_event"] == pytest.approx(0.5)
    assert scores["position_error"] == pytest.approx(0.5, abs=0.05)
    curve = scores["curve"]
    assert np.all(np.diff(curve["threshold"]) > 0)
    assert np.all(np.diff(curve["fp_per_event"]) <= 1e-12)  # fewer peaks as it rises
    assert curve["fp_per_event"][-1] == 0 and curve["efficiency"][-1] == 0
    # above the false positive's height (0.8) but below the true ones' (0.9)
    high = PeakMatching(tolerance=5).scores(targets, outputs, threshold=0.85)
    assert (high["efficiency"], high["fp_per_event"]) == (pytest.approx(2 / 3), 0.0)


def test_operating_point_is_best_efficiency_within_the_budget() -> None:
    curve = {
        "threshold": [0.1, 0.3, 0.5, 0.7, 0.9],
        "efficiency": [0.99, 0.97, 0.95, 0.95, 0.6],
        "fp_per_event": [2.0, 0.5, 0.19, 0.1, 0.0],
    }
    assert operating_threshold(curve, 0.2) == 0.7  # ties: the higher threshold
    assert operating_threshold(curve, 1.0) == 0.3
    assert operating_threshold({**curve, "fp_per_event": [9.0] * 5}, 0.2) == 0.9


def test_epoch_counts_agree_with_the_full_scores() -> None:
    rng = np.random.default_rng(1)
    matching = PeakMatching(tolerance=5, fp_budget=0.5)
    targets = [bump(300, list(rng.uniform(20, 280, 4)), [1.0] * 4) for _ in range(20)]
    outputs = [
        np.clip(t + 0.4 * bump(300, list(rng.uniform(0, 300, 2)), [1.0, 1.0]), 0, 1)
        + 0.01 * rng.random(300)
        for t in targets
    ]
    thresholds = np.array([0.3, 0.5, 0.95])
    counts = matching.counts(targets, outputs, thresholds)
    for k, threshold in enumerate(thresholds):
        full = matching.scores(targets, outputs, float(threshold))
        assert counts[0, k] == full["found"]
        assert counts[1, k] - counts[0, k] == full["false_positives"]
    assert counts[2, 0] == sum(len(matching.true_peaks(t)) for t in targets)
    assert counts[3, 0] == 20
    best = matching.efficiency_at_budget(counts)
    efficiency = counts[0] / counts[2]
    fp = (counts[1] - counts[0]) / counts[3]
    assert best == pytest.approx(efficiency[fp <= 0.5].max())
