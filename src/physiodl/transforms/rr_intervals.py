"""R-peak detection and the RR-interval track of an ECG, appended as an extra input channel.

A convolutional network sees beat shapes well but compares beat *timing* across seconds poorly;
the RR-interval track makes rhythm (rate, irregularity, premature beats) a local feature.
The detector is a polarity-free Pan-Tompkins simplification: QRS-band energy (8-20 Hz),
smoothed over 100 ms, peaks at least 250 ms apart (at most 240 beats per minute) above a quarter
of the record's 98th energy percentile.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from physiodl.errors import DataError
from physiodl.signalset import SignalSet

#: Name of the appended channel.
RR_CHANNEL = "rr_interval"
#: RR intervals are clipped to this range in seconds (300 to 24 beats per minute).
RR_RANGE = (0.2, 2.5)
_QRS_BAND = (8.0, 20.0)
_SMOOTHING_S = 0.1
_REFRACTORY_S = 0.25
_THRESHOLD = 0.25


def r_peaks(ecg: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of the R peaks of a 1-D ECG (either polarity) sampled at ``fs`` Hz."""
    if fs <= 2 * _QRS_BAND[1]:
        raise DataError(f"R-peak detection needs more than {2 * _QRS_BAND[1]:g} Hz, got {fs:g} Hz")
    sos = signal.butter(2, _QRS_BAND, btype="band", fs=fs, output="sos")
    if len(ecg) <= 3 * (2 * len(sos) + 1):
        return np.zeros(0, dtype=np.int64)
    qrs = signal.sosfiltfilt(sos, np.asarray(ecg, dtype=np.float64))
    width = max(1, round(_SMOOTHING_S * fs))
    energy = np.convolve(qrs * qrs, np.ones(width) / width, mode="same")
    level = np.percentile(energy, 98)
    if level <= 0:
        return np.zeros(0, dtype=np.int64)
    peaks, _ = signal.find_peaks(
        energy, distance=max(1, round(_REFRACTORY_S * fs)), height=_THRESHOLD * level
    )
    return peaks.astype(np.int64)


def rr_interval_track(peaks: np.ndarray, length: int, fs: float) -> np.ndarray:
    """Per sample, the RR interval (s) of the beat-to-beat interval it lies in.

    Before the second and after the last peak the nearest interval holds; with fewer than two
    peaks the whole track is the range's maximum (no rhythm found).
    """
    track = np.full(length, RR_RANGE[1], dtype=np.float32)
    if len(peaks) < 2:
        return track
    intervals = np.clip(np.diff(peaks) / fs, *RR_RANGE).astype(np.float32)
    # interval k spans peaks[k] .. peaks[k + 1]; samples before peaks[1] take interval 0
    which = np.searchsorted(peaks[1:-1], np.arange(length), side="right")
    return intervals[which]


def append_rr_channel(ss: SignalSet) -> SignalSet:
    """Append the RR-interval track of each record's first channel as channel `RR_CHANNEL`."""
    if RR_CHANNEL in ss.channels:
        raise DataError(f"the recordings already have a {RR_CHANNEL!r} channel")
    signals = []
    for x in ss.signals:
        track = rr_interval_track(r_peaks(x[0], ss.fs), x.shape[1], ss.fs)
        signals.append(np.concatenate([x, track[None]]).astype(np.float32))
    return ss.with_signals(signals, channels=(*ss.channels, RR_CHANNEL))
