"""Class balance: oversampling by repetition (the seed's method) and inverse-frequency weights."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from physiodl.errors import DataError

#: how training balances classes: repeat minority examples, weight the loss, or not at all
Balance = Literal["oversample", "class_weights", "sqrt_class_weights", "none"]
BALANCE_CHOICES: tuple[str, ...] = get_args(Balance)
#: the loss-weighting modes and the power of the inverse class frequency each weights by
LOSS_WEIGHT_POWER = {"class_weights": 1.0, "sqrt_class_weights": 0.5}


def oversample_indices(targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices that repeat minority-class examples up to the largest class count.

    As the seed's ``balance_dataset``: every index once, then for each smaller class rounds of
    its examples in a fresh random order, the last round cut to the exact count missing. Every
    class present then has exactly ``max(counts)`` indices; absent classes stay absent.

    Args:
        targets: class code per example, ``(n,)`` integers.
        rng: random generator for the order of the repeated examples.

    Returns:
        int64 indices into ``targets``: ``arange(n)`` followed by the repeats.
    """
    targets = _codes(targets)
    codes, counts = np.unique(targets, return_counts=True)
    largest = counts.max(initial=0)
    extra: list[np.ndarray] = []
    for code, count in zip(codes, counts, strict=True):
        members = np.flatnonzero(targets == code)
        missing = largest - count
        while missing > 0:
            chosen = rng.permutation(members)[:missing]
            extra.append(chosen)
            missing -= len(chosen)
    return np.concatenate([np.arange(len(targets), dtype=np.int64), *extra]).astype(np.int64)


def class_weights(targets: np.ndarray, n_classes: int, power: float = 1.0) -> np.ndarray:
    """Loss weight per class code ``0..n_classes-1``: frequency to the ``-power``, scaled to mean 1.

    ``power`` 1 balances the classes fully (inverse frequency); 0.5 (inverse square root) only
    halfway, which keeps more of the common classes' precision. A class without examples has no
    frequency to invert: a `DataError` names it.
    """
    counts = np.bincount(_codes(targets), minlength=n_classes)
    if len(counts) > n_classes:
        raise DataError(f"class code {len(counts) - 1} is outside 0..{n_classes - 1}")
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise DataError(
            f"class codes {empty.tolist()} have no training examples, so they get no weight; "
            "drop those classes from data.classes or use balance = 'none'"
        )
    inverse = counts.astype(np.float64) ** -power
    return inverse / inverse.mean()


def _codes(targets: np.ndarray) -> np.ndarray:
    codes = np.asarray(targets)
    if codes.ndim != 1 or codes.dtype.kind not in "iu":
        raise DataError(
            f"balancing needs 1-D integer class codes, got dtype {codes.dtype} and shape "
            f"{codes.shape}; use balance = 'none' for regression or per-bin targets"
        )
    if len(codes) and codes.min() < 0:
        raise DataError(f"class codes must be >= 0, got {int(codes.min())}")
    return codes
