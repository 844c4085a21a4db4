"""Spectrograms: values equal scipy's per record, frames from real lengths, names, fs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.signal

from physiodl.errors import DataError, RecipeError
from physiodl.signalset import SignalSet
from physiodl.transforms import filters
from physiodl.transforms.spectral import (
    LOG_FLOOR,
    frequency_channel_names,
    spectrogram,
    spectrogram_frames,
    spectrogram_frequencies,
)


def make_set(lengths: list[int], channels: tuple[str, ...] = ("ECG",), fs: float = 300.0):
    rng = np.random.default_rng(0)
    signals = [rng.standard_normal((len(channels), n)).astype(np.float32) for n in lengths]
    return SignalSet(
        signals=signals,
        fs=fs,
        channels=channels,
        ids=tuple(f"r{i}" for i in range(len(lengths))),
        targets=np.arange(len(lengths)) % 2,
        classes=("N", "A"),
        groups=np.array([f"g{i}" for i in range(len(lengths))]),
        meta={"source": "test"},
    )


def scipy_reference(x: np.ndarray, fs: float, nperseg: int = 32, noverlap: int = 4):
    _, _, sxx = scipy.signal.spectrogram(
        x, fs=fs, scaling="spectrum", nperseg=nperseg, noverlap=noverlap
    )
    return sxx.reshape(-1, sxx.shape[-1])


def test_frequencies_and_frame_rate_for_the_seed_settings() -> None:
    freqs = spectrogram_frequencies(300.0, 32)
    assert len(freqs) == 17
    assert freqs[1] == pytest.approx(9.375)
    assert freqs[-1] == pytest.approx(150.0)
    out = spectrogram(make_set([9000]))
    assert out.fs == pytest.approx(300 / 28)
    assert out.channels[1] == "ECG 9.4Hz"
    assert out.channels[-1] == "ECG 150.0Hz"
    assert out.signals[0].shape == (17, (9000 - 4) // 28)


def test_each_record_equals_scipy_on_its_own_real_length(monkeypatch) -> None:
    # equal lengths share a call; a tiny batch bound forces several calls per length
    monkeypatch.setattr(filters, "MAX_BATCH_ELEMENTS", 2 * 9000)
    lengths = [9000, 4004, 9000, 9000, 18286, 4005, 9000]
    ss = make_set(lengths)
    out = spectrogram(ss)
    for x, y, n in zip(ss.signals, out.signals, lengths, strict=True):
        assert y.shape == (17, spectrogram_frames(n, 32, 4))
        # contiguous, in a float32 batch of at most two records (not scipy's complex buffer)
        assert y.dtype == y.base.dtype == np.float32 and y.flags.c_contiguous
        assert y.base.shape[0] <= 2
        np.testing.assert_allclose(y, scipy_reference(x, 300.0), rtol=1e-5, atol=1e-12)
    # the seed's padded version has frames beyond the record's end; ours does not
    padded = scipy_reference(ss.padded()[1], 300.0)
    assert padded.shape[1] > out.signals[1].shape[1]


def test_keeps_everything_but_signals_fs_and_channels() -> None:
    ss = make_set([100, 64])
    out = spectrogram(ss, nperseg=16, noverlap=8)
    assert out.ids == ss.ids
    assert out.targets is ss.targets and out.groups is ss.groups
    assert out.classes == ss.classes and out.meta == ss.meta
    assert out.fs == pytest.approx(300 / 8)
    assert [x.shape[1] for x in out.signals] == [(100 - 8) // 8, (64 - 8) // 8]


def test_multichannel_names_are_source_channel_then_frequency() -> None:
    ss = make_set([256, 256], channels=("PPG", "ACC"), fs=64.0)
    out = spectrogram(ss, nperseg=8, noverlap=0)
    assert out.channels == tuple(f"{c} {f:.1f}Hz" for c in ("PPG", "ACC") for f in range(0, 33, 8))
    np.testing.assert_allclose(out.signals[0][5:], scipy_reference(ss.signals[0][1:], 64.0, 8, 0))


def test_names_get_more_decimals_when_needed() -> None:
    names = frequency_channel_names(("x",), spectrogram_frequencies(1.0, 32))
    assert names[1] == "x 0.03Hz" and len(set(names)) == 17


def test_a_sinusoid_peaks_in_its_frequency_channel() -> None:
    t = np.arange(3000) / 300.0
    x = np.sin(2 * np.pi * 75.0 * t).astype(np.float32)[None]  # bin 8 of 9.375 Hz steps
    ss = SignalSet(signals=[x], fs=300.0, channels=("ECG",), ids=("sine",))
    power = spectrogram(ss).signals[0].mean(axis=1)
    # scaling="spectrum": a unit sine at a bin centre has power A**2 / 2 in that bin
    assert power.argmax() == 8
    assert power[8] == pytest.approx(0.5, rel=1e-5)
    assert power.sum() - power[8] < 0.06


def test_log_is_the_log_of_the_power_floored_below_the_peak() -> None:
    ss = make_set([500])
    power = spectrogram(ss).signals[0]
    floored = np.maximum(power, power.max() * LOG_FLOOR)
    np.testing.assert_allclose(spectrogram(ss, log=True).signals[0], np.log(floored), rtol=1e-5)


def test_log_values_do_not_depend_on_the_signal_units() -> None:
    """ECG in mV has powers of 1e-7..1e-2, where a log1p would be the identity: the log of a
    record in microvolts must differ by one constant only."""
    ss = make_set([500])
    in_micro = ss.with_signals([x * 1000.0 for x in ss.signals])
    shift = spectrogram(in_micro, log=True).signals[0] - spectrogram(ss, log=True).signals[0]
    np.testing.assert_allclose(shift, np.log(1e6), rtol=1e-4)


def test_log_of_a_silent_record_is_finite() -> None:
    ss = make_set([300])
    silent = ss.with_signals([np.zeros_like(x) for x in ss.signals])
    assert np.isfinite(spectrogram(silent, log=True).signals[0]).all()


def test_bad_settings_and_short_records_are_errors() -> None:
    with pytest.raises(RecipeError, match="noverlap=32"):
        spectrogram(make_set([100]), nperseg=32, noverlap=32)
    with pytest.raises(DataError, match="'r1' has 20 samples"):
        spectrogram(make_set([100, 20]))


def test_real_cinc_records_match_the_seed_computation(cinc_zip: Path) -> None:
    names = ["A00001", "A00004", "A00005"]
    with zipfile.ZipFile(cinc_zip) as zf:
        raw = [
            scipy.io.loadmat(io.BytesIO(zf.read(f"training2017/{n}.mat")))["val"].astype(np.float32)
            for n in names
        ]
    ss = SignalSet(signals=raw, fs=300.0, channels=("ECG",), ids=tuple(names))
    out = spectrogram(ss)
    for x, y in zip(raw, out.signals, strict=True):
        # the seed: scipy.signal.spectrogram(x, scaling='spectrum', nperseg=32, noverlap=4), fs=1
        _, _, seed = scipy.signal.spectrogram(x[0], scaling="spectrum", nperseg=32, noverlap=4)
        assert y.shape == (17, (x.shape[1] - 4) // 28)
        np.testing.assert_allclose(y, seed, rtol=1e-5)
