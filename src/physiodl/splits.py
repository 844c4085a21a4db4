"""Train / validation / test splits of record indices, and a check that no group leaks.

Fractions follow scikit-learn: ``ceil(fraction * n)`` records go to validation (and test), the
rest to training. Every function is deterministic for a given seed; index arrays are sorted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import (
    BaseCrossValidator,
    BaseShuffleSplit,
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
)

from physiodl.errors import DataError, RecipeError

KINDS = ("random", "stratified", "grouped", "kfold", "chronological")


def _index(values: np.ndarray | list[int]) -> np.ndarray:
    return np.sort(np.asarray(values, dtype=np.int64))


@dataclass(frozen=True)
class Split:
    """Sorted int64 record indices of each part; ``fold`` is set for k-fold splits."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fold: int | None = None

    def __post_init__(self) -> None:
        for name in ("train", "validation", "test"):
            object.__setattr__(self, name, _index(getattr(self, name)))
        together = np.concatenate([self.train, self.validation, self.test])
        if len(np.unique(together)) != len(together):
            raise DataError("split: a record index appears in more than one part (or twice)")


def random_split(n: int, validation: float, test: float = 0.0, seed: int = 0) -> Split:
    """Shuffle ``n`` records and cut off ``ceil(test * n)`` and ``ceil(validation * n)``."""
    n_val, n_test = _sizes(n, validation, test)
    order = np.random.default_rng(seed).permutation(n)
    return Split(
        train=order[n_test + n_val :],
        validation=order[n_test : n_test + n_val],
        test=order[:n_test],
    )


def chronological_split(n: int, validation: float, test: float = 0.0) -> Split:
    """The first records train, the next validate, the last test (for forecasting)."""
    n_val, n_test = _sizes(n, validation, test)
    n_train = n - n_val - n_test
    return Split(
        train=np.arange(n_train),
        validation=np.arange(n_train, n_train + n_val),
        test=np.arange(n_train + n_val, n),
    )


def stratified_split(
    targets: np.ndarray, validation: float, test: float = 0.0, seed: int = 0
) -> Split:
    """Like `random_split`, keeping each class's share in every part (scikit-learn)."""
    targets = _class_codes(targets, "stratified split")
    n_val, n_test = _sizes(len(targets), validation, test)
    random_state = np.random.RandomState(seed)
    rest = np.arange(len(targets))
    parts = []
    for size in (n_test, n_val):
        if size == 0:
            parts.append(rest[:0])
            continue
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=size, random_state=random_state)
        keep, take = _folds(splitter, "stratified split", rest, targets[rest])[0]
        parts.append(rest[take])
        rest = rest[keep]
    return Split(train=rest, validation=parts[1], test=parts[0])


def grouped_split(
    groups: np.ndarray,
    validation: float,
    test: float = 0.0,
    seed: int = 0,
    targets: np.ndarray | None = None,
) -> Split:
    """Split whole groups (subjects): no group has records on two sides.

    Without ``targets`` the fractions are shares of the groups (``GroupShuffleSplit``). With
    class-coded ``targets`` the class shares are kept as well (``StratifiedGroupKFold``, first
    fold), and each fraction is rounded to ``1 / k`` for a whole number ``k >= 2``.
    """
    groups = np.asarray(groups)
    if targets is not None:
        targets = _class_codes(targets, "grouped split")
    _sizes(len(groups), validation, test)
    if len(np.unique(groups)) < 2:
        raise DataError("grouped split: needs at least two distinct groups (subjects)")
    random_state = np.random.RandomState(seed)
    rest = np.arange(len(groups))
    parts = []
    remaining = 1.0
    for fraction in (test, validation):
        if fraction == 0:
            parts.append(rest[:0])
            continue
        share = fraction / remaining
        if targets is None:
            splitter = GroupShuffleSplit(n_splits=1, test_size=share, random_state=random_state)
            keep, take = _folds(splitter, "grouped split", rest, None, groups[rest])[0]
        else:
            k = max(2, round(1 / share))
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=random_state)
            keep, take = _folds(splitter, "grouped split", rest, targets[rest], groups[rest])[0]
        parts.append(rest[take])
        rest = rest[keep]
        remaining -= fraction
    split = Split(train=rest, validation=parts[1], test=parts[0])
    check_no_leakage(split, groups)
    return split


