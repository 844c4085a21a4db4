"""The synthetic ECG generator: determinism, shapes, class counts, and AF looks like AF."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps
from scipy import stats

from physiodl.datasets import synthetic
from physiodl.datasets.synthetic import ecg_simulate
from physiodl.errors import RecipeError


def r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices: find_peaks on the 5-20 Hz band envelope."""
    band = sps.sosfiltfilt(sps.butter(3, [5, 20], btype="band", fs=fs, output="sos"), x)
    envelope = np.abs(band)
    height = 0.4 * np.percentile(envelope, 99.5)
    return sps.find_peaks(envelope, distance=int(0.25 * fs), height=height)[0]


def rr_irregularity(x: np.ndarray, fs: float) -> float:
    """Coefficient of variation of the RR intervals."""
    rr = np.diff(r_peaks(x, fs)) / fs
    return float(rr.std() / rr.mean())


def test_simulate_shape_and_determinism() -> None:
    x = ecg_simulate(12.5, 250.0, rhythm="N", rng=3)
    assert x.shape == (3125,) and x.dtype == np.float32
    np.testing.assert_array_equal(x, ecg_simulate(12.5, 250.0, rhythm="N", rng=3))
    assert not np.array_equal(x, ecg_simulate(12.5, 250.0, rhythm="N", rng=4))


def test_heart_rate_sets_the_beat_count() -> None:
    fs = 300.0
    for rate in (50.0, 120.0):
        x = ecg_simulate(60.0, fs, rhythm="N", heart_rate=rate, rng=1)
        assert abs(len(r_peaks(x, fs)) - rate) <= 0.05 * rate


def beat_analysis(x: np.ndarray, fs: float) -> tuple[float, float]:
    """P-wave height / R height of the average beat, and the 4-9 Hz share of the residual.

    The residual is the signal minus the average beat at every R peak (QRST cancellation,
    the usual way to see atrial activity).
    """
    x = sps.sosfiltfilt(sps.butter(2, 0.7, btype="high", fs=fs, output="sos"), x)
    before, after = int(0.4 * fs), int(0.5 * fs)
    peaks = r_peaks(x, fs)
    peaks = peaks[(peaks > before) & (peaks < len(x) - after)]
    window = np.arange(-before, after)
    template = x[peaks[:, None] + window].mean(axis=0)
    p_region = template[before - int(0.3 * fs) : before - int(0.1 * fs)]
    p_height = (p_region.max() - np.median(template[: before - int(0.3 * fs)])) / template[before]
    residual = x.copy()
    for peak in peaks:
        residual[peak + window] -= template
    f, pxx = sps.welch(residual, fs=fs, nperseg=1024)
    return float(p_height), float(pxx[(f >= 4) & (f <= 9)].sum() / pxx[(f >= 1) & (f <= 40)].sum())


def test_af_has_no_p_waves_and_has_fibrillatory_waves() -> None:
    fs = 300.0
    sinus = np.array([beat_analysis(ecg_simulate(30, fs, rhythm="N", rng=s), fs) for s in range(8)])
    af = np.array([beat_analysis(ecg_simulate(30, fs, rhythm="A", rng=s), fs) for s in range(8)])
    assert sinus[:, 0].min() > 0.1 and np.abs(af[:, 0]).max() < 0.05
    assert np.median(af[:, 1]) > 2 * np.median(sinus[:, 1])


def test_noisy_records_are_mostly_noise() -> None:
    """A clean ECG is spiky (high kurtosis); noise-dominated records are near Gaussian."""
    noisy = [stats.kurtosis(ecg_simulate(30, 300.0, rhythm="~", rng=s)) for s in range(8)]
    clean = [stats.kurtosis(ecg_simulate(30, 300.0, rhythm="N", rng=s)) for s in range(8)]
    assert max(noisy) < 1.5 < min(clean)


def test_load_counts_lengths_and_determinism() -> None:
    ss = synthetic.load(n_records=30, classes=("N", "A", "O"), fs=200.0, seed=7)
    assert ss.class_counts() == {"N": 10, "A": 10, "O": 10}
    assert ss.fs == 200.0 and ss.channels == ("ECG",) and ss.classes == ("N", "A", "O")
    assert ss.ids[0] == "SYN00001" and list(ss.groups) == list(ss.ids)
    assert ss.lengths.min() >= 9 * 200 and ss.lengths.max() <= 60 * 200
    assert all(x.dtype == np.float32 and x.shape[0] == 1 for x in ss.signals)
    again = synthetic.load(n_records=30, classes=("N", "A", "O"), fs=200.0, seed=7)
    assert again.meta["sha256"] == ss.meta["sha256"]
    np.testing.assert_array_equal(again.targets, ss.targets)
    other = synthetic.load(n_records=30, classes=("N", "A", "O"), fs=200.0, seed=8)
    assert other.meta["sha256"] != ss.meta["sha256"]
    assert ss.meta["skipped"] == {} and ss.meta["excluded"] == {}


@pytest.mark.parametrize(
    ("balance", "expected"),
    [
        ({"N": 0.8, "A": 0.2}, {"N": 8, "A": 2}),
        ([1, 2], {"N": 3, "A": 7}),
        (None, {"N": 5, "A": 5}),
    ],
)
def test_class_balance_gives_exact_counts(balance: object, expected: dict) -> None:
    ss = synthetic.load(n_records=10, class_balance=balance, min_duration_s=5, max_duration_s=5)
    assert ss.class_counts() == expected
    assert set(ss.lengths) == {1500}


def test_rr_irregularity_separates_sinus_from_af() -> None:
    ss = synthetic.load(n_records=40, classes=("N", "A"), max_duration_s=30.0, seed=11)
    feature = np.array([rr_irregularity(x[0], ss.fs) for x in ss.signals])
    predicted = (feature > 0.1).astype(np.int64)
    assert (predicted == ss.targets).mean() >= 0.95


@pytest.mark.parametrize(
    "options",
    [
        {"classes": ("N", "B")},
        {"n_records": 0},
        {"min_duration_s": 10.0, "max_duration_s": 5.0},
        {"class_balance": {"N": 1.0}},
        {"class_balance": [1.0, -1.0]},
    ],
)
def test_bad_options_are_recipe_errors(options: dict) -> None:
    with pytest.raises(RecipeError, match="synthetic-ecg"):
        synthetic.load(**options)


def test_bad_rhythm_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="rhythm 'X'"):
        ecg_simulate(10.0, 300.0, rhythm="X")
