"""PPG-DaLiA: wrist PPG and accelerometer of 15 subjects in daily-life activities.

Reiss A, Indlekofer I, Schmidt P, Van Laerhoven K. Deep PPG: Large-Scale Heart Rate
Estimation with Convolutional Neural Networks. Sensors 2019;19(14):3079.
https://doi.org/10.3390/s19143079 (data: https://archive.ics.uci.edu/dataset/495/ppg+dalia)

Each subject's ``S<n>/S<n>.pkl`` is a Python 2 pickle of a dict (read with ``latin1``):
``signal.wrist.BVP`` ``(N, 1)`` at 64 Hz, ``signal.wrist.ACC`` ``(N/2, 3)`` at 32 Hz,
``label`` the reference heart rate per 8 s window shifted by 2 s, ``activity`` ``(M, 1)`` at
4 Hz, and more (chest signals, questionnaire, R peaks) that this loader does not use. The
pickles are read by an unpickler that builds only numpy arrays and plain values, so a file
from elsewhere cannot run code.
"""

from __future__ import annotations

import itertools
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physiodl.datasets.heart_rate import RecordingCollector, check_options
from physiodl.errors import DataError, RecipeError, RecordError
from physiodl.signalset import SignalSet
from physiodl.transforms.filters import resample_array
from physiodl.window_targets import TargetWindows

FS = 64.0
ACC_FS = 32.0
ACTIVITY_FS = 4.0
WINDOWS = TargetWindows(length_s=8.0, shift_s=2.0)
CHANNELS = ("PPG", "ACCx", "ACCy", "ACCz")
ACTIVITIES = {
    0: "transient",
    1: "sitting",
    2: "stairs",
    3: "table soccer",
    4: "cycling",
    5: "driving",
    6: "lunch",
    7: "walking",
    8: "working",
}
URL = "https://archive.ics.uci.edu/static/public/495/ppg+dalia.zip"

LAYOUT = """\
ppg_dalia/                 the unzipped UCI download (any folder holding the subject folders)
  PPG_FieldStudy/S1/S1.pkl one Python 2 pickle per subject, S1 ... S15: signal.wrist.BVP
  ...                      (64 Hz), signal.wrist.ACC (32 Hz), label (HR per 8 s window every
                           2 s), activity (4 Hz); the other files of a subject folder are unused"""

_SUBJECT_FILE = re.compile(r"^S(\d+)\.pkl$")
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}


def load(
    path: str | Path,
    channels: Sequence[str] = CHANNELS,
    *,
    activities: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None,
    max_records: int | None = None,
    on_error: str = "raise",
) -> SignalSet:
    """Load the subjects' wrist PPG, accelerometer (resampled to 64 Hz) and reference HR.

    Args:
        path: a folder holding ``S<n>/S<n>.pkl`` files, at any depth (e.g. the unzipped
            download with its ``PPG_FieldStudy`` folder).
        channels: from ``PPG, ACCx, ACCy, ACCz``, in this order.
        activities: keep only these activities (names of `ACTIVITIES`, e.g. ``["sitting",
            "walking"]`` as the seed): every stretch of one kept activity becomes a record
            ``S1-walking-0`` holding the reference windows that lie wholly inside it.
            Default: the whole recording of each subject.
        subjects: keep only these subjects (``S1`` ...).
        max_records: stop after this many records.
        on_error: ``"raise"`` or ``"skip"`` a faulty subject file (unreadable or foreign
            pickle, missing signal, NaN samples, flat PPG, accelerometer not at half the PPG
            rate, reference longer or shorter than the signal allows).

    Returns:
        A `SignalSet` at 64 Hz; groups are the subjects, targets one HR trace (bpm) per
        record with one value per 8 s window every 2 s.
    """
    channels = check_options("ppg_dalia", channels, CHANNELS, on_error, max_records)
    wanted = _activity_codes(activities)
    root = Path(path)
    files = _subject_files(root)
    if subjects is not None:
        known = {f.stem for f in files}
        if unknown := sorted(set(subjects) - known):
            raise RecipeError(f"ppg_dalia: no subject {', '.join(unknown)} in {root}")
        files = [f for f in files if f.stem in set(subjects)]
    collector = RecordingCollector("ppg_dalia", channels, FS, WINDOWS, on_error)
    for file in files:
        if max_records is not None and len(collector.ids) >= max_records:
            break
        try:
            values, reference, activity = _read_subject(file, channels)
            parts = [(file.stem, values, reference)]
            if wanted is not None:
                parts = _activity_parts(file.stem, values, reference, activity, wanted)
            for name, part_values, part_reference in parts:
                collector.add(name, file.stem, part_values, part_reference)
        except RecordError as fault:
            collector.fault(file.stem, fault)
            continue
        collector.hash_file(file)
    return collector.signalset(root)