def kfold_splits(
    k: int,
    *,
    n: int | None = None,
    targets: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    seed: int = 0,
) -> list[Split]:
    """``k`` splits whose validation parts partition the records (``fold`` = 0 .. k-1).

    Grouped when ``groups`` are given, stratified when class-coded ``targets`` are given (both:
    ``StratifiedGroupKFold``), else plain shuffled k-fold over ``n`` records.
    """
    if k < 2:
        raise RecipeError(f"split.k={k}: k-fold needs k >= 2")
    if targets is not None:
        targets = _class_codes(targets, "k-fold split")
    count = next((len(v) for v in (targets, groups) if v is not None), n)
    if count is None:
        raise RecipeError("k-fold split: give n, targets or groups")
    if count < k:
        raise DataError(f"k-fold split: {count} records cannot make {k} folds")
    splitter: BaseCrossValidator
    if groups is not None and targets is not None:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    elif groups is not None:
        splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    elif targets is not None:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    folds = _folds(splitter, "k-fold split", np.arange(count), targets, groups)
    return [Split(train=train, validation=val, fold=i) for i, (train, val) in enumerate(folds)]


def check_no_leakage(split: Split, groups: np.ndarray) -> None:
    """Raise a `DataError` naming a group that has records in two parts of ``split``."""
    groups = np.asarray(groups)
    parts = {"train": split.train, "validation": split.validation, "test": split.test}
    seen = {name: set(groups[index].tolist()) for name, index in parts.items()}
    names = list(parts)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = seen[first] & seen[second]
            if shared:
                example = sorted(map(str, shared))[0]
                raise DataError(
                    f"split leaks group {example!r} ({len(shared)} groups in all) between "
                    f"{first} and {second}; use a grouped split (split.kind = 'grouped')"
                )


def make_split(
    kind: str,
    *,
    n: int | None = None,
    targets: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    validation: float = 0.2,
    test: float = 0.0,
    seed: int = 0,
    k: int | None = None,
    fold: int | None = None,
) -> Split:
    """The split a recipe's ``[split]`` table asks for.

    ``kind`` is one of `KINDS`. ``targets`` are used for stratification only when they are class
    codes (integers); ``kfold`` needs ``k`` and ``fold`` and returns that fold.
    """
    if kind not in KINDS:
        raise RecipeError(f"split.kind={kind!r} is not a split; choose one of {', '.join(KINDS)}")
    codes = targets if _is_class_coded(targets) else None
    if n is None:
        n = next((len(v) for v in (targets, groups) if v is not None), None)
    if kind == "stratified":
        if codes is None:
            raise RecipeError("split.kind='stratified' needs class-coded targets; use 'random'")
        return stratified_split(codes, validation, test, seed)
    if kind == "grouped":
        if groups is None:
            raise RecipeError("split.kind='grouped' needs a dataset with groups (subject ids)")
        return grouped_split(groups, validation, test, seed, targets=codes)
    if kind == "kfold":
        if k is None or fold is None or not 0 <= fold < k:
            raise RecipeError(
                f"split.kind='kfold' needs split.k >= 2 and 0 <= split.fold < k; "
                f"got k={k}, fold={fold}"
            )
        return kfold_splits(k, n=n, targets=codes, groups=groups, seed=seed)[fold]
    if n is None:
        raise RecipeError(f"split.kind={kind!r}: the number of records is unknown")
    if kind == "chronological":
        return chronological_split(n, validation, test)
    return random_split(n, validation, test, seed)


