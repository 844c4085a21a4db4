"""Peak matching: efficiency, false positives per event and position error of a per-bin output.

Predicted peaks are the local maxima of a per-bin score at or above a threshold (at least
``min_distance`` bins apart; the higher one wins); true peaks are the maxima of the target at
or above ``truth_height``. A true peak is *found* when a predicted peak lies within
``tolerance`` bins; matching is one to one (the most matches, then the smallest total
distance). Positions are refined to a fraction of a bin by a parabola through the maximum
and its neighbours. Bins whose target is NaN are masked: a predicted peak there is neither a
match nor a false positive.

A predicted peak set at threshold ``t`` is the set at a lower threshold filtered by height
(the higher of two close maxima always survives), so the whole efficiency vs false-positive
curve comes from one peak search per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.signal import find_peaks

from physiodl.errors import DataError

CURVE_POINTS = 200
#: Thresholds of the per-epoch validation efficiency (`PeakMatching.counts`).
EPOCH_THRESHOLDS = np.round(np.linspace(0.02, 0.98, 49), 4)


@dataclass(frozen=True)
class Peaks:
    """Peaks of one event: positions (bins, refined) and heights, by position."""

    positions: np.ndarray
    heights: np.ndarray

    def above(self, threshold: float) -> np.ndarray:
        return self.positions[self.heights >= threshold]


def peaks_of(
    scores: np.ndarray, threshold: float, min_distance: int = 1, mask: np.ndarray | None = None
) -> Peaks:
    """Local maxima of ``scores`` ``(bins,)`` at or above ``threshold``; none where ``mask``."""
    clean = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    index, _ = find_peaks(clean, height=threshold, distance=max(int(min_distance), 1))
    if mask is not None and len(index):
        index = index[~mask[index]]
    return Peaks(_refined(clean, index), clean[index])


def _refined(scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Bin centres of the maxima, moved by the vertex of a parabola through 3 bins (≤ 0.5)."""
    positions = index.astype(np.float64) + 0.5
    inner = (index > 0) & (index < len(scores) - 1)
    i = index[inner]
    left, centre, right = scores[i - 1], scores[i], scores[i + 1]
    ok = np.isfinite(left) & np.isfinite(right)
    curvature = left - 2 * centre + right
    shift = np.divide(
        0.5 * (left - right), curvature, out=np.zeros_like(centre), where=ok & (curvature < 0)
    )
    positions[inner] += np.clip(shift, -0.5, 0.5)
    return positions


def match(true: np.ndarray, predicted: np.ndarray, tolerance: float) -> np.ndarray:
    """Distances of the matched pairs: one to one, most matches, then least total distance."""
    if len(true) == 0 or len(predicted) == 0:
        return np.zeros(0)
    distance = np.abs(true[:, None] - predicted[None, :])
    penalty = (tolerance + 1.0) * (len(true) + len(predicted)) + 1.0
    cost = np.where(distance <= tolerance, distance, penalty)
    rows, cols = linear_sum_assignment(cost)
    pairs = distance[rows, cols]
    return pairs[pairs <= tolerance]


