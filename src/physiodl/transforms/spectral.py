"""Spectrograms: each source channel becomes one channel per frequency, time becomes frames."""

from __future__ import annotations

import numpy as np
from scipy import signal

from physiodl.errors import DataError, RecipeError
from physiodl.signalset import SignalSet
from physiodl.transforms.filters import map_by_length


def spectrogram_frequencies(fs: float, nperseg: int) -> np.ndarray:
    """The frequencies (Hz) of a one-sided spectrogram with segments of ``nperseg`` samples."""
    return np.fft.rfftfreq(nperseg, d=1.0 / fs)


def spectrogram_frames(length: int, nperseg: int, noverlap: int) -> int:
    """Frames scipy's spectrogram gives for a record of ``length >= nperseg`` samples."""
    return (length - noverlap) // (nperseg - noverlap)


def frequency_channel_names(channels: tuple[str, ...], frequencies: np.ndarray) -> tuple[str, ...]:
    """Names like ``"ECG 9.4Hz"``: source channel, then frequency with as few decimals as needed."""
    for decimals in range(1, 7):
        labels = [f"{f:.{decimals}f}Hz" for f in frequencies]
        if len(set(labels)) == len(labels):
            break
    return tuple(f"{channel} {label}" for channel in channels for label in labels)


#: ``log=True``: power is floored at this fraction of the record's peak power (80 dB of dynamic
#: range) before the log, so silence stays finite. The log does not depend on the signal's units:
#: scaling a record shifts all its values by the same constant, which normalisation removes.
LOG_FLOOR = 1e-8


def spectrogram(
    ss: SignalSet, *, nperseg: int = 32, noverlap: int = 4, log: bool = False
) -> SignalSet:
    """Power spectrogram of every record (``scipy.signal.spectrogram``, ``scaling="spectrum"``).

    Each record ``(C, T)`` becomes ``(C * F, frames)`` with ``F = nperseg // 2 + 1`` frequencies
    (channels ordered source channel first, then frequency) and as many frames as scipy gives for
    the record's own length, so no padding enters a frame. ``fs`` becomes frames per second,
    ``fs / (nperseg - noverlap)``. ``log=True`` stores the natural log of the power, floored at
    `LOG_FLOOR` times the record's peak power. Records of equal length are computed together in
    batches of bounded size. ``ids``, ``targets``, ``groups`` and ``meta`` are kept (per-sample
    targets are not mapped onto frames).
    """
    if nperseg < 2 or not 0 <= noverlap < nperseg:
        raise RecipeError(
            f"spectrogram: nperseg={nperseg}, noverlap={noverlap}; need nperseg >= 2 and "
            "0 <= noverlap < nperseg"
        )
    short = [(name, n) for name, n in zip(ss.ids, ss.lengths, strict=True) if n < nperseg]
    if short:
        name, n = short[0]
        raise DataError(
            f"spectrogram: record {name!r} has {n} samples, fewer than nperseg={nperseg} "
            f"({len(short)} records are too short); drop short records or lower nperseg"
        )
    frequencies = spectrogram_frequencies(ss.fs, nperseg)

    def power(x: np.ndarray) -> np.ndarray:
        _, _, sxx = signal.spectrogram(
            x.astype(np.float32, copy=False),
            fs=ss.fs,
            scaling="spectrum",
            nperseg=nperseg,
            noverlap=noverlap,
        )
        if log:
            peak = sxx.max(axis=(1, 2, 3), keepdims=True)
            floor = np.maximum(peak * LOG_FLOOR, np.finfo(sxx.dtype).tiny)
            np.log(np.maximum(sxx, floor, out=sxx), out=sxx)
        n, channels, n_freq, frames = sxx.shape
        # scipy returns a strided view into a larger complex buffer: copy out contiguous records
        return np.ascontiguousarray(sxx.reshape(n, channels * n_freq, frames))

    return ss.with_signals(
        map_by_length(ss.signals, power),
        fs=ss.fs / (nperseg - noverlap),
        channels=frequency_channel_names(ss.channels, frequencies),
    )
