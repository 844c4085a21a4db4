"""Oversampling to the largest class (the seed's method) and inverse-frequency weights."""

from __future__ import annotations

import numpy as np
import pytest

from physiodl.errors import DataError, RecipeError
from physiodl.fold_runs import _task
from physiodl.recipes import recipe_from_dict
from physiodl.signalset import SignalSet
from physiodl.tasks import ClassificationTask
from physiodl.transforms.balance import class_weights, oversample_indices


def test_oversampling_gives_every_class_the_largest_count_exactly() -> None:
    targets = np.array([0] * 10 + [1] * 3 + [2] * 1 + [3] * 0)
    indices = oversample_indices(targets, np.random.default_rng(0))
    np.testing.assert_array_equal(indices[: len(targets)], np.arange(len(targets)))
    np.testing.assert_array_equal(np.bincount(targets[indices]), [10, 10, 10])
    # repeats come in full rounds: members of a class appear 3 or 4 times, never 2 and 5
    repeats = np.bincount(indices, minlength=len(targets))[10:13]
    assert repeats.sum() == 10 and repeats.max() - repeats.min() <= 1
    assert indices.dtype == np.int64


def test_oversampling_is_seeded_and_leaves_balanced_data_alone() -> None:
    targets = np.array([0, 0, 0, 0, 0, 1, 1])
    first = oversample_indices(targets, np.random.default_rng(7))
    np.testing.assert_array_equal(first, oversample_indices(targets, np.random.default_rng(7)))
    balanced = np.array([1, 0, 1, 0])
    np.testing.assert_array_equal(
        oversample_indices(balanced, np.random.default_rng(0)), np.arange(4)
    )


def test_class_weights_are_inverse_frequency_with_mean_one() -> None:
    weights = class_weights(np.array([0] * 6 + [1] * 2), 2)
    np.testing.assert_allclose(weights, [0.5, 1.5])
    counts = np.array([50, 5, 20])
    weights = class_weights(np.repeat(np.arange(3), counts), 3)
    assert weights.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(weights * counts, (weights * counts)[0])


def test_square_root_class_weights_balance_halfway() -> None:
    counts = np.array([64, 16, 4])
    weights = class_weights(np.repeat(np.arange(3), counts), 3, power=0.5)
    assert weights.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(weights / weights[0], [1.0, 2.0, 4.0])


def test_class_weights_name_empty_classes_and_bad_targets() -> None:
    with pytest.raises(DataError, match=r"class codes \[1\] have no training examples"):
        class_weights(np.array([0, 0, 2]), 3)
    with pytest.raises(DataError, match="integer class codes"):
        oversample_indices(np.array([0.5, 1.0]), np.random.default_rng(0))
    with pytest.raises(DataError, match=r"outside 0\.\.1"):
        class_weights(np.array([0, 1, 2]), 2)


@pytest.mark.parametrize(
    ("balance", "weights", "priors"),
    [
        ("oversample", None, [0.8, 0.2]),
        ("class_weights", [0.4, 1.6], [0.8, 0.2]),
        # the loss saw N as 0.8 / sqrt(0.8) and A as 0.2 / sqrt(0.2): A is half as rare as it is
        ("sqrt_class_weights", [2 / 3, 4 / 3], [2 / 3, 1 / 3]),
        ("none", None, None),
    ],
)
def test_each_balance_mode_sets_loss_weights_and_the_prior_correction(
    balance: str, weights: list[float] | None, priors: list[float] | None
) -> None:
    config = recipe_from_dict(
        {
            "name": "balance",
            "data": {"dataset": "synthetic", "classes": ["N", "A"]},
            "features": {"balance": balance},
            "models": [{"name": "m", "arch": "MeanSpectrumNet"}],
        }
    )
    targets = np.array([0] * 8 + [1] * 2)
    train = SignalSet(
        signals=[np.zeros((1, 4), np.float32)] * 10,
        fs=1.0,
        channels=("x",),
        ids=tuple(str(i) for i in range(10)),
        targets=targets,
        classes=("N", "A"),
    )
    task = _task(config, config.models[0], train, train, balance)
    assert isinstance(task, ClassificationTask)
    if weights is None:
        assert task.class_weights is None
    else:
        np.testing.assert_allclose(task.class_weights, weights)
    if priors is None:
        assert task.class_priors is None
    else:
        np.testing.assert_allclose(task.class_priors, priors)


def test_a_model_can_keep_its_balanced_probabilities() -> None:
    config = recipe_from_dict(
        {
            "name": "priors",
            "data": {"dataset": "synthetic", "classes": ["N", "A"]},
            "models": [
                {"name": "calibrated", "arch": "ConvNet"},
                {"name": "balanced", "arch": "ConvNet", "evaluation": {"class_priors": "balanced"}},
            ],
        }
    )
    train = SignalSet(
        signals=[np.zeros((1, 4), np.float32)] * 4,
        fs=1.0,
        channels=("x",),
        ids=("a", "b", "c", "d"),
        targets=np.array([0, 0, 0, 1]),
        classes=("N", "A"),
    )
    calibrated, balanced = (_task(config, m, train, train, "oversample") for m in config.models)
    assert isinstance(calibrated, ClassificationTask) and isinstance(balanced, ClassificationTask)
    np.testing.assert_allclose(calibrated.class_priors, [0.75, 0.25])
    assert balanced.class_priors is None
    with pytest.raises(RecipeError, match=r"models\.balanced\.evaluation"):
        recipe_from_dict(
            {
                "name": "priors",
                "data": {"dataset": "synthetic", "classes": ["N", "A"]},
                "models": [{"name": "balanced", "arch": "ConvNet", "evaluation": {"priors": 1}}],
            }
        )
