"""Per-window target traces: one reference value per fixed window of a recording.

Heart-rate references come as one value per window of ``length_s`` seconds, shifted by
``shift_s`` seconds from the start of the recording (value ``k`` covers
``[k * shift_s, k * shift_s + length_s)``). A loader that returns such targets stores one
float array per record in ``SignalSet.targets`` and the window geometry in
``SignalSet.meta["target_windows"]``. The geometry is in seconds, so it survives resampling;
`TargetWindows.in_samples` turns it into a window length and stride at any rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from physiodl.errors import DataError, RecipeError
from physiodl.signalset import SignalSet

META_KEY = "target_windows"


@dataclass(frozen=True)
class TargetWindows:
    """The window geometry of per-window targets, in seconds."""

    length_s: float
    shift_s: float

    def __post_init__(self) -> None:
        if not (self.length_s > 0 and self.shift_s > 0):
            raise DataError(
                f"target windows need positive length and shift, got {self.length_s} s and "
                f"{self.shift_s} s"
            )

    @classmethod
    def of(cls, ss: SignalSet) -> TargetWindows | None:
        """The geometry stored in ``ss.meta``, or ``None`` for other kinds of targets."""
        value = ss.meta.get(META_KEY)
        return None if value is None else cls.from_dict(value)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> TargetWindows:
        return cls(length_s=float(value["length_s"]), shift_s=float(value["shift_s"]))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def in_samples(self, fs: float) -> tuple[int, int]:
        """Window length and stride in samples at ``fs``; both must be whole numbers."""
        length, stride = self.length_s * fs, self.shift_s * fs
        if not (_whole(length) and _whole(stride)):
            raise RecipeError(
                f"windows of {self.length_s:g} s every {self.shift_s:g} s are not whole numbers "
                f"of samples at {fs:g} Hz ({length:g} and {stride:g}); resample to a rate where "
                "they are (e.g. features.resample = 25)"
            )
        return round(length), round(stride)

    def count(self, n_samples: int, fs: float) -> int:
        """Complete windows in a recording of ``n_samples`` samples at ``fs``."""
        length, stride = self.length_s * fs, self.shift_s * fs
        if n_samples < length:
            return 0
        return int(np.floor((n_samples - length) / stride + 1e-9)) + 1

    def starts_s(self, n_windows: int) -> np.ndarray:
        """Start time in seconds of each of ``n_windows`` windows."""
        return np.arange(n_windows, dtype=np.float64) * self.shift_s


def trace_windows(counts: Sequence[int] | np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """``(owner, start)`` of each window of traces of ``counts`` values (start ``i * stride``)."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    starts = (np.arange(len(owner), dtype=np.int64) - first[owner]) * stride
    return owner, starts


def with_target_windows(ss: SignalSet, windows: TargetWindows) -> SignalSet:
    """A copy of ``ss`` whose meta records the window geometry of its targets."""
    return ss.with_signals(ss.signals, meta={**ss.meta, META_KEY: windows.to_dict()})


def check_chunks(windows: TargetWindows, fs: float, length: int | None, stride: int | None) -> int:
    """The stride of the windows at ``fs``, after checking a recipe's chunk settings agree."""
    expected_length, expected_stride = windows.in_samples(fs)
    if length != expected_length or stride not in (None, expected_stride):
        raise RecipeError(
            f"the targets are one value per {windows.length_s:g} s window every "
            f"{windows.shift_s:g} s; at {fs:g} Hz set features.chunks = "
            f"{{ length = {expected_length}, stride = {expected_stride} }} "
            f"(got length = {length}, stride = {stride})"
        )
    return expected_stride


def _whole(value: float) -> bool:
    return abs(value - round(value)) < 1e-6 and round(value) >= 1
