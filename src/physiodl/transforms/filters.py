"""Band-pass filtering and resampling of every record, vectorised over records of equal length."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np
from scipy import signal

from physiodl.errors import DataError, RecipeError
from physiodl.signalset import SignalSet

#: Input elements per vectorised call: bounds the memory of one batch (16 MiB of float32).
MAX_BATCH_ELEMENTS = 1 << 22


def map_by_length(
    signals: Sequence[np.ndarray],
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    max_elements: int | None = None,
) -> list[np.ndarray]:
    """Apply ``fn`` to records stacked by equal length, in batches of bounded size.

    Args:
        signals: ``(channels, time)`` arrays.
        fn: maps a ``(batch, channels, time)`` stack to one result per record along axis 0.
        max_elements: at most this many input elements per call (one record at least);
            default `MAX_BATCH_ELEMENTS`.

    Returns:
        ``fn``'s result for each record, in the order of ``signals``.
    """
    max_elements = max_elements or MAX_BATCH_ELEMENTS
    lengths = np.array([x.shape[-1] for x in signals], dtype=np.int64)
    out: list[np.ndarray] = [np.empty(0)] * len(signals)
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length)
        batch = max(1, max_elements // max(1, signals[members[0]].size))
        for start in range(0, len(members), batch):
            chunk = members[start : start + batch]
            results = fn(np.stack([signals[i] for i in chunk]))
            for i, result in zip(chunk, results, strict=True):
                out[i] = result
    return out


def bandpass(
    ss: SignalSet, low_hz: float | None, high_hz: float | None, order: int = 4
) -> SignalSet:
    """Zero-phase Butterworth filter (``sosfiltfilt``) of every record.

    ``low_hz=None`` gives a low-pass, ``high_hz=None`` a high-pass filter. The effective order is
    doubled by the forward-backward pass. Per-record targets are kept unchanged.
    """
    sos = _butterworth(ss.fs, low_hz, high_hz, order)
    # scipy's default padding length for sosfiltfilt; records must be longer than it
    trailing_zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    min_length = 3 * (2 * len(sos) + 1 - trailing_zeros)
    short = [(i, n) for i, n in zip(ss.ids, ss.lengths, strict=True) if n <= min_length]
    if short:
        name, n = short[0]
        raise DataError(
            f"bandpass: record {name!r} has {n} samples; an order-{order} filter needs more "
            f"than {min_length} ({len(short)} records are too short); drop short records first"
        )

    def filt(x: np.ndarray) -> np.ndarray:
        return signal.sosfiltfilt(sos, x, axis=-1).astype(np.float32)

    return ss.with_signals(map_by_length(ss.signals, filt))


def _butterworth(fs: float, low_hz: float | None, high_hz: float | None, order: int) -> np.ndarray:
    nyquist = fs / 2
    where = f"bandpass(low_hz={low_hz}, high_hz={high_hz}) at fs={fs} Hz"
    if low_hz is None and high_hz is None:
        raise RecipeError(f"{where}: give low_hz, high_hz or both")
    for name, value in (("low_hz", low_hz), ("high_hz", high_hz)):
        if value is not None and not 0 < value < nyquist:
            raise RecipeError(
                f"{where}: {name}={value} must lie between 0 and the Nyquist frequency "
                f"{nyquist} Hz; lower it or resample to a higher rate first"
            )
    if low_hz is not None and high_hz is not None and low_hz >= high_hz:
        raise RecipeError(f"{where}: low_hz must be below high_hz")
    if order < 1:
        raise RecipeError(f"{where}: order={order} must be at least 1")
    if low_hz is None:
        return signal.butter(order, high_hz, btype="lowpass", fs=fs, output="sos")
    if high_hz is None:
        return signal.butter(order, low_hz, btype="highpass", fs=fs, output="sos")
    return signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")


def resample_ratio(fs: float, fs_new: float, max_denominator: int = 1000) -> Fraction:
    """``fs_new / fs`` as a fraction ``up / down`` with ``down <= max_denominator``."""
    if fs <= 0 or fs_new <= 0:
        raise RecipeError(f"resample: sampling rates must be positive, got {fs} -> {fs_new} Hz")
    return Fraction(fs_new / fs).limit_denominator(max_denominator)


def resample_array(x: np.ndarray, fs: float, fs_new: float) -> np.ndarray:
    """Polyphase resampling of ``x`` along its last axis from ``fs`` to ``fs_new`` (float32)."""
    ratio = resample_ratio(fs, fs_new)
    if ratio == 1:
        return np.asarray(x, dtype=np.float32)
    y = signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
    return y.astype(np.float32)


def resample(ss: SignalSet, fs_new: float) -> SignalSet:
    """Every record resampled to ``fs_new`` with ``scipy.signal.resample_poly``.

    The ratio is approximated by a fraction (denominator <= 1000); the result's ``fs`` is the exact
    rate that fraction gives. Per-record targets are kept unchanged.
    """
    ratio = resample_ratio(ss.fs, fs_new)
    if ratio == 1:
        return ss.with_signals(list(ss.signals))
    signals = map_by_length(ss.signals, lambda x: resample_array(x, ss.fs, fs_new))
    return ss.with_signals(signals, fs=float(ss.fs * ratio))
