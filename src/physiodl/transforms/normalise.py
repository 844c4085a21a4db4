"""Normalisation to zero mean and unit variance, fitted on training records only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from physiodl.errors import CheckpointError, DataError, RecipeError
from physiodl.signalset import SignalSet
from physiodl.transforms.filters import MAX_BATCH_ELEMENTS

#: Recipe names for the kinds; ``per_frequency`` is ``per_channel`` on a spectrogram.
KINDS = {"per_channel": "per_channel", "per_frequency": "per_channel", "global": "global"}


@dataclass(frozen=True)
class Normaliser:
    """Per-channel ``mean`` and ``std`` (float32, one value per channel) and the channels fitted.

    For ``kind="global"`` every channel holds the same statistics.
    """

    mean: np.ndarray
    std: np.ndarray
    kind: str
    channels: tuple[str, ...]

    def apply_array(self, x: np.ndarray) -> np.ndarray:
        """Normalise an array ``(..., channels, time)``; float32."""
        out = np.subtract(x, self.mean[:, None], dtype=np.float32)
        out /= self.std[:, None]
        return out

    def apply(self, ss: SignalSet) -> SignalSet:
        """Every record normalised; the channels must be those the statistics were fitted on."""
        if ss.channels != self.channels:
            pairs = zip(ss.channels, self.channels, strict=False)
            mismatch = next(
                (f"{a!r} vs {b!r}" for a, b in pairs if a != b),
                f"{len(ss.channels)} vs {len(self.channels)} channels",
            )
            raise DataError(
                f"normaliser fitted on other channels than the data has ({mismatch}); "
                "prepare the data exactly as for training (sampling rate, spectrogram settings)"
            )
        return ss.with_signals([self.apply_array(x) for x in ss.signals])

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings, so a checkpoint loads with ``weights_only=True``."""
        return {
            "kind": self.kind,
            "channels": list(self.channels),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normaliser:
        """Inverse of `to_dict`; a `CheckpointError` names what is missing or inconsistent."""
        missing = sorted({"kind", "channels", "mean", "std"} - set(data))
        if missing:
            raise CheckpointError(f"normaliser statistics lack {', '.join(missing)}")
        mean = np.asarray(data["mean"], dtype=np.float32)
        std = np.asarray(data["std"], dtype=np.float32)
        channels = tuple(str(c) for c in data["channels"])
        if mean.shape != (len(channels),) or std.shape != (len(channels),):
            raise CheckpointError(
                f"normaliser statistics have shapes {mean.shape} and {std.shape} for "
                f"{len(channels)} channels"
            )
        return cls(mean=mean, std=std, kind=str(data["kind"]), channels=channels)


def fit_normaliser(ss: SignalSet, kind: str = "per_channel") -> Normaliser:
    """Mean and standard deviation over all real time steps of the records in ``ss``.

    Pass the training records only. Statistics are exact: the count, mean and sum of squared
    deviations (float64) of batches of whole records are combined, so nothing is padded.
    A channel with zero variance gets ``std = 1``.

    Args:
        ss: the (training) records.
        kind: ``"per_channel"`` (alias ``"per_frequency"``) or ``"global"`` (one mean and std over
            all channels).
    """
    if kind not in KINDS:
        raise RecipeError(f"normalise={kind!r} is not a kind; choose one of {', '.join(KINDS)}")
    kind = KINDS[kind]
    rows = 1 if kind == "global" else ss.n_channels
    blocks = [x.reshape(rows, -1) for x in ss.signals if x.shape[1] > 0]
    if not blocks:
        raise DataError("cannot fit a normaliser: no record has any time steps")
    batch_counts, batch_means, batch_squares = [], [], []
    for batch in _batches(blocks):
        joined = np.concatenate(batch, axis=1)
        batch_mean = joined.mean(axis=1, dtype=np.float64)
        deviation = joined - batch_mean[:, None]
        batch_counts.append(joined.shape[1])
        batch_means.append(batch_mean)
        batch_squares.append(np.einsum("ct,ct->c", deviation, deviation))
    counts = np.array(batch_counts, dtype=np.float64)[:, None]
    means, squares = np.stack(batch_means), np.stack(batch_squares)
    total = counts.sum()
    mean = (counts * means).sum(axis=0) / total
    variance = (squares.sum(axis=0) + (counts * (means - mean) ** 2).sum(axis=0)) / total
    if not (np.isfinite(mean).all() and np.isfinite(variance).all()):
        bad = [i for i, b in zip(ss.ids, ss.signals, strict=True) if not np.isfinite(b).all()]
        where = f"record {bad[0]!r} contains NaN or infinite values" if bad else "overflow"
        raise DataError(f"cannot fit a normaliser: {where}")
    std = np.broadcast_to(np.sqrt(variance), ss.n_channels).astype(np.float32)
    std[std == 0] = 1.0
    return Normaliser(
        mean=np.broadcast_to(mean, ss.n_channels).astype(np.float32),
        std=std,
        kind=kind,
        channels=ss.channels,
    )


def _batches(blocks: list[np.ndarray]) -> Iterator[list[np.ndarray]]:
    """Consecutive blocks of about `MAX_BATCH_ELEMENTS` elements (one block at least)."""
    batch: list[np.ndarray] = []
    size = 0
    for block in blocks:
        batch.append(block)
        size += block.size
        if size >= MAX_BATCH_ELEMENTS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
