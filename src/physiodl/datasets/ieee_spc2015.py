"""IEEE Signal Processing Cup 2015: wrist PPG and accelerometer during exercise, 125 Hz.

Z. Zhang, Z. Pi, B. Liu. TROIKA: A general framework for heart rate monitoring using
wrist-type photoplethysmographic signals during intensive physical exercise. IEEE
Transactions on Biomedical Engineering 62(2):522-531, 2015. doi:10.1109/TBME.2014.2359372
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from physiodl.datasets.heart_rate import RecordingCollector, check_options
from physiodl.errors import DataError, RecordError
from physiodl.signalset import SignalSet
from physiodl.window_targets import TargetWindows

FS = 125.0
WINDOWS = TargetWindows(length_s=8.0, shift_s=2.0)
SIGNALS = ("PPG1", "PPG2", "ACCx", "ACCy", "ACCz")
ROWS_WITH_ECG = ("ECG", *SIGNALS)
DEFAULT_CHANNELS = SIGNALS

LAYOUT = """\
ieee-spc2015/                                  the competition's folders, as distributed
  Training_data/DATA_<nn>_TYPE0<t>.mat          sig, 6 x N: ECG, PPG1, PPG2, ACCx, ACCy, ACCz
  Training_data/DATA_<nn>_TYPE0<t>_BPMtrace.mat BPM0, n_win x 1: reference HR (bpm)
  TestData/TEST_S<ss>_T0<t>.mat                 sig, 5 x N: PPG1, PPG2, ACCx, ACCy, ACCz
  TrueBPM/True_S<ss>_T0<t>.mat                  BPM0: reference HR of the test recording
  Extra_TrainingData/DATA_S<ss>_T0<t>.mat       sig, 6 x N (as Training_data)
  Extra_TrainingData/BPM_S<ss>_T0<t>.mat        BPM0
All at 125 Hz; reference value k covers samples [250 k, 250 k + 1000) (8 s windows, 2 s shift).
Any of the three parts may be absent."""

# part folder -> (signal file pattern, reference path for a match, signal rows)
_PARTS: dict[str, tuple[re.Pattern[str], str, tuple[str, ...]]] = {
    "Training_data": (
        re.compile(r"^DATA_(?P<subject>\d+)_TYPE0\d$"),
        "Training_data/{name}_BPMtrace.mat",
        ROWS_WITH_ECG,
    ),
    "TestData": (
        re.compile(r"^TEST_(?P<subject>S\d+)_T\d+$"),
        "TrueBPM/True_{rest}.mat",
        SIGNALS,
    ),
    "Extra_TrainingData": (
        re.compile(r"^DATA_(?P<subject>S\d+)_T\d+$"),
        "Extra_TrainingData/BPM_{rest}.mat",
        ROWS_WITH_ECG,
    ),
}


def load(
    path: str | Path,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    *,
    max_records: int | None = None,
    on_error: str = "raise",
) -> SignalSet:
    """Load every recording with a reference from the competition's folder layout.

    Args:
        path: the ``ieee-spc2015`` folder (see `LAYOUT`); the held-out part has the same layout.
        channels: signal names to keep, in this order, from ``PPG1, PPG2, ACCx, ACCy, ACCz``
            (``ECG`` exists in the training recordings only).
        max_records: stop after this many recordings (in sorted order).
        on_error: ``"raise"``: a faulty recording (unreadable file, missing channel or
            reference, NaN samples, flat PPG, a reference longer or shorter than the signal
            allows) raises a `DataError` naming it; ``"skip"``: it is left out and listed in
            ``meta["skipped"][reason]``.

    Returns:
        A `SignalSet` at 125 Hz: ids are the file stems (``DATA_01_TYPE01``, ``TEST_S02_T01``,
        ``DATA_S04_T01``), groups the subjects (``01``... for the training data, ``S02``...
        for the test data and its extra recording), targets one float32 HR trace (bpm) per
        recording with one value per 8 s window every 2 s (``meta["target_windows"]``).
    """
    channels = check_options("ieee_spc2015", channels, ROWS_WITH_ECG, on_error, max_records)
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; the IEEE SPC 2015 data is a folder:\n{LAYOUT}")
    present = [part for part in _PARTS if (root / part).is_dir()]
    if not present:
        raise DataError(
            f"{root} holds none of the folders {', '.join(_PARTS)}; expected layout:\n{LAYOUT}"
        )
    collector = RecordingCollector("ieee_spc2015", channels, FS, WINDOWS, on_error)
    for part in present:
        pattern, reference_path, rows = _PARTS[part]
        for file in sorted((root / part).glob("*.mat")):
            match = pattern.match(file.stem)
            if match is None:
                continue  # a reference file of the same folder
            if max_records is not None and len(collector.ids) >= max_records:
                break
            name = file.stem
            rest = name.split("_", 1)[1]
            reference = root / reference_path.format(name=name, rest=rest)
            try:
                values = _signal_rows(file, rows, channels)
                trace = _reference(reference, name)
                collector.add(name, match["subject"], values, trace)
            except RecordError as fault:
                collector.fault(name, fault)
                continue
            collector.hash_file(file)
            collector.hash_file(reference)
    return collector.signalset(root)


def read_signal_file(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """One ``sig`` matrix of this layout as float32 ``(rows, N)`` with its row names.

    Six rows are ``ECG, PPG1, PPG2, ACCx, ACCy, ACCz``; five rows ``PPG1 ... ACCz``.
    """
    sig = _variable(path, "sig")
    if sig.ndim != 2 or sig.shape[0] not in (5, 6):
        raise RecordError(
            "missing channel",
            f"{path}: 'sig' has shape {sig.shape}; this layout has 6 rows "
            f"({', '.join(ROWS_WITH_ECG)}) or 5 rows ({', '.join(SIGNALS)})",
        )
    names = ROWS_WITH_ECG if sig.shape[0] == 6 else SIGNALS
    return sig.astype(np.float32), names


def _signal_rows(file: Path, rows: tuple[str, ...], channels: Sequence[str]) -> np.ndarray:
    sig = _variable(file, "sig")
    if sig.ndim != 2 or sig.shape[0] != len(rows):
        raise RecordError(
            "missing channel",
            f"{file}: 'sig' has shape {sig.shape}, expected {len(rows)} rows "
            f"({', '.join(rows)}) in this folder",
        )
    missing = [c for c in channels if c not in rows]
    if missing:
        raise RecordError(
            "missing channel",
            f"{file}: no channel {', '.join(missing)} in this folder (rows: {', '.join(rows)})",
        )
    return sig[[rows.index(c) for c in channels]].astype(np.float64)


def _reference(path: Path, record: str) -> np.ndarray:
    if not path.is_file():
        raise RecordError(
            "missing reference",
            f"record {record!r} has no reference trace {path}; put it there or remove the record",
        )
    return _variable(path, "BPM0")


def _variable(path: Path, name: str) -> np.ndarray:
    try:
        variables = loadmat(str(path))
    except Exception as err:  # scipy raises ValueError, TypeError, OSError ... for bad files
        message = f"{path}: not a readable MATLAB file ({err})"
        raise RecordError("unreadable file", message) from None
    if name not in variables:
        found = ", ".join(k for k in variables if not k.startswith("__")) or "none"
        raise RecordError("unreadable file", f"{path}: no variable {name!r} (found: {found})")
    return np.asarray(variables[name], dtype=np.float64)
