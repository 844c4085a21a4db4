"""What the heart-rate loaders share: checks of one PPG recording and the `SignalSet` they build.

A recording is checked the same way in every heart-rate dataset: every requested channel
present, no NaN or infinite sample, no PPG channel flat over the whole recording, and a
reference trace with exactly one value per complete window. Windows whose PPG is flat
(a lost contact for a few seconds) keep their place but get a NaN target: they are not
trained on nor scored, and their count is reported in ``meta["excluded"]``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physiodl.errors import DataError, RecipeError, RecordError
from physiodl.signalset import SignalSet
from physiodl.window_targets import META_KEY, TargetWindows

ON_ERROR = ("raise", "skip")
FLAT_WINDOWS = "windows with flat PPG (target set to NaN)"
log = logging.getLogger(__name__)


def check_options(
    dataset: str,
    channels: Sequence[str],
    available: Sequence[str],
    on_error: str,
    max_records: int | None,
) -> tuple[str, ...]:
    """The channels as a tuple, after checking every option; a `RecipeError` otherwise."""
    channels = (channels,) if isinstance(channels, str) else tuple(channels)
    unknown = [c for c in channels if c not in available]
    if not channels or unknown or len(set(channels)) != len(channels):
        raise RecipeError(
            f"{dataset}: channels {list(channels)} must be distinct names from "
            f"{', '.join(available)}"
        )
    if not any(c.startswith(("PPG", "BVP")) for c in channels):
        raise RecipeError(f"{dataset}: channels {list(channels)} must include a PPG channel")
    if on_error not in ON_ERROR:
        raise RecipeError(f"{dataset}: on_error {on_error!r} must be one of {', '.join(ON_ERROR)}")
    if max_records is not None and (not isinstance(max_records, int) or max_records < 1):
        raise RecipeError(f"{dataset}: max_records must be a positive integer, got {max_records!r}")
    return channels


def check_recording(
    where: str,
    values: np.ndarray,
    channels: Sequence[str],
    reference: np.ndarray,
    fs: float,
    windows: TargetWindows,
) -> np.ndarray:
    """Check one recording ``(channels, time)`` and its reference; the reference as float32.

    Raises a `RecordError` (reason in brackets) for NaN or infinite samples (``NaN
    samples``), a PPG channel that never changes (``flat PPG``), a reference that is not
    a finite, positive 1-D trace (``bad reference``), or one with more or fewer values than
    the recording has complete windows (``reference longer than signal`` / ``reference
    shorter than signal``).
    """
    bad = ~np.isfinite(values)
    if bad.any():
        channel = channels[int(np.flatnonzero(bad.any(axis=1))[0])]
        raise RecordError(
            "NaN samples",
            f"{where}: {int(bad.sum())} samples are NaN or infinite (first in {channel}); "
            "repair the recording or leave it out",
        )
    for name, row in zip(channels, values, strict=True):
        if is_ppg(name) and np.ptp(row) == 0:
            raise RecordError(
                "flat PPG",
                f"{where}: channel {name} is constant ({row[0]:g}) over the whole recording: "
                "no pulse to estimate heart rate from",
            )
    reference = np.asarray(reference, dtype=np.float64).squeeze()
    if reference.ndim != 1 or not np.isfinite(reference).all() or (reference <= 0).any():
        raise RecordError(
            "bad reference",
            f"{where}: the reference must be a 1-D trace of positive, finite values "
            f"(got shape {np.shape(reference)})",
        )
    expected = windows.count(values.shape[1], fs)
    if len(reference) != expected:
        reason = (
            "reference longer than signal"
            if len(reference) > expected
            else ("reference shorter than signal")
        )
        raise RecordError(
            reason,
            f"{where}: the reference has {len(reference)} values, but {values.shape[1]} samples "
            f"at {fs:g} Hz hold {expected} complete {windows.length_s:g} s windows every "
            f"{windows.shift_s:g} s; the files do not belong together or the sampling rate is "
            f"not {fs:g} Hz",
        )
    return reference.astype(np.float32)


def flat_window_mask(
    values: np.ndarray, channels: Sequence[str], n_windows: int, fs: float, windows: TargetWindows
) -> np.ndarray:
    """True for each reference window in which every PPG channel is constant."""
    ppg = values[[i for i, c in enumerate(channels) if is_ppg(c)]]
    length, stride = windows.length_s * fs, windows.shift_s * fs
    flat = np.zeros(n_windows, dtype=bool)
    for k in range(n_windows):
        start = round(k * stride)
        segment = ppg[:, start : start + round(length)]
        flat[k] = bool((np.ptp(segment, axis=1) == 0).all())
    return flat


def is_ppg(channel: str) -> bool:
    return channel.startswith(("PPG", "BVP"))


@dataclass
class RecordingCollector:
    """Accumulates checked recordings, exclusions and skipped records into a `SignalSet`."""

    dataset: str
    channels: tuple[str, ...]
    fs: float
    windows: TargetWindows
    on_error: str
    signals: list[np.ndarray] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    flat_windows: dict[str, int] = field(default_factory=dict)
    digest: Any = field(default_factory=hashlib.sha256)

    def fault(self, record: str, error: RecordError) -> None:
        """Raise ``error`` (``on_error='raise'``) or list ``record`` under its reason."""
        if self.on_error == "raise":
            raise RecordError(
                error.reason, f"{error} (or pass on_error='skip' to skip such records)"
            ) from None
        self.skipped.setdefault(error.reason, []).append(record)

    def add(self, record: str, group: str, values: np.ndarray, reference: np.ndarray) -> None:
        """A recording already reduced to ``channels``, checked against its reference."""
        target = check_recording(
            f"{self.dataset} record {record!r}",
            values,
            self.channels,
            reference,
            self.fs,
            self.windows,
        )
        flat = flat_window_mask(values, self.channels, len(target), self.fs, self.windows)
        if flat.any():
            target[flat] = np.nan
            self.flat_windows[record] = int(flat.sum())
        self.signals.append(values.astype(np.float32))
        self.ids.append(record)
        self.groups.append(group)
        self.targets.append(target)

    def hash_file(self, path: Path) -> None:
        self.digest.update(path.name.encode() + b"\x00" + path.read_bytes())

    def signalset(self, source: Path) -> SignalSet:
        if not self.signals:
            skipped = {reason: len(ids) for reason, ids in self.skipped.items()}
            raise DataError(f"{source}: no {self.dataset} recordings to load (skipped: {skipped})")
        if self.skipped:
            counts = ", ".join(f"{reason}: {len(ids)}" for reason, ids in self.skipped.items())
            log.warning("%s: skipped faulty recordings (%s)", source, counts)
        excluded: dict[str, object] = {}
        if self.flat_windows:
            excluded[FLAT_WINDOWS] = self.flat_windows
        meta = {
            "dataset": self.dataset,
            "source": str(source.resolve()),
            "sha256": self.digest.hexdigest(),
            "excluded": excluded,
            "skipped": self.skipped,
            META_KEY: self.windows.to_dict(),
        }
        return SignalSet(
            signals=self.signals,
            fs=self.fs,
            channels=self.channels,
            ids=tuple(self.ids),
            targets=self.targets,
            groups=np.array(self.groups),
            meta=meta,
        )
