"""Fixed-length windows ("chunks") over recordings of different lengths.

A chunk is a pair ``(owner, start)``: the record it comes from and its first time step. Records
shorter than the chunk length give one chunk starting at 0, zero-padded on extraction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def chunk_index(
    lengths: np.ndarray,
    length: int,
    stride: int | None = None,
    *,
    include_short: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Regular chunk positions over records of ``lengths`` time steps.

    Args:
        lengths: time steps per record.
        length: chunk length.
        stride: step between chunk starts; default ``length`` (non-overlapping, as the seed).
            A tail shorter than ``length`` is not covered.
        include_short: give records shorter than ``length`` one chunk at 0 (else none).

    Returns:
        ``(owner, starts)`` int64 arrays, ordered by record, then by start.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    stride = length if stride is None else stride
    if length < 1 or stride < 1:
        raise ValueError(f"chunk length and stride must be >= 1, got {length}, {stride}")
    counts = np.where(lengths >= length, (lengths - length) // stride + 1, 0)
    if include_short:
        counts = np.where(lengths < length, 1, counts)
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    starts = (np.arange(len(owner), dtype=np.int64) - first[owner]) * stride
    return owner, starts


def random_starts(
    lengths: np.ndarray, owners: np.ndarray, length: int, rng: np.random.Generator
) -> np.ndarray:
    """One uniformly drawn start per entry of ``owners`` (0 for records shorter than ``length``)."""
    last = np.maximum(np.asarray(lengths, dtype=np.int64)[owners] - length, 0)
    return rng.integers(0, last + 1, dtype=np.int64)


@dataclass(frozen=True)
class PackedSignals:
    """Records concatenated along time as one time-major ``(total, channels)`` array.

    Gathering chunks is then one fancy index into a strided sliding-window view (no copy of
    the data, no Python loop over chunks), about 10x faster than indexing per chunk.
    """

    data: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    _views: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def pack(cls, signals: list[np.ndarray], dtype: np.dtype | type = np.float32) -> PackedSignals:
        """Pack ``(channels, time)`` arrays (1-D arrays count as one channel)."""
        arrays = [np.atleast_2d(x) for x in signals]
        lengths = np.array([x.shape[1] for x in arrays], dtype=np.int64)
        offsets = np.cumsum(lengths) - lengths
        channels = arrays[0].shape[0] if arrays else 0
        data = np.empty((int(lengths.sum()), channels), dtype=dtype)
        for x, offset, n in zip(arrays, offsets, lengths, strict=True):
            data[offset : offset + n] = x.T
        return cls(data=data, offsets=offsets, lengths=lengths)

    @property
    def n_channels(self) -> int:
        return self.data.shape[1]

    def _windows(self, length: int) -> np.ndarray:
        """Strided view ``(positions, channels, length)`` of every window start (no copy)."""
        if length not in self._views:
            self._views[length] = sliding_window_view(self.data, length, axis=0)
        return self._views[length]

    def chunks(
        self, owner: np.ndarray, starts: np.ndarray, length: int, fill: float = 0.0
    ) -> np.ndarray:
        """Chunks ``(n, channels, length)``; steps past a record's end are ``fill``."""
        owner = np.asarray(owner, dtype=np.int64)
        starts = np.asarray(starts, dtype=np.int64)
        record_lengths = self.lengths[owner]
        bad = (starts < 0) | ((starts >= record_lengths) & (starts > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"chunk start {int(starts[i])} is outside record {int(owner[i])} "
                f"of length {int(record_lengths[i])}"
            )
        whole = starts + length <= record_lengths
        positions = self.offsets[owner] + starts
        if whole.all():
            return np.ascontiguousarray(self._windows(length)[positions])
        out = np.empty((len(owner), self.n_channels, length), dtype=self.data.dtype)
        if whole.any():
            out[whole] = self._windows(length)[positions[whole]]
        for i in np.flatnonzero(~whole):
            kept = int(record_lengths[i] - starts[i])
            first = int(self.offsets[owner[i]] + starts[i])
            out[i, :, :kept] = self.data[first : first + kept].T
            out[i, :, kept:] = fill
        return out


def extract_chunks(
    signals: list[np.ndarray], owner: np.ndarray, starts: np.ndarray, length: int
) -> np.ndarray:
    """Chunks ``(n, channels, length)`` float32 of ``signals``, zero-padded past a record's end.

    Only the records named in ``owner`` are touched, so calling it batch by batch over a large
    set is cheap. For repeated gathers over the same records, keep a `PackedSignals`.
    """
    owner = np.asarray(owner, dtype=np.int64)
    if len(owner) == 0:
        channels = signals[0].shape[0] if signals else 0
        return np.zeros((0, channels, length), dtype=np.float32)
    used, local_owner = np.unique(owner, return_inverse=True)
    packed = PackedSignals.pack([signals[i] for i in used])
    return packed.chunks(local_owner, starts, length)