def read_pickle(path: Path) -> Any:
    """Unpickle ``path`` (``latin1``) allowing only numpy arrays, dtypes and plain values."""
    try:
        with path.open("rb") as handle:
            return _RestrictedUnpickler(handle, encoding="latin1").load()
    except RecordError:
        raise
    except Exception as err:  # truncated or corrupt pickles raise many types
        message = f"{path}: not a readable PPG-DaLiA pickle ({type(err).__name__}: {err})"
        raise RecordError("unreadable file", message) from None


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise RecordError(
                "unreadable file",
                f"the pickle wants {module}.{name}, which a PPG-DaLiA file never holds; "
                "refusing to load it",
            )
        module = module.replace("numpy.core.", "numpy._core.").replace("__builtin__", "builtins")
        return super().find_class({"copy_reg": "copyreg"}.get(module, module), name)


def _subject_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; PPG-DaLiA is a folder:\n{LAYOUT}")
    files = [
        p for p in root.rglob("S*.pkl") if _SUBJECT_FILE.match(p.name) and p.parent.name == p.stem
    ]
    if not files:
        zips = sorted(p.name for p in root.glob("*.zip"))
        hint = f" (unzip {', '.join(zips)} there first)" if zips else ""
        raise DataError(f"{root} holds no S<n>/S<n>.pkl files{hint}; expected layout:\n{LAYOUT}")
    return sorted(files, key=lambda p: int(_SUBJECT_FILE.match(p.name)[1]))  # type: ignore[index]


def _read_subject(file: Path, channels: Sequence[str]) -> tuple[np.ndarray, Any, np.ndarray]:
    data = read_pickle(file)
    try:
        wrist = data["signal"]["wrist"]
        bvp = np.asarray(wrist["BVP"], dtype=np.float64).reshape(-1)
        acc = np.asarray(wrist["ACC"], dtype=np.float64)
        reference = data["label"]
        activity = np.asarray(data.get("activity", np.zeros(0)), dtype=np.float64).reshape(-1)
    except (KeyError, TypeError, ValueError) as err:
        raise RecordError(
            "missing channel",
            f"{file}: no signal.wrist.BVP, signal.wrist.ACC or label ({err}); not a PPG-DaLiA "
            "subject file",
        ) from None
    if acc.ndim != 2 or acc.shape[1] != 3:
        raise RecordError("missing channel", f"{file}: ACC has shape {acc.shape}, expected (n, 3)")
    if abs(2 * len(acc) - len(bvp)) > 2:
        raise RecordError(
            "wrong sampling rate",
            f"{file}: {len(acc)} ACC samples for {len(bvp)} BVP samples; ACC must be sampled at "
            f"{ACC_FS:g} Hz, half the BVP's {FS:g} Hz",
        )
    acc64 = resample_array(acc.T, ACC_FS, FS).astype(np.float64)
    acc64 = np.pad(acc64, ((0, 0), (0, max(0, len(bvp) - acc64.shape[1]))), mode="edge")
    rows = {"PPG": bvp, **{f"ACC{axis}": acc64[i, : len(bvp)] for i, axis in enumerate("xyz")}}
    return np.stack([rows[c] for c in channels]), reference, activity


def _activity_codes(activities: Sequence[str] | None) -> set[int] | None:
    if activities is None:
        return None
    names = {v: k for k, v in ACTIVITIES.items()}
    unknown = [a for a in activities if a not in names]
    if unknown or not activities:
        raise RecipeError(
            f"ppg_dalia: activities {list(activities)} must be names from "
            f"{', '.join(ACTIVITIES.values())}"
        )
    return {names[a] for a in activities}


def _activity_parts(
    subject: str, values: np.ndarray, reference: Any, activity: np.ndarray, wanted: set[int]
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Each stretch of a wanted activity, cut at its first and last whole reference window."""
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    starts_s = WINDOWS.starts_s(len(reference))
    ends_s = starts_s + WINDOWS.length_s
    codes = np.round(activity).astype(np.int64)
    change = np.flatnonzero(np.diff(codes)) + 1
    bounds = np.concatenate([[0], change, [len(codes)]])
    parts = []
    counts: dict[int, int] = {}
    for a, b in itertools.pairwise(bounds):
        code = int(codes[a])
        if code not in wanted:
            continue
        inside = (starts_s >= a / ACTIVITY_FS) & (ends_s <= b / ACTIVITY_FS)
        windows = np.flatnonzero(inside)
        if len(windows) == 0:
            continue
        first, last = int(windows[0]), int(windows[-1])
        lo = round(starts_s[first] * FS)
        hi = round(ends_s[last] * FS)
        number = counts.get(code, 0)
        counts[code] = number + 1
        name = f"{subject}-{ACTIVITIES[code].replace(' ', '-')}-{number}"
        parts.append((name, values[:, lo:hi], reference[first : last + 1]))
    return parts
