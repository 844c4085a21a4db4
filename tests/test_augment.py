"""Augmentations: seeded, shape-preserving, each doing exactly its one change."""

from __future__ import annotations

import numpy as np
import pytest

from physiodl.errors import RecipeError
from physiodl.transforms.augment import Augmentation, add_noise, amplitude_scale, time_shift


@pytest.fixture
def batch() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((64, 2, 50)).astype(np.float32) + 3.0


def test_same_seed_same_result(batch: np.ndarray) -> None:
    for augment in (amplitude_scale, add_noise, lambda x, rng: time_shift(x, rng, 5)):
        a = augment(batch, np.random.default_rng(7))
        b = augment(batch, np.random.default_rng(7))
        c = augment(batch, np.random.default_rng(8))
        assert a.shape == batch.shape and a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_amplitude_scale_uses_one_factor_per_example_within_bounds(batch: np.ndarray) -> None:
    out = amplitude_scale(batch, np.random.default_rng(0), low=0.5, high=2.0)
    factors = out / batch
    np.testing.assert_allclose(factors, factors[:, :1, :1] * np.ones_like(factors), rtol=1e-5)
    assert factors.min() >= 0.5 and factors.max() < 2.0
    assert factors[:, 0, 0].std() > 0.2  # the factors differ between examples


def test_noise_is_relative_to_each_example_and_channel(batch: np.ndarray) -> None:
    batch = batch * np.array([1.0, 100.0], np.float32)[None, :, None]
    noise = add_noise(batch, np.random.default_rng(0), relative_std=0.1) - batch
    ratio = noise.std(axis=(0, 2)) / batch.std(axis=2).mean(axis=0)
    np.testing.assert_allclose(ratio, 0.1, rtol=0.05)
    assert np.all(np.abs(noise.mean(axis=(0, 2))) < 0.1 * noise.std(axis=(0, 2)))


def test_time_shift_rolls_each_example_by_at_most_max_shift(batch: np.ndarray) -> None:
    out = time_shift(batch, np.random.default_rng(0), max_shift=3)
    shifts = set()
    for x, y in zip(batch, out, strict=True):
        shift = next(s for s in range(-3, 4) if np.array_equal(np.roll(x, s, axis=1), y))
        shifts.add(shift)
    assert shifts == set(range(-3, 4))


def test_bad_parameters_are_recipe_errors(batch: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(RecipeError, match="low=2"):
        amplitude_scale(batch, rng, low=2.0, high=1.0)
    with pytest.raises(RecipeError, match="relative_std=-1"):
        add_noise(batch, rng, relative_std=-1)
    with pytest.raises(RecipeError, match="max_shift=-2"):
        time_shift(batch, rng, -2)
    with pytest.raises(ValueError, match="shape"):
        add_noise(batch[0], rng)


def test_augmentation_is_seeded_and_does_what_it_says() -> None:
    x = np.ones((400, 1, 50), dtype=np.float32)
    aug = Augmentation(scale=0.2, flip=True)
    a = aug(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, aug(x, np.random.default_rng(5)))
    magnitude = np.abs(a[:, 0, 0])
    assert magnitude.min() >= 0.8 and magnitude.max() <= 1.2
    assert 0.4 < (a[:, 0, 0] < 0).mean() < 0.6  # about half inverted
    assert not Augmentation().active
    with pytest.raises(RecipeError, match=r"augment\.scale"):
        Augmentation(scale=1.5)


def test_training_batches_are_augmented_only_in_training() -> None:
    from physiodl.signalset import SignalSet
    from physiodl.training import ChunkDataModule

    rng = np.random.default_rng(0)
    ss = SignalSet(
        [rng.standard_normal((1, 300)).astype(np.float32) for _ in range(8)],
        fs=100.0,
        channels=("x",),
        ids=tuple(f"r{i}" for i in range(8)),
        targets=np.array([0, 1] * 4),
        classes=("a", "b"),
    )
    plain = ChunkDataModule(ss, ss, length=100, batch_size=4, seed=1)
    flipped = ChunkDataModule(
        ss, ss, length=100, batch_size=4, seed=1, augmentation=Augmentation(flip=True)
    )
    batch = flipped.train_batches(0)[0]
    x_aug = flipped.train_set[batch][0].numpy()
    x_raw = plain.train_set[batch._replace(augment_seed=-1)][0].numpy()
    assert batch.augment_seed >= 0
    np.testing.assert_allclose(np.abs(x_aug), np.abs(x_raw))
    assert (x_aug != x_raw).any()
    assert all(b.augment_seed == -1 for b in flipped.validation_batches())
    assert flipped.train_batches(0)[0].augment_seed == batch.augment_seed  # per (seed, epoch)
