"""Peak-finding events in the seed's ``.npz`` form: ``X`` ``(N, C, T)`` and ``y`` ``(N, T)``.

``y`` is a per-bin target with bumps at the true peaks and NaN where it is unknown (masked in
the loss and the metrics). Several files make one dataset. Faulty events (NaN or inf in ``X``,
a target without one known bin) raise a `DataError` naming the file and event, or with
``on_error = "skip"`` are left out and listed in ``meta["skipped"]``. Events whose target has
no positive bin (no true peak) are kept and listed in ``meta["empty_events"]`` (they measure
false positives), or with ``exclude_empty = true`` left out and counted in ``meta["excluded"]``.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physiodl.errors import DataError, RecipeError
from physiodl.signalset import SignalSet

log = logging.getLogger(__name__)

LAYOUT = """\
<data dir>/pv-finder/            a folder of .npz files (or give one .npz file)
  <any name>.npz                 arrays X: (events, channels, bins) float, no NaN
                                 and y: (events, bins) float target, NaN = masked bin
All files need the same channels and bins. Make such files with
`physiodl data synth peaks --events N --seed S --out DIR`."""


def load(
    path: str | Path,
    *,
    on_error: str = "raise",
    exclude_empty: bool = False,
    max_events: int | None = None,
) -> SignalSet:
    """Load the events of one ``.npz`` file or of every ``.npz`` file in a folder (sorted).

    Args:
        path: a ``.npz`` file or a folder of them.
        on_error: ``"raise"`` or ``"skip"`` faulty events (see the module docstring).
        exclude_empty: leave out events without a true peak instead of keeping them.
        max_events: stop after this many events are kept.

    Returns:
        A `SignalSet` of float32 ``(C, T)`` events with per-bin float32 targets, ``fs`` 1 (one
        sample per bin), ids ``<file stem>:<event index>``.
    """
    if on_error not in ("raise", "skip"):
        raise RecipeError(f"peaks-npz: on_error must be 'raise' or 'skip', got {on_error!r}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; expected layout:\n{LAYOUT}")
    files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path} holds no .npz files; expected layout:\n{LAYOUT}")
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    ids: list[str] = []
    skipped: dict[str, list[str]] = {}
    empty: list[str] = []
    digest = hashlib.sha256()
    shape: tuple[int, int] | None = None
    for file in files:
        X, y = read_events(file)
        if shape is not None and X.shape[1:] != shape:
            raise DataError(
                f"{file}: events of {X.shape[1]} channels x {X.shape[2]} bins, but earlier "
                f"files have {shape[0]} x {shape[1]}; one dataset needs one shape"
            )
        shape = (X.shape[1], X.shape[2])
        digest.update(file.read_bytes())
        event_ids = [f"{file.stem}:{i}" for i in range(len(X))]
        keep = _check_events(file, X, y, event_ids, on_error, skipped)
        no_peak = keep & ~(np.nan_to_num(y, nan=0.0) > 0).any(axis=1)
        empty += [event_ids[i] for i in np.flatnonzero(no_peak)]
        if exclude_empty:
            keep &= ~no_peak
        chosen = np.flatnonzero(keep)
        if max_events is not None:
            chosen = chosen[: max_events - len(ids)]
        xs.append(X[chosen])
        ys.append(y[chosen])
        ids += [event_ids[i] for i in chosen]
        if max_events is not None and len(ids) >= max_events:
            break
    if not ids:
        raise DataError(f"{path}: no events left to load (skipped: {_counts(skipped)})")
    if skipped:
        log.warning("%s: skipped faulty events (%s)", path, _counts(skipped))
    excluded = {"no true peak": len(empty)} if exclude_empty else {}
    meta = {
        "dataset": "peaks-npz",
        "source": str(path.resolve()),
        "sha256": digest.hexdigest(),
        "files": [f.name for f in files],
        "excluded": excluded,
        "skipped": skipped,
        "empty_events": [] if exclude_empty else empty,
    }
    return events_signalset(np.concatenate(xs), np.concatenate(ys), ids, meta=meta)


def read_events(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and ``y`` of one file as float32, their shapes checked."""
    try:
        with np.load(file, allow_pickle=False) as npz:
            names = list(npz.files)
            missing = [k for k in ("X", "y") if k not in names]
            if missing:
                raise DataError(
                    f"{file}: no array {' or '.join(map(repr, missing))} (it holds "
                    f"{', '.join(names) or 'nothing'}); the seed's form is X (events, channels, "
                    "bins) and y (events, bins)"
                )
            X, y = npz["X"], npz["y"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{file} is not a readable .npz file ({err})") from None
    if X.ndim != 3 or y.ndim != 2:
        raise DataError(
            f"{file}: X has shape {X.shape} and y {y.shape}; expected X (events, channels, bins) "
            "and y (events, bins)"
        )
    if X.shape[0] != y.shape[0] or X.shape[2] != y.shape[1]:
        raise DataError(
            f"{file}: mismatched lengths: X {X.shape} and y {y.shape} need the same number of "
            "events and of bins"
        )
    if not (np.issubdtype(X.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        raise DataError(f"{file}: X and y must be numeric, got {X.dtype} and {y.dtype}")
    return X.astype(np.float32, copy=False), y.astype(np.float32, copy=False)


def read_event_inputs(file: Path, n_channels: int) -> np.ndarray:
    """``X`` ``(events, channels, bins)`` of a file for prediction (``y`` is not needed)."""
    try:
        with np.load(file, allow_pickle=False) as npz:
            if "X" not in npz.files:
                raise DataError(
                    f"{file}: no array 'X' (it holds {', '.join(npz.files) or 'nothing'}); "
                    "predict needs X (events, channels, bins)"
                )
            X = npz["X"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{file} is not a readable .npz file ({err})") from None
    if X.ndim != 3 or X.shape[1] != n_channels or not np.issubdtype(X.dtype, np.number):
        raise DataError(
            f"{file}: X has shape {X.shape} ({X.dtype}); the model needs numeric "
            f"(events, {n_channels}, bins)"
        )
    bad = np.flatnonzero(~np.isfinite(X).all(axis=(1, 2)))
    if len(bad):
        raise DataError(f"{file}: events {bad[:10].tolist()} have NaN or inf in X; fix them")
    return X.astype(np.float32, copy=False)


def save_events(path: str | Path, X: np.ndarray, y: np.ndarray) -> Path:
    """Write ``X`` and ``y`` (float32) as one ``.npz`` file in the seed's form, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(tmp, X=np.asarray(X, np.float32), y=np.asarray(y, np.float32))
    tmp.replace(path)
    return path


def events_signalset(
    X: np.ndarray,
    y: np.ndarray | None,
    ids: Sequence[str],
    *,
    meta: dict[str, Any],
    channels: Sequence[str] | None = None,
) -> SignalSet:
    """A `SignalSet` viewing ``X`` ``(N, C, T)`` and ``y`` ``(N, T)`` (or no targets) event by
    event, without copies."""
    from physiodl.datasets.synthetic_peaks import CHANNELS

    if channels is None:
        channels = CHANNELS if X.shape[1] == len(CHANNELS) else [f"X{k}" for k in range(X.shape[1])]
    return SignalSet(
        signals=list(X),
        fs=1.0,
        channels=tuple(channels),
        ids=tuple(ids),
        targets=None if y is None else list(y),
        meta={"excluded": {}, "skipped": {}, "empty_events": [], **meta},
    )


def _check_events(
    file: Path,
    X: np.ndarray,
    y: np.ndarray,
    ids: list[str],
    on_error: str,
    skipped: dict[str, list[str]],
) -> np.ndarray:
    """A keep-mask of the events; faulty ones raise or are listed in ``skipped``."""
    faults = {
        "NaN or inf in X": ~np.isfinite(X).all(axis=(1, 2)),
        "no known target bin": np.isnan(y).all(axis=1),
        "inf in y": np.isinf(y).any(axis=1),
    }
    keep = np.ones(len(X), dtype=bool)
    for reason, bad in faults.items():
        bad &= keep
        if not bad.any():
            continue
        if on_error == "raise":
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{file}: event {first} ({ids[first]}) has {reason} ({int(bad.sum())} such "
                "events); fix the file or pass on_error='skip' (data.options) to leave them out"
            )
        skipped.setdefault(reason, []).extend(ids[i] for i in np.flatnonzero(bad))
        keep &= ~bad
    return keep


def _counts(skipped: dict[str, list[str]]) -> str:
    return ", ".join(f"{reason}: {len(ids)}" for reason, ids in skipped.items()) or "none"
