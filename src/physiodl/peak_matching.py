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

CURVE_POINTS = 100
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
        if len(targets) != len(outputs) or not len(targets):
            raise DataError(
                f"detection metrics need one output per event: {len(targets)} targets, "
                f"{len(outputs)} outputs"
            )
        truths = []
        for i, (t, o) in enumerate(zip(targets, outputs, strict=True)):
            if np.shape(t) != np.shape(o):
                raise DataError(
                    f"event {i}: target of shape {np.shape(t)}, output of shape {np.shape(o)}"
                )
            truths.append(self.true_peaks(t))
        floor = min(threshold, _low_floor(outputs))
        found = [self.candidates(o, t, floor) for t, o in zip(targets, outputs, strict=True)]
        grid = _threshold_grid(found, threshold, curve_points)
        curve = [self._counts(truths, found, th) for th in grid]
        at = self._counts(truths, found, threshold, with_errors=True)
        n_true = sum(len(t) for t in truths)
        return {
            "n_events": len(targets),
            "n_true": n_true,
            "events_without_true_peak": sum(len(t) == 0 for t in truths),
            "threshold": float(threshold),
            **at,
            "tolerance": self.tolerance,
            "fp_budget": self.fp_budget,
            "curve": {
                "threshold": [float(g) for g in grid],
                "efficiency": [c["efficiency"] for c in curve],
                "fp_per_event": [c["fp_per_event"] for c in curve],
            },
        }

    def counts(
        self,
        targets: Sequence[np.ndarray],
        outputs: Sequence[np.ndarray],
        thresholds: np.ndarray = EPOCH_THRESHOLDS,
    ) -> np.ndarray:
        """Matched, predicted and true peaks and events at each threshold, ``(4, len)``:
        sums that add up over batches and processes (`efficiency_at_budget` reads them)."""
        out = np.zeros((4, len(thresholds)))
        floor = float(np.min(thresholds))
        for target, scores in zip(targets, outputs, strict=True):
            true = self.true_peaks(target)
            peaks = self.candidates(scores, target, floor)
            for k, threshold in enumerate(thresholds):
                chosen = peaks.above(threshold)
                out[0, k] += len(match(true, chosen, self.tolerance))
                out[1, k] += len(chosen)
            out[2] += len(true)
            out[3] += 1
        return out

    def efficiency_at_budget(self, counts: np.ndarray) -> float:
        """The best efficiency among thresholds with at most ``fp_budget`` false positives per
        event (0 when none qualifies), from `counts`."""
        matched, predicted, true, events = counts
        efficiency = np.divide(matched, true, out=np.zeros_like(matched), where=true > 0)
        fp = np.divide(predicted - matched, events, out=np.zeros_like(matched), where=events > 0)
        within = fp <= self.fp_budget
        return float(efficiency[within].max()) if within.any() else 0.0

    def _counts(
        self,
        truths: list[np.ndarray],
        found: list[Peaks],
        threshold: float,
        with_errors: bool = False,
    ) -> dict[str, Any]:
        matched, predicted, errors = 0, 0, []
        for true, peaks in zip(truths, found, strict=True):
            chosen = peaks.above(threshold)
            pairs = match(true, chosen, self.tolerance)
            matched += len(pairs)
            predicted += len(chosen)
            if with_errors:
                errors.append(pairs)
        n_true = sum(len(t) for t in truths)
        out: dict[str, Any] = {
            "efficiency": matched / n_true if n_true else None,
            "fp_per_event": (predicted - matched) / len(truths),
        }
        if with_errors:
            distances = np.concatenate(errors) if errors else np.zeros(0)
            out |= {
                "position_error": float(distances.mean()) if len(distances) else None,
                "found": matched,
                "false_positives": predicted - matched,
            }
        return out


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
