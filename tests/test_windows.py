"""Chunk positions and chunk extraction over records of different lengths."""

from __future__ import annotations

import numpy as np
import pytest

from physiodl.transforms.windows import PackedSignals, chunk_index, extract_chunks, random_starts


def naive_chunk(x: np.ndarray, start: int, length: int, fill: float = 0.0) -> np.ndarray:
    piece = x[:, start : start + length]
    out = np.full((x.shape[0], length), fill, dtype=np.float32)
    out[:, : piece.shape[1]] = piece
    return out


def test_chunk_index_non_overlapping_like_the_seed() -> None:
    owner, starts = chunk_index(np.array([100, 30, 85, 40]), 40)
    np.testing.assert_array_equal(owner, [0, 0, 1, 2, 2, 3])
    np.testing.assert_array_equal(starts, [0, 40, 0, 0, 40, 0])
    assert owner.dtype == np.int64 and starts.dtype == np.int64


def test_chunk_index_stride_and_short_records() -> None:
    owner, starts = chunk_index(np.array([100, 30]), 40, stride=20, include_short=False)
    np.testing.assert_array_equal(owner, [0, 0, 0, 0])
    np.testing.assert_array_equal(starts, [0, 20, 40, 60])
    owner, _ = chunk_index(np.array([10, 20]), 40)
    np.testing.assert_array_equal(owner, [0, 1])
    with pytest.raises(ValueError, match=">= 1"):
        chunk_index(np.array([10]), 0)


def test_random_starts_stay_inside_each_record() -> None:
    lengths = np.array([100, 30, 41])
    owners = np.repeat(np.arange(3), 500)
    starts = random_starts(lengths, owners, 40, np.random.default_rng(0))
    for record, last in enumerate([60, 0, 1]):
        mine = starts[owners == record]
        assert mine.min() == 0 and mine.max() == last
    again = random_starts(lengths, owners, 40, np.random.default_rng(0))
    np.testing.assert_array_equal(starts, again)


def test_extract_chunks_equals_slicing_with_zero_padding() -> None:
    rng = np.random.default_rng(1)
    signals = [rng.standard_normal((3, n)).astype(np.float32) for n in (50, 7, 120, 40)]
    owner = np.array([2, 0, 1, 3, 2, 0, 2])
    starts = np.array([80, 10, 0, 0, 0, 45, 119])  # partial tails at 45 (of 50) and 119
    chunks = extract_chunks(signals, owner, starts, 40)
    assert chunks.shape == (7, 3, 40) and chunks.dtype == np.float32
    assert chunks.flags.c_contiguous
    for i, (o, s) in enumerate(zip(owner, starts, strict=True)):
        np.testing.assert_array_equal(chunks[i], naive_chunk(signals[o], s, 40))
    assert extract_chunks(signals, np.array([], dtype=np.int64), np.array([]), 40).shape == (
        0,
        3,
        40,
    )


def test_packed_signals_fill_and_bad_starts() -> None:
    targets = [np.array([0.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0, 0.0, 1.0])]
    packed = PackedSignals.pack(targets)
    assert packed.data.shape == (8, 1)
    chunks = packed.chunks(np.array([0, 1]), np.array([1, 3]), 4, fill=np.nan)
    np.testing.assert_array_equal(chunks[:, 0], [[1, 0, np.nan, np.nan], [0, 1, np.nan, np.nan]])
    with pytest.raises(ValueError, match="outside record 0"):
        packed.chunks(np.array([0]), np.array([3]), 2)
    with pytest.raises(ValueError, match="chunk start -1"):
        packed.chunks(np.array([1]), np.array([-1]), 2)
