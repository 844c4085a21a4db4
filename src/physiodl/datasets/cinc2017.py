"""PhysioNet/CinC Challenge 2017: single-lead AliveCor ECGs, 300 Hz, labels N / A / O / ~.

Clifford GD et al. AF classification from a short single lead ECG recording: the
PhysioNet/Computing in Cardiology Challenge 2017. Computing in Cardiology 2017;44.
https://doi.org/10.22489/CinC.2017.065-469
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from physiodl.errors import DataError, RecipeError
from physiodl.io.cinc_format import CincSource, RecordError
from physiodl.signalset import SignalSet

LABELS = {
    "N": "normal sinus rhythm",
    "A": "atrial fibrillation",
    "O": "other rhythm",
    "~": "too noisy to classify",
}
ON_ERROR = ("raise", "skip")
log = logging.getLogger(__name__)


def load(
    path: str | Path,
    classes: Sequence[str] = ("N", "A"),
    *,
    labels_file: str = "REFERENCE.csv",
    min_length: int | None = None,
    max_records: int | None = None,
    on_error: str = "raise",
    progress: bool = True,
) -> SignalSet:
    """Load the CinC 2017 records of a folder or zip (read in place, never extracted).

    Args:
        path: ``training2017.zip``, the unzipped ``training2017/`` folder, or a folder
            holding either (see `physiodl.io.cinc_format.LAYOUT`).
        classes: labels to keep, in target-code order; records with other labels are
            excluded by design and counted in ``meta["excluded"]``.
        labels_file: labels file beside the records (e.g. ``REFERENCE-original.csv``).
        min_length: exclude recordings shorter than this many samples (the seed uses 4000);
            their ids go to ``meta["excluded"]["shorter than min_length"]``.
        max_records: stop after this many records are kept (in ``RECORDS`` order).
        on_error: ``"raise"``: a faulty record (corrupt or missing file, missing or
            unknown label, NaN samples, empty recording) raises a `DataError` naming it;
            ``"skip"``: it is left out and listed in ``meta["skipped"][reason]``.
        progress: show a progress bar (only when stderr is a terminal).

    Returns:
        A `SignalSet`: float32 ``(1, T)`` signals in mV, ``fs`` 300, channels ``("ECG",)``,
        ids and groups = record names, int64 targets indexing ``classes``; ``meta`` holds
        ``source``, ``sha256`` (of the zip, or of the folder's files), ``labels_file``,
        ``excluded`` and ``skipped``.
    """
    classes = _check_options(classes, on_error, min_length, max_records)
    signals: list[np.ndarray] = []
    ids: list[str] = []
    targets: list[int] = []
    excluded: Counter[str] = Counter()
    too_short: list[str] = []
    skipped: dict[str, list[str]] = {}
    fs: float | None = None
    with CincSource(path) as source:
        labels = source.labels(labels_file)
        names = source.record_names()
        show = progress and sys.stderr.isatty()
        for name in tqdm(names, desc=f"reading {source.path.name}", unit="rec", disable=not show):
            if max_records is not None and len(ids) >= max_records:
                break
            try:
                label = _label(name, labels, source.describe(labels_file))
                if label not in classes:
                    excluded[f"label {label} not in classes"] += 1
                    continue
                signal, header = source.record(name)
                _check_shape(name, signal, header.fs, fs, source.describe(name))
            except RecordError as fault:
                if on_error == "raise":
                    raise RecordError(
                        fault.reason, f"{fault} (or pass on_error='skip' to skip such records)"
                    ) from None
                skipped.setdefault(fault.reason, []).append(name)
                continue
            fs = header.fs
            if min_length is not None and signal.shape[1] < min_length:
                too_short.append(name)
                continue
            signals.append(signal)
            ids.append(name)
            targets.append(classes.index(label))
        if not signals:
            raise DataError(
                f"{source.path}: no records of classes {', '.join(classes)} to load "
                f"(excluded: {dict(excluded)}, shorter than min_length: {len(too_short)}, "
                f"skipped: { {k: len(v) for k, v in skipped.items()} })"
            )
        if skipped:
            counts = ", ".join(f"{reason}: {len(records)}" for reason, records in skipped.items())
            log.warning("%s: skipped faulty records (%s)", source.path, counts)
        meta = {
            "dataset": "cinc2017",
            "source": str(source.path.resolve()),
            "sha256": source.sha256(),
            "labels_file": labels_file,
            "excluded": {**dict(sorted(excluded.items())), "shorter than min_length": too_short},
            "skipped": skipped,
        }
    assert fs is not None
    return SignalSet(
        signals=signals,
        fs=fs,
        channels=("ECG",),
        ids=tuple(ids),
        targets=np.array(targets, dtype=np.int64),
        classes=classes,
        groups=np.array(ids),
        meta=meta,
    )


def _check_options(
    classes: Sequence[str], on_error: str, min_length: int | None, max_records: int | None
) -> tuple[str, ...]:
    """The classes as a tuple, after checking every option; a `RecipeError` otherwise."""
    if isinstance(classes, str):
        classes = (classes,)
    classes = tuple(classes)
    unknown = [c for c in classes if c not in LABELS]
    if not classes or unknown or len(set(classes)) != len(classes):
        raise RecipeError(
            f"cinc2017: classes {list(classes)} must be distinct labels from "
            f"{', '.join(f'{k} ({v})' for k, v in LABELS.items())}"
        )
    if on_error not in ON_ERROR:
        raise RecipeError(f"cinc2017: on_error {on_error!r} must be one of {', '.join(ON_ERROR)}")
    for option, value in (("min_length", min_length), ("max_records", max_records)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise RecipeError(f"cinc2017: {option} must be a positive integer, got {value!r}")
    return classes


def _label(name: str, labels: dict[str, str], labels_source: str) -> str:
    if name not in labels:
        raise RecordError(
            "missing label",
            f"record {name!r} has no line in {labels_source}; add 'name,label' or remove "
            "the record from RECORDS",
        )
    label = labels[name]
    if label not in LABELS:
        raise RecordError(
            "unknown label",
            f"record {name!r} has label {label!r} in {labels_source}; labels are "
            f"{', '.join(LABELS)}",
        )
    return label


def _check_shape(
    name: str, signal: np.ndarray, record_fs: float, fs: float | None, where: str
) -> None:
    """One signal per record, and the same sampling rate as the records before."""
    if signal.shape[0] != 1:
        raise RecordError(
            "not single-lead",
            f"{where}: {signal.shape[0]} signals, CinC 2017 records have one ECG lead",
        )
    if fs is not None and record_fs != fs:
        raise RecordError(
            "different sampling rate",
            f"{where}: sampled at {record_fs} Hz, the records before at {fs} Hz; "
            f"resample or remove record {name!r}",
        )