@dataclass(frozen=True)
class PeakMatching:
    """How peaks are found and matched (a detection task's settings).

    Attributes:
        tolerance: a predicted peak within this many bins of a true one finds it (PV-finder:
            0.5 mm = 5 bins).
        truth_height: target maxima at or above this value are the true peaks.
        min_distance: predicted maxima closer than this keep only the higher one.
        fp_budget: the operating point is the threshold with the highest validation
            efficiency at no more than this many false positives per event.
    """

    tolerance: float = 5.0
    truth_height: float = 0.5
    min_distance: int = 1
    fp_budget: float = 0.2

    def true_peaks(self, target: np.ndarray) -> np.ndarray:
        return peaks_of(np.nan_to_num(target, nan=0.0), self.truth_height).positions

    def candidates(self, scores: np.ndarray, target: np.ndarray, floor: float) -> Peaks:
        return peaks_of(scores, floor, self.min_distance, mask=np.isnan(target))

    def scores(
        self,
        targets: Sequence[np.ndarray],
        outputs: Sequence[np.ndarray],
        threshold: float,
        *,
        curve_points: int = CURVE_POINTS,
    ) -> dict[str, Any]:
        """Detection metrics at ``threshold`` plus the curve over thresholds.

        ``targets`` and ``outputs`` hold one per-bin array per event (NaN target = masked).
        Returns ``n_events``, ``n_true``, ``events_without_true_peak``, ``threshold``,
        ``efficiency``, ``fp_per_event``, ``position_error`` (mean absolute, bins, of the
        matched peaks), ``found``, ``false_positives``, the settings, and ``curve`` (lists
        ``threshold``, ``efficiency``, ``fp_per_event``, by increasing threshold).
        """
        truths, found = self._events(targets, outputs, min(threshold, _low_floor(outputs)))
        profiles = [self._profile(t, p) for t, p in zip(truths, found, strict=True)]
        grid = _threshold_grid(found, threshold, curve_points)
        matched, predicted = _totals(profiles, grid)
        n_true = sum(len(t) for t in truths)
        errors = [
            match(true, peaks.above(threshold), self.tolerance)
            for true, peaks in zip(truths, found, strict=True)
        ]
        distances = np.concatenate(errors)
        found_at = len(distances)
        predicted_at = sum(len(p.above(threshold)) for p in found)
        return {
            "n_events": len(targets),
            "n_true": n_true,
            "events_without_true_peak": sum(len(t) == 0 for t in truths),
            "threshold": float(threshold),
            "efficiency": found_at / n_true if n_true else None,
            "fp_per_event": (predicted_at - found_at) / len(targets),
            "position_error": float(distances.mean()) if found_at else None,
            "found": found_at,
            "false_positives": predicted_at - found_at,
            "tolerance": self.tolerance,
            "fp_budget": self.fp_budget,
            "curve": _curve(grid, matched, predicted, n_true, len(targets)),
        }

    def best_threshold(self, targets: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
        """The operating point: of all thresholds (midway between neighbouring peak heights,
        where the peak sets change), the highest efficiency within ``fp_budget`` false positives
        per event; ties go to the higher threshold."""
        truths, found = self._events(targets, outputs, _low_floor(outputs))
        profiles = [self._profile(t, p) for t, p in zip(truths, found, strict=True)]
        heights = np.unique(np.concatenate([p.heights for p in found] + [np.zeros(0)]))
        if not len(heights):
            return float(_low_floor(outputs))
        grid = np.r_[(heights[:-1] + heights[1:]) / 2, np.nextafter(heights[-1], np.inf)]
        matched, predicted = _totals(profiles, grid)
        curve = _curve(grid, matched, predicted, sum(len(t) for t in truths), len(targets))
        return operating_threshold(curve, self.fp_budget)

    def counts(
        self,
        targets: Sequence[np.ndarray],
        outputs: Sequence[np.ndarray],
        thresholds: np.ndarray = EPOCH_THRESHOLDS,
    ) -> np.ndarray:
        """Matched, predicted and true peaks and events at each threshold, ``(4, len)``:
        sums that add up over batches and processes (`efficiency_at_budget` reads them)."""
        truths, found = self._events(targets, outputs, float(np.min(thresholds)))
        profiles = [self._profile(t, p) for t, p in zip(truths, found, strict=True)]
        matched, predicted = _totals(profiles, np.asarray(thresholds, dtype=np.float64))
        n_true = np.full(len(thresholds), float(sum(len(t) for t in truths)))
        return np.stack([matched, predicted, n_true, np.full(len(thresholds), len(truths))])

    def efficiency_at_budget(self, counts: np.ndarray) -> float:
        """The best efficiency among thresholds with at most ``fp_budget`` false positives per
        event (0 when none qualifies), from `counts`."""
        matched, predicted, true, events = counts
        efficiency = np.divide(matched, true, out=np.zeros_like(matched), where=true > 0)
        fp = np.divide(predicted - matched, events, out=np.zeros_like(matched), where=events > 0)
        within = fp <= self.fp_budget
        return float(efficiency[within].max()) if within.any() else 0.0

    def _events(
        self, targets: Sequence[np.ndarray], outputs: Sequence[np.ndarray], floor: float
    ) -> tuple[list[np.ndarray], list[Peaks]]:
        """True peaks and candidate peaks (at or above ``floor``) of every event."""
        if len(targets) != len(outputs) or not len(targets):
            raise DataError(
                f"detection metrics need one output per event: {len(targets)} targets, "
                f"{len(outputs)} outputs"
            )
        truths, found = [], []
        for i, (target, scores) in enumerate(zip(targets, outputs, strict=True)):
            if np.shape(target) != np.shape(scores):
                raise DataError(
                    f"event {i}: target of shape {np.shape(target)}, output of shape "
                    f"{np.shape(scores)}"
                )
            truths.append(self.true_peaks(target))
            found.append(self.candidates(scores, target, floor))
        return truths, found

    def _profile(self, true: np.ndarray, peaks: Peaks) -> _Profile:
        """Matches of an event's ``k`` highest candidates, for every ``k``."""
        order = np.argsort(-peaks.heights, kind="stable")
        heights, positions = peaks.heights[order], peaks.positions[order]
        matched = np.zeros(len(heights) + 1, dtype=np.int64)
        near = (
            np.abs(positions[:, None] - true[None, :]).min(axis=1) <= self.tolerance
            if len(true)
            else np.zeros(len(positions), dtype=bool)
        )
        for k in range(1, len(heights) + 1):
            # a candidate far from every true peak cannot add a match
            grows = near[k - 1] and matched[k - 1] < len(true)
            matched[k] = (
                len(match(true, positions[:k], self.tolerance)) if grows else matched[k - 1]
            )
        return _Profile(heights, matched)


@dataclass(frozen=True)
class _Profile:
    """An event's candidate heights, highest first, and ``matched[k]``: the matches of its
    ``k`` highest candidates (``k = 0 .. n``); the peak set at a threshold is such a prefix."""

    heights: np.ndarray
    matched: np.ndarray


def _totals(profiles: list[_Profile], thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matched and predicted peaks over all events at each threshold."""
    matched = np.zeros(len(thresholds))
    predicted = np.zeros(len(thresholds))
    for profile in profiles:
        k = np.searchsorted(-profile.heights, -thresholds, side="right")  # heights >= t
        matched += profile.matched[k]
        predicted += k
    return matched, predicted


def _curve(
    grid: np.ndarray, matched: np.ndarray, predicted: np.ndarray, n_true: int, n_events: int
) -> dict[str, list[float]]:
    efficiency = matched / n_true if n_true else np.full(len(grid), np.nan)
    return {
        "threshold": [float(g) for g in grid],
        "efficiency": [None if np.isnan(e) else float(e) for e in efficiency],
        "fp_per_event": [float(f) for f in (predicted - matched) / n_events],
    }


def operating_threshold(curve: dict[str, list[float]], fp_budget: float) -> float:
    """The threshold of highest efficiency with at most ``fp_budget`` false positives per event
    (ties: the higher threshold); the highest threshold when none is within the budget."""
    thresholds = np.asarray(curve["threshold"])
    efficiency = np.nan_to_num(np.asarray(curve["efficiency"], dtype=float), nan=0.0)
    fp = np.asarray(curve["fp_per_event"])
    within = np.flatnonzero(fp <= fp_budget)
    if not len(within):
        return float(thresholds.max())
    best = efficiency[within].max()
    return float(thresholds[within][efficiency[within] == best].max())


def _low_floor(outputs: Sequence[np.ndarray]) -> float:
    """The lowest threshold of the curve: the 98th percentile of the bin scores of (up to) 200
    events, below the peaks (~1 % of bins) but above the flat background."""
    sample = np.concatenate([np.ravel(o) for o in outputs[:200]])
    sample = sample[np.isfinite(sample)]
    return float(np.percentile(sample, 98)) if len(sample) else 0.0


def _threshold_grid(found: list[Peaks], threshold: float, points: int) -> np.ndarray:
    """Thresholds at evenly spaced quantiles of the candidate heights plus as many more
    towards the top (where operating points lie), the given one and one above every
    candidate (no peaks at all), increasing."""
    heights = np.concatenate([p.heights for p in found]) if found else np.zeros(0)
    if not len(heights):
        return np.array([threshold])
    quantiles = np.r_[np.linspace(0, 1, points), 1 - np.geomspace(0.2, 1e-4, points)]
    grid = np.quantile(heights, quantiles)
    above_all = np.nextafter(heights.max(), np.inf)
    return np.unique(np.r_[grid, threshold, above_all])
