"""R-peak detection, the RR-interval track and its place in the feature pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from physiodl.datasets.synthetic import ecg_simulate
from physiodl.errors import DataError, RecipeError
from physiodl.features import FeaturePipeline
from physiodl.recipes import FeaturesConfig
from physiodl.signalset import SignalSet
from physiodl.transforms.augment import Augmentation
from physiodl.transforms.rr_intervals import (
    RR_CHANNEL,
    RR_RANGE,
    append_rr_channel,
    r_peaks,
    rr_interval_track,
)

FS = 150.0


@pytest.mark.parametrize("heart_rate", [45.0, 75.0, 140.0])
def test_sinus_rhythm_rate_is_found_in_either_polarity(heart_rate: float) -> None:
    ecg = ecg_simulate(30.0, FS, rhythm="N", heart_rate=heart_rate, rng=3)
    peaks = r_peaks(ecg, FS)
    rr = np.diff(peaks) / FS
    assert 60 / np.median(rr) == pytest.approx(heart_rate, rel=0.04)
    assert len(peaks) == pytest.approx(30 * heart_rate / 60, abs=2)
    inverted = r_peaks(-ecg, FS)
    assert len(inverted) == len(peaks) and np.abs(inverted - peaks).max() <= 1


def test_af_is_far_more_irregular_than_sinus_rhythm() -> None:
    def irregularity(rhythm: str, seed: int) -> float:
        rr = np.diff(r_peaks(ecg_simulate(30.0, FS, rhythm=rhythm, rng=seed), FS))
        return float(np.median(np.abs(np.diff(rr))) / np.median(rr))

    assert min(irregularity("A", s) for s in range(5)) > 2 * max(
        irregularity("N", s) for s in range(5)
    )


def test_track_holds_each_interval_between_its_peaks() -> None:
    peaks = np.array([10, 40, 100, 130])
    track = rr_interval_track(peaks, 150, fs=30.0)
    assert track.dtype == np.float32 and track.shape == (150,)
    np.testing.assert_allclose(track[:40], 1.0)  # before the 2nd peak: the first interval
    np.testing.assert_allclose(track[40:100], 2.0)
    np.testing.assert_allclose(track[100:], 1.0)  # after the last peak: the last interval


def test_track_without_rhythm_is_the_range_maximum() -> None:
    np.testing.assert_array_equal(rr_interval_track(np.array([5]), 20, 10.0), RR_RANGE[1])
    assert len(r_peaks(np.zeros(3000, np.float32), FS)) == 0
    assert len(r_peaks(np.ones(10, np.float32), FS)) == 0


def test_detection_needs_the_qrs_band() -> None:
    with pytest.raises(DataError, match="needs more than 40 Hz"):
        r_peaks(np.zeros(1000), 35.0)


def _ecgs(n: int = 3) -> SignalSet:
    signals = [
        ecg_simulate(12.0 + i, FS, rhythm="N", heart_rate=60.0, rng=i)[None] for i in range(n)
    ]
    return SignalSet(signals, FS, ("ECG",), tuple(f"r{i}" for i in range(n)))


def test_the_channel_is_appended_to_every_record() -> None:
    ss = append_rr_channel(_ecgs())
    assert ss.channels == ("ECG", RR_CHANNEL)
    for x, raw in zip(ss.signals, _ecgs().signals, strict=True):
        assert x.shape == (2, raw.shape[1]) and x.dtype == np.float32
        np.testing.assert_array_equal(x[0], raw[0])
        assert np.median(x[1]) == pytest.approx(1.0, rel=0.05)
    with pytest.raises(DataError, match="already have"):
        append_rr_channel(ss)


def test_pipeline_appends_the_channel_after_band_pass_and_keys_its_cache() -> None:
    config = FeaturesConfig(bandpass=(0.5, 45.0), rr_intervals=True)
    pipeline = FeaturePipeline.for_data(config, FS)
    out = pipeline.fit(pipeline.transform(_ecgs()))(_ecgs())
    assert out.channels == ("ECG", RR_CHANNEL)
    assert pipeline.cache_key()["rr_intervals"] is True
    plain = FeaturePipeline.for_data(FeaturesConfig(bandpass=(0.5, 45.0)), FS)
    assert "rr_intervals" not in plain.cache_key()
    with pytest.raises(ValueError, match="turn off the spectrogram"):
        FeaturesConfig(rr_intervals=True, spectrogram={"nperseg": 32, "noverlap": 4})


def test_augmentation_leaves_derived_channels_alone_unless_told() -> None:
    batch = np.random.default_rng(0).standard_normal((32, 2, 40)).astype(np.float32)
    out = Augmentation(scale=0.3, flip=True, noise=0.1, channels=[0])(
        batch, np.random.default_rng(1)
    )
    np.testing.assert_array_equal(out[:, 1], batch[:, 1])
    assert np.abs(out[:, 0] - batch[:, 0]).mean() > 0.1
    names = ("ECG", RR_CHANNEL)
    assert Augmentation(flip=True, channels=[1]).checked(names).channels == (1,)
    assert Augmentation(flip=True).checked(names).channels == (0,)  # derived: left alone
    assert Augmentation(flip=True).checked(("ECG", "PPG")).channels is None  # all measured
    with pytest.raises(RecipeError, match=r"augment.channels = \[2\]: .* 0 to 1 \(ECG, rr_"):
        Augmentation(flip=True, channels=[2]).checked(names)
