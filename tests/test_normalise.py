"""Normaliser: exact statistics over real time steps of the given records, round-trips."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from physiodl.errors import CheckpointError, DataError, RecipeError
from physiodl.signalset import SignalSet
from physiodl.transforms.normalise import Normaliser, fit_normaliser


def make_set(lengths: list[int], channels: int = 3, seed: int = 0) -> SignalSet:
    rng = np.random.default_rng(seed)
    signals = [
        (rng.standard_normal((channels, n)) * [[1.0], [10.0], [0.1]][:channels] + 5.0).astype(
            np.float32
        )
        for n in lengths
    ]
    return SignalSet(
        signals=signals,
        fs=10.0,
        channels=tuple(f"c{i}" for i in range(channels)),
        ids=tuple(f"r{i}" for i in range(len(lengths))),
    )


def test_statistics_are_those_of_the_concatenated_real_samples() -> None:
    ss = make_set([50, 7, 300, 1])
    joined = np.concatenate(ss.signals, axis=1).astype(np.float64)
    norm = fit_normaliser(ss)
    np.testing.assert_allclose(norm.mean, joined.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(norm.std, joined.std(axis=1), rtol=1e-6)
    # padding would pull the means towards zero: the fit must not see any
    assert not np.allclose(norm.mean, ss.padded().mean(axis=(0, 2)), rtol=0.1)
    assert norm.mean.dtype == np.float32 and norm.kind == "per_channel"


def test_applied_training_data_has_zero_mean_and_unit_std() -> None:
    ss = make_set([40, 90, 13])
    out = fit_normaliser(ss).apply(ss)
    joined = np.concatenate(out.signals, axis=1)
    np.testing.assert_allclose(joined.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(joined.std(axis=1), 1.0, rtol=1e-5)
    assert out.ids == ss.ids and out.signals[0].dtype == np.float32


def test_fit_uses_only_the_records_given() -> None:
    ss = make_set([100, 100, 100, 100])
    ss = ss.with_signals([x + 10.0 * i for i, x in enumerate(ss.signals)])
    train = ss.subset([0, 1])
    norm = fit_normaliser(train)
    np.testing.assert_allclose(norm.mean, fit_normaliser(ss).mean - 10.0, rtol=0.02)
    np.testing.assert_allclose(norm.mean[0], np.concatenate(train.signals, axis=1)[0].mean(), 1e-6)


def test_global_kind_uses_one_mean_and_std_over_all_channels() -> None:
    ss = make_set([30, 70])
    norm = fit_normaliser(ss, kind="global")
    joined = np.concatenate([x.ravel() for x in ss.signals]).astype(np.float64)
    assert norm.kind == "global"
    np.testing.assert_allclose(norm.mean, [joined.mean()] * 3, rtol=1e-6)
    np.testing.assert_allclose(norm.std, [joined.std()] * 3, rtol=1e-6)


def test_per_frequency_is_per_channel_and_constant_channels_get_std_one() -> None:
    ss = make_set([20, 20], channels=2)
    ss = ss.with_signals([np.stack([x[0], np.full_like(x[1], 3.0)]) for x in ss.signals])
    norm = fit_normaliser(ss, kind="per_frequency")
    assert norm.kind == "per_channel"
    assert norm.std[1] == 1.0 and norm.mean[1] == 3.0
    np.testing.assert_array_equal(norm.apply(ss).signals[0][1], 0.0)


def test_round_trip_through_a_weights_only_checkpoint() -> None:
    norm = fit_normaliser(make_set([25, 60]))
    buffer = io.BytesIO()
    torch.save({"normaliser": norm.to_dict()}, buffer)
    buffer.seek(0)
    loaded = Normaliser.from_dict(torch.load(buffer, weights_only=True)["normaliser"])
    np.testing.assert_array_equal(loaded.mean, norm.mean)
    np.testing.assert_array_equal(loaded.std, norm.std)
    assert (loaded.kind, loaded.channels) == (norm.kind, norm.channels)


def test_errors_name_the_problem() -> None:
    ss = make_set([10, 10])
    with pytest.raises(RecipeError, match="'zscore'"):
        fit_normaliser(ss, kind="zscore")
    bad = ss.with_signals([ss.signals[0], np.full_like(ss.signals[1], np.nan)])
    with pytest.raises(DataError, match="'r1'"):
        fit_normaliser(bad)
    norm = fit_normaliser(ss)
    zeros = [np.zeros((3, 4), np.float32)]
    other = SignalSet(signals=zeros, fs=10.0, channels=("a", "b", "c"), ids=("x",))
    with pytest.raises(DataError, match="'a' vs 'c0'"):
        norm.apply(other)
    with pytest.raises(CheckpointError, match="std"):
        Normaliser.from_dict({"kind": "global", "channels": ["a"], "mean": [0.0]})