def make_splits(
    kind: str,
    *,
    n: int | None = None,
    targets: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    validation: float = 0.2,
    test: float = 0.0,
    test_groups: Sequence[str] | None = None,
    seed: int = 0,
    k: int | None = None,
    fold: int | None = None,
) -> list[Split]:
    """The splits a recipe runs: one, or with ``kind='kfold'`` and no ``fold`` all ``k`` folds.

    A test part is held out first and is the same in every split: the records of the
    ``test_groups`` (subjects named in the recipe), else a ``test`` share (whole groups when
    the records have groups). The remaining records are then split by ``kind`` as
    `make_split` does (for ``kfold``: grouped, stratified or plain k-fold, cross-validation
    over every fold when ``fold`` is ``None``). With groups, no group is on two sides.
    """
    if n is None:
        n = next((len(v) for v in (targets, groups) if v is not None), None)
    if n is None:
        raise RecipeError("splits: the number of records is unknown")
    cross_validation = kind == "kfold" and fold is None
    options = dict(validation=validation, seed=seed, k=k, fold=fold)
    if not cross_validation and not test_groups:
        split = make_split(kind, n=n, targets=targets, groups=groups, test=test, **options)
        return [_checked(split, groups)]
    held_out = _test_part(n, targets, groups, test, test_groups, seed)
    rest = np.setdiff1d(np.arange(n), held_out)
    if len(rest) < 2:
        raise DataError(f"the test part leaves {len(rest)} records for training and validation")

    def part(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else np.asarray(values)[rest]

    if cross_validation:
        if k is None:
            raise RecipeError("split.kind='kfold' needs split.k >= 2")
        codes = part(targets) if _is_class_coded(targets) else None
        inner = kfold_splits(k, n=len(rest), targets=codes, groups=part(groups), seed=seed)
    else:
        inner = [
            make_split(kind, n=len(rest), targets=part(targets), groups=part(groups), **options)
        ]
    return [
        _checked(
            Split(
                train=rest[s.train],
                validation=rest[s.validation],
                test=np.concatenate([rest[s.test], held_out]),
                fold=s.fold,
            ),
            groups,
        )
        for s in inner
    ]


def _checked(split: Split, groups: np.ndarray | None) -> Split:
    if groups is not None:
        check_no_leakage(split, groups)
    return split


def _test_part(
    n: int,
    targets: np.ndarray | None,
    groups: np.ndarray | None,
    test: float,
    test_groups: Sequence[str] | None,
    seed: int,
) -> np.ndarray:
    """Indices of the records held out for testing before the other parts are split."""
    if test_groups:
        if groups is None:
            raise RecipeError("split.test_groups needs a dataset with groups (subject ids)")
        names = np.asarray(groups).astype(str)
        unknown = sorted(set(test_groups) - set(names.tolist()))
        if unknown:
            raise DataError(
                f"split.test_groups: no records of {', '.join(map(repr, unknown))}; groups are "
                f"{', '.join(sorted(set(names.tolist())))}"
            )
        return np.flatnonzero(np.isin(names, list(test_groups)))
    if test == 0:
        return np.zeros(0, dtype=np.int64)
    codes = targets if _is_class_coded(targets) else None
    if groups is not None:
        return grouped_split(groups, test, seed=seed, targets=codes).validation
    if codes is not None:
        return stratified_split(codes, test, seed=seed).validation
    return random_split(n, test, seed=seed).validation


def _sizes(n: int, validation: float, test: float) -> tuple[int, int]:
    """Validation and test sizes; a `RecipeError` for fractions that leave no training data."""
    for name, value in (("validation", validation), ("test", test)):
        if not 0 <= value < 1:
            raise RecipeError(f"split.{name}={value} must be a fraction in [0, 1)")
    n_val, n_test = math.ceil(validation * n), math.ceil(test * n)
    if n - n_val - n_test < 1:
        raise RecipeError(
            f"split.validation={validation} and split.test={test} leave no training records "
            f"out of {n}; lower them"
        )
    return n_val, n_test


def _is_class_coded(targets: object) -> bool:
    return isinstance(targets, np.ndarray) and np.issubdtype(targets.dtype, np.integer)


def _class_codes(targets: np.ndarray, what: str) -> np.ndarray:
    if not _is_class_coded(targets):
        raise DataError(f"{what} needs class-coded (integer) targets")
    return targets


def _folds(
    splitter: BaseCrossValidator | BaseShuffleSplit,
    what: str,
    index: np.ndarray,
    targets: np.ndarray | None,
    groups: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """All ``(train, held-out)`` position pairs of a scikit-learn splitter; errors as DataError."""
    try:
        return list(splitter.split(index, targets, groups))
    except ValueError as err:
        counts = "" if targets is None else f"; records per class code: {np.bincount(targets)}"
        raise DataError(f"{what}: {err}{counts}") from err
