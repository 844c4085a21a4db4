"""`SignalSet`: the in-memory dataset value passed between pipeline stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from physiodl.errors import DataError


@dataclass(frozen=True)
class SignalSet:
    """Recordings of one modality, each a ``(channels, time)`` float32 array.

    Attributes:
        signals: one ``(channels, time)`` float32 array per recording; lengths may differ.
        fs: sampling rate in Hz (for a spectrogram: frames per second).
        channels: one name per channel.
        ids: one record name per recording.
        targets: class codes ``(n,)`` int64 with ``classes`` names; floats ``(n,)``; or
            one array per recording for per-sample targets (detection, HR traces).
        classes: class names for classification targets, else ``None``.
        groups: subject / patient id per recording, used by grouped splits.
        meta: free-form provenance (source file, skipped records, ...); never used by models.
    """

    signals: list[np.ndarray]
    fs: float
    channels: tuple[str, ...]
    ids: tuple[str, ...]
    targets: np.ndarray | list[np.ndarray] | None = None
    classes: tuple[str, ...] | None = None
    groups: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.signals)
        if len(self.ids) != n:
            raise DataError(f"SignalSet: {len(self.ids)} ids for {n} signals")
        for i, x in enumerate(self.signals):
            if x.ndim != 2 or x.shape[0] != len(self.channels):
                raise DataError(
                    f"SignalSet: record {self.ids[i]!r} has shape {x.shape}, "
                    f"expected ({len(self.channels)}, time)"
                )
        if self.targets is not None and len(self.targets) != n:
            raise DataError(f"SignalSet: {len(self.targets)} targets for {n} signals")
        if self.groups is not None and len(self.groups) != n:
            raise DataError(f"SignalSet: {len(self.groups)} groups for {n} signals")
        if self.fs <= 0:
            raise DataError(f"SignalSet: sampling rate must be positive, got {self.fs}")

    def __len__(self) -> int:
        return len(self.signals)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def lengths(self) -> np.ndarray:
        """Number of time steps per recording, int64."""
        return np.array([x.shape[1] for x in self.signals], dtype=np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> SignalSet:
        """The recordings at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        targets: np.ndarray | list[np.ndarray] | None
        if self.targets is None:
            targets = None
        elif isinstance(self.targets, np.ndarray):
            targets = self.targets[idx]
        else:
            targets = [self.targets[i] for i in idx]
        return replace(
            self,
            signals=[self.signals[i] for i in idx],
            ids=tuple(self.ids[i] for i in idx),
            targets=targets,
            groups=None if self.groups is None else self.groups[idx],
        )

    def with_signals(self, signals: list[np.ndarray], **changes: Any) -> SignalSet:
        """A copy with new signals (and optionally new ``fs``, ``channels``, ...)."""
        return replace(self, signals=signals, **changes)

    def padded(self, length: int | None = None) -> np.ndarray:
        """All signals zero-padded (or cut) to ``length`` as ``(n, channels, length)``."""
        length = int(self.lengths.max()) if length is None else length
        out = np.zeros((len(self), self.n_channels, length), dtype=np.float32)
        for i, x in enumerate(self.signals):
            n = min(length, x.shape[1])
            out[i, :, :n] = x[:, :n]
        return out

    def class_counts(self) -> dict[str, int]:
        """Recordings per class name (classification targets only)."""
        if self.classes is None or not isinstance(self.targets, np.ndarray):
            raise DataError("class_counts needs class-coded targets")
        counts = np.bincount(self.targets, minlength=len(self.classes))
        return {c: int(k) for c, k in zip(self.classes, counts, strict=True)}
