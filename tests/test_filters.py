"""Band-pass and resampling on SignalSets, and the equal-length batching they share."""

from __future__ import annotations

import numpy as np
import pytest

from physiodl.errors import DataError, RecipeError
from physiodl.signalset import SignalSet
from physiodl.transforms.filters import (
    bandpass,
    map_by_length,
    resample,
    resample_array,
    resample_ratio,
)


def sines(freqs: list[float], fs: float, n: int) -> np.ndarray:
    t = np.arange(n) / fs
    return sum(np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32)[None]


def one(x: np.ndarray, fs: float) -> SignalSet:
    return SignalSet(signals=[x], fs=fs, channels=("ECG",), ids=("r0",), targets=np.array([1]))


def test_bandpass_keeps_the_passband_and_removes_the_rest_without_phase_shift() -> None:
    fs, n = 300.0, 3000
    out = bandpass(one(sines([0.3, 20.0, 110.0], fs, n), fs), 5.0, 40.0)
    middle = slice(500, 2500)
    expected = sines([20.0], fs, n)[0, middle]
    np.testing.assert_allclose(out.signals[0][0, middle], expected, atol=0.01)
    assert out.signals[0].dtype == np.float32 and out.fs == fs


@pytest.mark.parametrize(
    ("low", "high", "kept", "removed"), [(None, 10.0, 2.0, 60.0), (30.0, None, 60.0, 2.0)]
)
def test_low_and_high_pass(
    low: float | None, high: float | None, kept: float, removed: float
) -> None:
    fs, n = 250.0, 2500
    out = bandpass(one(sines([kept, removed], fs, n), fs), low, high)
    np.testing.assert_allclose(
        out.signals[0][0, 500:2000], sines([kept], fs, n)[0, 500:2000], atol=0.01
    )


def test_bad_cutoffs_name_the_values() -> None:
    ss = one(sines([1.0], 300.0, 1000), 300.0)
    with pytest.raises(RecipeError, match=r"high_hz=150.0 .* Nyquist frequency 150.0 Hz"):
        bandpass(ss, 0.5, 150.0)
    with pytest.raises(RecipeError, match="low_hz must be below high_hz"):
        bandpass(ss, 40.0, 5.0)
    with pytest.raises(RecipeError, match="low_hz=-1"):
        bandpass(ss, -1, 5.0)
    with pytest.raises(DataError, match="'r0' has 20 samples"):
        bandpass(one(np.zeros((1, 20), np.float32), 300.0), 0.5, 40.0)


def test_resample_changes_rate_and_length_and_keeps_the_waveform() -> None:
    fs, n = 300.0, 3000
    ss = SignalSet(
        signals=[sines([5.0], fs, n), sines([5.0], fs, 1501)],
        fs=fs,
        channels=("ECG",),
        ids=("a", "b"),
        targets=np.array([0, 1]),
    )
    out = resample(ss, 125.0)
    assert out.fs == 125.0 and out.targets is ss.targets
    assert [x.shape[1] for x in out.signals] == [1250, int(np.ceil(1501 * 5 / 12))]
    np.testing.assert_allclose(
        out.signals[0][0, 100:-100], sines([5.0], 125.0, 1250)[0, 100:-100], atol=0.01
    )
    np.testing.assert_array_equal(out.signals[1], resample_array(ss.signals[1], fs, 125.0))


def test_resample_ratio_is_a_small_exact_fraction() -> None:
    assert (resample_ratio(360.0, 300.0).numerator, resample_ratio(360.0, 300.0).denominator) == (
        5,
        6,
    )
    assert resample_ratio(128.0, 250.0) == pytest.approx(250 / 128)
    assert resample(one(sines([1.0], 128.0, 256), 128.0), 250.0).fs == 250.0
    x = np.ones((2, 3, 100), np.float32)
    assert resample_array(x, 100.0, 100.0).shape == (2, 3, 100)
    with pytest.raises(RecipeError, match="positive"):
        resample_ratio(300.0, 0.0)


def test_map_by_length_batches_equal_lengths_in_bounded_calls_and_keeps_order() -> None:
    signals = [np.full((2, n), i, np.float32) for i, n in enumerate([5, 7, 5, 5, 7, 9])]
    calls: list[tuple[int, ...]] = []

    def fn(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape)
        return batch.sum(axis=(1, 2))

    out = map_by_length(signals, fn, max_elements=20)
    assert [float(v) for v in out] == [x.sum() for x in signals]
    assert sorted(calls) == [(1, 2, 5), (1, 2, 7), (1, 2, 7), (1, 2, 9), (2, 2, 5)]
