"""Single recordings for ``predict``: WFDB, CinC ``.mat``, ``.csv`` and ``.npy``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from physiodl.errors import DataError
from physiodl.io.cinc_format import decode_record, mat_file_name, parse_header

FORMATS = (
    "WFDB (.hea), CinC .mat (with its .hea, or a bare .mat with variable 'val'), IEEE SPC 2015 "
    ".mat (variable 'sig'), .csv, .npy"
)


def read_recording(
    path: str | Path,
    *,
    fs: float | None = None,
    channels: Sequence[str] | None = None,
) -> tuple[np.ndarray, float, tuple[str, ...]]:
    """Read one recording as ``(C, T)`` float32 in physical units, its rate and channel names.

    Formats, chosen by the suffix:

    - WFDB: the ``.hea`` file or the record path without suffix (read with ``wfdb``).
    - ``.mat`` with a ``.hea`` beside it: a CinC record (MATLAB v4, validated).
    - ``.mat`` alone: variable ``val`` ``(T,)`` or ``(C, T)``; integer values are taken as
      CinC ADC units (1000 per mV), floats as physical units; ``fs`` is required. A variable
      ``sig`` of 5 or 6 rows is an IEEE SPC 2015 recording (``[ECG,] PPG1, PPG2, ACCx, ACCy,
      ACCz`` at 125 Hz).
    - ``.csv``: one column per channel with a header row of channel names (without one the
      channels are ``ch0``, ``ch1``, ...); ``fs`` is required.
    - ``.npy``: ``(T,)`` or ``(C, T)``; channels ``ch0``, ...; ``fs`` is required.

    Args:
        path: the file.
        fs: sampling rate in Hz for formats that do not store one; for WFDB it must agree.
        channels: names of the channels to keep, in this order (default: all).
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    header = path.with_suffix(".hea")
    if not path.is_file() and not (suffix in ("", ".hea") and header.is_file()):
        raise DataError(f"{path} not found; supported formats: {FORMATS}")
    file_fs: float | None = None
    if suffix in ("", ".hea", ".dat", ".mat") and header.is_file():
        if path.with_suffix(".mat").is_file():
            values, file_fs, names = _read_cinc(path.with_suffix(""))
        else:
            values, file_fs, names = _read_wfdb(path.with_suffix(""))
    elif suffix == ".mat":
        values, names, file_fs = _read_bare_mat(path)
    elif suffix in (".csv", ".npy"):
        values, names = (_read_csv if suffix == ".csv" else _read_npy)(path)
    else:
        raise DataError(f"{path}: unknown recording format {suffix!r}; supported: {FORMATS}")

    if file_fs is None:
        if fs is None:
            raise DataError(f"{path}: the file does not store its sampling rate; pass --fs (in Hz)")
        file_fs = float(fs)
    elif fs is not None and float(fs) != file_fs:
        raise DataError(f"{path}: the header says {file_fs} Hz but --fs {fs} was given; drop --fs")
    if file_fs <= 0:
        raise DataError(f"{path}: sampling rate must be positive, got {file_fs}")
    values, names = _pick(values, names, channels, path)
    if values.shape[1] == 0:
        raise DataError(f"{path}: the recording has no samples")
    n_bad = int((~np.isfinite(values)).sum())
    if n_bad:
        raise DataError(
            f"{path}: {n_bad} of {values.size} samples are NaN or infinite; repair the file"
        )
    return values, file_fs, names


def _read_cinc(record: Path) -> tuple[np.ndarray, float, tuple[str, ...]]:
    hea = record.with_suffix(".hea")
    header = parse_header(hea.read_text("latin-1"), str(hea))
    mat = record.parent / mat_file_name(header, str(hea))
    if not mat.is_file():
        raise DataError(f"{mat} not found beside {hea}; put the record's .mat file there")
    values = decode_record(header, mat.read_bytes(), str(record))
    names = tuple(s.description or f"ch{i}" for i, s in enumerate(header.signals))
    return values, header.fs, names


def _read_wfdb(record: Path) -> tuple[np.ndarray, float, tuple[str, ...]]:
    import wfdb

    try:
        rec = wfdb.rdrecord(str(record))
    except Exception as err:  # wfdb raises many types for unreadable records
        raise DataError(f"cannot read WFDB record {record} ({err})") from None
    names = tuple(rec.sig_name or (f"ch{i}" for i in range(rec.n_sig)))
    return np.asarray(rec.p_signal, dtype=np.float32).T.copy(), float(rec.fs), names


def _read_bare_mat(path: Path) -> tuple[np.ndarray, tuple[str, ...], float | None]:
    """A ``val`` signal (no stored rate), or an IEEE SPC 2015 ``sig`` matrix (125 Hz)."""
    from scipy.io import loadmat

    try:
        variables = loadmat(str(path))
    except Exception as err:  # scipy raises ValueError, TypeError, ... for bad files
        raise DataError(f"{path}: not a readable MATLAB file ({err})") from None
    if "val" not in variables and "sig" in variables:
        from physiodl.datasets import ieee_spc2015

        values, names = ieee_spc2015.read_signal_file(path)
        return values, names, ieee_spc2015.FS
    if "val" not in variables:
        found = ", ".join(k for k in variables if not k.startswith("__")) or "none"
        raise DataError(f"{path}: no variable 'val' (found: {found}); save the signal as 'val'")
    val = np.asarray(variables["val"])
    values = val.astype(np.float32)
    if val.dtype.kind in "iu":
        values /= 1000.0
    return (*_as_channels_first(values, path), None)


def _read_npy(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DataError(f"{path}: not a numeric .npy array ({err})") from None
    if array.dtype.kind not in "iuf":
        raise DataError(f"{path}: array of dtype {array.dtype}, expected numbers")
    return _as_channels_first(array.astype(np.float32), path)


def _read_csv(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    text = path.read_bytes().decode("utf-8-sig", "replace")
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise DataError(f"{path}: the file is empty")
    try:
        [float(v) for v in rows[0]]
        names, first = tuple(f"ch{i}" for i in range(len(rows[0]))), 0
    except ValueError:
        names, first = tuple(v.strip() for v in rows[0]), 1
    for line_no, row in enumerate(rows[first:], start=first + 1):
        if len(row) != len(names):
            raise DataError(f"{path} line {line_no}: {len(row)} values, expected {len(names)}")
    try:
        table = np.array(rows[first:], dtype=np.float32).reshape(len(rows) - first, len(names))
    except ValueError as err:
        raise DataError(f"{path}: every value after the header must be a number ({err})") from None
    return table.T.copy(), names


def _as_channels_first(values: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(T,)`` -> ``(1, T)``; ``(C, T)`` kept; anything else is a `DataError`."""
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2 or values.shape[0] > values.shape[1] > 0:
        raise DataError(
            f"{path}: array of shape {values.shape}; expected (time,) or (channels, time) "
            "with fewer channels than samples"
        )
    return values, tuple(f"ch{i}" for i in range(values.shape[0]))


def _pick(
    values: np.ndarray, names: tuple[str, ...], channels: Sequence[str] | None, path: Path
) -> tuple[np.ndarray, tuple[str, ...]]:
    if channels is None:
        return values, names
    missing = [c for c in channels if c not in names]
    if missing:
        raise DataError(
            f"{path}: no channel {', '.join(map(repr, missing))}; it has {', '.join(names)}"
        )
    index = [names.index(c) for c in channels]
    return values[index], tuple(channels)
