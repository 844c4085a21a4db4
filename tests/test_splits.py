"""Splits: sizes, stratification, no overlap, no group leakage, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from physiodl.errors import DataError, RecipeError
from physiodl.splits import (
    Split,
    check_no_leakage,
    chronological_split,
    grouped_split,
    kfold_splits,
    make_split,
    make_splits,
    random_split,
    stratified_split,
)

SEEDS = range(6)


def parts(split: Split) -> list[np.ndarray]:
    return [split.train, split.validation, split.test]


def assert_partition(split: Split, n: int) -> None:
    together = np.concatenate(parts(split))
    np.testing.assert_array_equal(np.sort(together), np.arange(n))
    for part in parts(split):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)


def targets_with_shares(n: int, shares: list[float], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(len(shares), size=n, p=shares).astype(np.int64)


def test_random_split_sizes_follow_the_seed_and_sklearn() -> None:
    split = random_split(5622, validation=0.2, seed=3)  # the seed: 4497 train, 1125 validation
    assert (len(split.train), len(split.validation), len(split.test)) == (4497, 1125, 0)
    assert_partition(split, 5622)
    split = random_split(101, validation=0.2, test=0.1, seed=3)
    assert (len(split.train), len(split.validation), len(split.test)) == (69, 21, 11)
    assert_partition(split, 101)


@pytest.mark.parametrize("seed", SEEDS)
def test_stratified_split_keeps_class_shares(seed: int) -> None:
    targets = targets_with_shares(1000, [0.7, 0.2, 0.1], seed)
    split = stratified_split(targets, validation=0.2, test=0.1, seed=seed)
    assert_partition(split, 1000)
    assert (len(split.validation), len(split.test)) == (200, 100)
    overall = np.bincount(targets, minlength=3) / len(targets)
    for part in parts(split):
        share = np.bincount(targets[part], minlength=3) / len(part)
        np.testing.assert_allclose(share, overall, atol=0.011)


@pytest.mark.parametrize("seed", SEEDS)
def test_grouped_split_never_puts_a_group_on_two_sides(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 40, size=500).astype(str)
    targets = rng.integers(0, 2, size=500).astype(np.int64)
    for split in (
        grouped_split(groups, validation=0.2, test=0.2, seed=seed),
        grouped_split(groups, validation=0.25, seed=seed, targets=targets),
    ):
        assert_partition(split, 500)
        sides = [set(groups[p]) for p in parts(split)]
        assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
        check_no_leakage(split, groups)
    plain = grouped_split(groups, validation=0.2, test=0.2, seed=seed)
    assert len(set(groups[plain.validation])) == 8 and len(set(groups[plain.test])) == 8


def test_check_no_leakage_names_the_group() -> None:
    groups = np.array(["s1", "s1", "s2", "s3"])
    with pytest.raises(DataError, match=r"'s1'.*train and validation"):
        check_no_leakage(Split(train=[0, 2], validation=[1, 3]), groups)
    check_no_leakage(Split(train=[0, 1], validation=[2], test=[3]), groups)


@pytest.mark.parametrize("seed", SEEDS)
def test_kfold_validation_parts_partition_the_records(seed: int) -> None:
    rng = np.random.default_rng(seed)
    targets = targets_with_shares(300, [0.8, 0.2], seed)
    groups = rng.integers(0, 30, size=300)
    for kwargs in (
        {"n": 300},
        {"targets": targets},
        {"groups": groups},
        {"targets": targets, "groups": groups},
    ):
        folds = kfold_splits(5, seed=seed, **kwargs)
        assert [f.fold for f in folds] == list(range(5))
        np.testing.assert_array_equal(
            np.sort(np.concatenate([f.validation for f in folds])), np.arange(300)
        )
        for f in folds:
            assert_partition(f, 300)
            if "groups" in kwargs:
                check_no_leakage(f, groups)
    for f in kfold_splits(5, targets=targets, seed=seed):
        assert abs(np.mean(targets[f.validation]) - np.mean(targets)) < 0.02


def test_chronological_split_keeps_time_order() -> None:
    split = chronological_split(10, validation=0.2, test=0.1)
    assert split.train.tolist() == list(range(7))
    assert split.validation.tolist() == [7, 8] and split.test.tolist() == [9]


def test_same_seed_same_split_other_seed_other_split() -> None:
    targets = targets_with_shares(200, [0.5, 0.5])
    groups = np.arange(200) // 4
    for kind in ("random", "stratified", "grouped"):
        a = make_split(kind, targets=targets, groups=groups, validation=0.2, seed=1)
        b = make_split(kind, targets=targets, groups=groups, validation=0.2, seed=1)
        c = make_split(kind, targets=targets, groups=groups, validation=0.2, seed=2)
        np.testing.assert_array_equal(a.validation, b.validation)
        assert not np.array_equal(a.validation, c.validation)


def test_make_split_dispatches_and_checks_its_arguments() -> None:
    targets = targets_with_shares(100, [0.5, 0.5])
    fold = make_split("kfold", targets=targets, k=4, fold=2, seed=0)
    assert fold.fold == 2 and len(fold.validation) == 25
    assert len(make_split("chronological", n=10, validation=0.3).validation) == 3
    floats = np.linspace(0, 1, 100)
    assert len(make_split("random", targets=floats, validation=0.1).validation) == 10
    with pytest.raises(RecipeError, match=r"'shuffled'.*random, stratified"):
        make_split("shuffled", n=10)
    with pytest.raises(RecipeError, match="class-coded"):
        make_split("stratified", targets=floats)
    with pytest.raises(RecipeError, match="groups"):
        make_split("grouped", targets=targets)
    with pytest.raises(RecipeError, match="fold=4"):
        make_split("kfold", targets=targets, k=4, fold=4)
    with pytest.raises(RecipeError, match=r"split\.validation=1\.5"):
        make_split("random", n=10, validation=1.5)
    with pytest.raises(RecipeError, match="leave no training records"):
        make_split("random", n=10, validation=0.5, test=0.5)
    with pytest.raises(DataError, match="least populated class"):
        stratified_split(np.array([0, 0, 0, 0, 1]), validation=0.4)


# The 18 shared IEEE SPC 2015 recordings and their subjects (S02 and S04 have two each).
IEEE_GROUPS = np.array(
    [
        *("01", "02", "03", "04", "05", "06", "07", "10", "11", "12"),
        *("S02", "S02", "S03", "S04", "S05", "S07", "S08", "S04"),
    ]
)


@pytest.mark.parametrize("seed", [0, 12345])
def test_subject_wise_cross_validation_never_puts_a_subject_on_two_sides(seed: int) -> None:
    test_groups = ["04", "06", "S03", "S04"]
    splits = make_splits("kfold", groups=IEEE_GROUPS, k=4, test_groups=test_groups, seed=seed)
    assert [s.fold for s in splits] == [0, 1, 2, 3]
    test = splits[0].test
    assert sorted(set(IEEE_GROUPS[test])) == test_groups and len(test) == 5  # S04 twice
    validated = np.concatenate([s.validation for s in splits])
    assert sorted(validated.tolist()) == sorted(set(range(18)) - set(test.tolist()))
    for split in splits:
        np.testing.assert_array_equal(split.test, test)
        train, val = set(IEEE_GROUPS[split.train]), set(IEEE_GROUPS[split.validation])
        assert not train & val and not train & set(test_groups) and not val & set(test_groups)
        assert len(split.train) + len(split.validation) + len(split.test) == 18
    s02 = np.flatnonzero(IEEE_GROUPS == "S02")
    assert any(set(s02) <= set(s.validation.tolist()) for s in splits)  # S02 validated together


def test_make_splits_single_split_and_errors() -> None:
    [single] = make_splits("grouped", groups=IEEE_GROUPS, validation=0.25, seed=1)
    check_no_leakage(single, IEEE_GROUPS)
    [one_fold] = make_splits("kfold", groups=IEEE_GROUPS, k=4, fold=2, test_groups=["S02"])
    assert set(IEEE_GROUPS[one_fold.test]) == {"S02"} and one_fold.fold == 2
    with pytest.raises(DataError, match=r"no records of 'S99'"):
        make_splits("kfold", groups=IEEE_GROUPS, k=4, test_groups=["S99"])
    with pytest.raises(RecipeError, match="needs a dataset with groups"):
        make_splits("kfold", n=10, k=2, test_groups=["a"])
    leaky = Split(train=np.array([10]), validation=np.array([11]))  # S02 and S02
    with pytest.raises(DataError, match="leaks group 'S02'"):
        check_no_leakage(leaky, IEEE_GROUPS)
