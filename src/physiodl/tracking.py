"""Regression over value bins, and tracking a value across the windows of a recording.

A binned regressor scores every bin of a grid (heart rate from 30 to 230 bpm in 1 bpm steps,
say); it is trained with cross-entropy against a Gaussian around the true value, as CREPE
does for pitch (Kim et al., "CREPE: a convolutional representation for pitch estimation",
ICASSP 2018). Across the consecutive windows of a recording the value moves little, so the
most likely *path* through the bins is decoded with the Viterbi algorithm under a limit on
the jump between windows: offline (the whole recording, forward and back) or causal (each
window decoded from the past only, as a device decides in real time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import log_softmax
from torch import Tensor

from physiodl.errors import RecipeError

#: Bins on each side of the chosen one whose probabilities refine a decoded value.
REFINE_BINS = 2


@dataclass(frozen=True)
class ValueBins:
    """An even grid of bin centres ``low, low + width, ..., high``."""

    low: float
    high: float
    width: float

    def __post_init__(self) -> None:
        if not (self.width > 0 and self.high > self.low):
            raise RecipeError(
                f"value bins need bin_width > 0 and bin_high > bin_low, got "
                f"low={self.low}, high={self.high}, width={self.width}"
            )
        steps = (self.high - self.low) / self.width
        if abs(steps - round(steps)) > 1e-6:
            raise RecipeError(
                f"bin_high - bin_low ({self.high - self.low:g}) must be a whole number of "
                f"bin_width ({self.width:g})"
            )

    @property
    def count(self) -> int:
        return round((self.high - self.low) / self.width) + 1

    @property
    def centres(self) -> np.ndarray:
        return self.low + self.width * np.arange(self.count, dtype=np.float64)

    def soft_targets(self, values: Tensor, sigma: float) -> Tensor:
        """Gaussian target distributions ``(b, bins)`` around ``values`` ``(b,)`` (no NaN)."""
        centres = torch.as_tensor(self.centres, dtype=values.dtype, device=values.device)
        logits = -0.5 * ((centres[None, :] - values[:, None]) / sigma) ** 2
        return torch.softmax(logits, dim=1)

    def refine(self, log_scores: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """Values of the ``chosen`` bins, refined by the probability-weighted mean of the
        bins within `REFINE_BINS` of each (``log_scores`` ``(n, bins)``)."""
        count = log_scores.shape[1]
        offsets = np.arange(-REFINE_BINS, REFINE_BINS + 1)
        index = np.clip(np.asarray(chosen)[:, None] + offsets[None, :], 0, count - 1)
        near = np.take_along_axis(log_scores, index, axis=1)
        weights = np.exp(near - near.max(axis=1, keepdims=True))
        weights[index != np.asarray(chosen)[:, None] + offsets[None, :]] = 0.0  # clipped edges
        return (weights * self.centres[index]).sum(axis=1) / weights.sum(axis=1)

    def decode(self, logits: np.ndarray, max_jump: float | None, *, causal: bool) -> np.ndarray:
        """One value per window of a recording from its bin logits ``(windows, bins)``.

        Without ``max_jump`` each window on its own (the most likely bin); with it, the
        Viterbi path whose value changes by at most ``max_jump`` between windows.
        """
        log_p = log_softmax(np.asarray(logits, dtype=np.float64), axis=1)
        if max_jump is None or len(log_p) == 0:
            chosen = log_p.argmax(axis=1)
        else:
            chosen = viterbi_path(log_p, int(np.floor(max_jump / self.width + 1e-9)), causal)
        return self.refine(log_p, chosen)


def viterbi_path(log_scores: np.ndarray, max_step: int, causal: bool = False) -> np.ndarray:
    """The best path of bin indices through ``log_scores`` ``(steps, bins)``.

    A path may move at most ``max_step`` bins between consecutive steps, every allowed move
    equally likely, and may start anywhere. ``causal=False`` returns the most likely whole
    path (Viterbi, with back-tracking); ``causal=True`` returns at each step the end of the
    most likely path over the steps so far, which needs no future step.
    """
    steps, bins = log_scores.shape
    if max_step < 0:
        raise RecipeError(f"a path step must be >= 0 bins, got {max_step}")
    if steps == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.arange(-max_step, max_step + 1)
    best = np.asarray(log_scores[0], dtype=np.float64).copy()
    back = np.zeros((steps, bins), dtype=np.int64)
    causal_path = np.zeros(steps, dtype=np.int64)
    causal_path[0] = int(best.argmax())
    for t in range(1, steps):
        padded = np.pad(best, max_step, constant_values=-np.inf)
        reach = sliding_window_view(padded, 2 * max_step + 1)  # bin j sees j-max_step..j+max_step
        move = reach.argmax(axis=1)
        back[t] = np.arange(bins) + offsets[move]
        best = reach[np.arange(bins), move] + log_scores[t]
        causal_path[t] = int(best.argmax())
    if causal:
        return causal_path
    path = np.zeros(steps, dtype=np.int64)
    path[-1] = int(best.argmax())
    for t in range(steps - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path
