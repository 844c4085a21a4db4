"""PPG-DaLiA loader on generated subject files in the original format (we have no real copy).

The originals are Python 2 pickles (``pickle.load(f, encoding="latin1")``): dict keys and
array data are Python 2 byte strings and arrays refer to ``numpy.core.multiarray``. The
writer below produces exactly that, so the loader meets what the download holds.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from physiodl.datasets import dataset_info, load_dataset
from physiodl.datasets.ppg_dalia import load, read_pickle
from physiodl.errors import DataError, RecipeError, RecordError
from physiodl.window_targets import TargetWindows


class _Global:
    """A global named as Python 2 named it (pickled as a GLOBAL opcode)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self) -> None:  # pickle only checks that a reduce function is callable
        raise NotImplementedError


class Python2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Protocol 2 as Python 2 wrote it: ``str`` as byte strings, arrays by ``_reconstruct``."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: str) -> None:
        data = obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_global_ref(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[str] = save_py2_str
    dispatch[_Global] = save_global_ref

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            state = (1, obj.shape, obj.dtype, False, obj.tobytes().decode("latin1"))
            base = (_Global("numpy", "ndarray"), (0,), "b")
            return (_Global("numpy.core.multiarray", "_reconstruct"), base, state)
        return NotImplemented


def write_subject(
    folder: Path,
    subject: str,
    seconds: int = 60,
    *,
    hr: float = 75.0,
    activity: list[tuple[int, int]] | None = None,
    acc_rate: float = 32.0,
    label_count: int | None = None,
) -> Path:
    """``<folder>/<subject>/<subject>.pkl`` with the original keys, shapes and rates."""
    rng = np.random.default_rng(int(subject[1:]))
    t64 = np.arange(seconds * 64) / 64
    bvp = 50 * np.sin(2 * np.pi * hr / 60 * t64) + rng.normal(0, 5, len(t64))
    n_acc = round(seconds * acc_rate)
    acc = rng.normal(0, 0.05, (n_acc, 3)) + np.array([0.1, -0.9, 0.3])
    n_labels = (seconds - 8) // 2 + 1 if label_count is None else label_count
    codes = np.zeros(seconds * 4)
    start_s = 0
    for code, until_s in activity or [(1, seconds)]:
        codes[start_s * 4 : until_s * 4] = code
        start_s = until_s
    data = {
        "signal": {
            "wrist": {
                "ACC": (acc * 64).astype(np.float64),
                "BVP": bvp[:, None],
                "EDA": rng.random((seconds * 4, 1)),
                "TEMP": 33 + rng.random((seconds * 4, 1)),
            },
            "chest": {"ECG": rng.normal(size=(seconds * 700 // 10, 1))},
        },
        "label": hr + 0.01 * np.arange(n_labels),
        "activity": codes[:, None],
        "questionnaire": {"WEIGHT": 78.0, "Gender": " m", "AGE": 34, "HEIGHT": 182.0},
        "rpeaks": np.arange(0, seconds * 700, 560),
        "subject": subject,
    }
    path = folder / subject / f"{subject}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        Python2Pickler(handle, protocol=2).dump(data)
    return path


@pytest.fixture()
def dalia(tmp_path: Path) -> Path:
    root = tmp_path / "ppg_dalia" / "PPG_FieldStudy"
    write_subject(root, "S1", hr=70.0)
    write_subject(root, "S2", hr=95.0)
    write_subject(root, "S10", hr=120.0)
    return tmp_path / "ppg_dalia"


def test_generated_files_are_python2_pickles_like_the_originals(dalia: Path) -> None:
    raw = (dalia / "PPG_FieldStudy" / "S1" / "S1.pkl").read_bytes()
    assert raw.startswith(b"\x80\x02") and b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    assert b"U\x05label" in raw  # a Python 2 short byte string
    data = pickle.loads(raw, encoding="latin1")
    assert data["signal"]["wrist"]["BVP"].shape == (60 * 64, 1)
    assert data["signal"]["wrist"]["ACC"].shape == (60 * 32, 3)


def test_loads_subjects_with_accelerometer_at_the_ppg_rate(dalia: Path) -> None:
    ss = load(dalia)
    assert ss.ids == ("S1", "S2", "S10") and ss.groups.tolist() == ["S1", "S2", "S10"]
    assert ss.fs == 64.0 and ss.channels == ("PPG", "ACCx", "ACCy", "ACCz")
    assert all(x.shape == (4, 60 * 64) for x in ss.signals)
    assert TargetWindows.of(ss) == TargetWindows(8.0, 2.0)
    assert [len(t) for t in ss.targets] == [27, 27, 27]
    np.testing.assert_allclose(ss.targets[1][:2], [95.0, 95.01], rtol=1e-6)
    original = read_pickle(dalia / "PPG_FieldStudy" / "S2" / "S2.pkl")
    np.testing.assert_allclose(
        ss.signals[1][0], original["signal"]["wrist"]["BVP"][:, 0], rtol=1e-6
    )
    acc_mean = original["signal"]["wrist"]["ACC"].mean(axis=0)
    np.testing.assert_allclose(ss.signals[1][1:].mean(axis=1), acc_mean, rtol=0.02)
    via_registry = load_dataset("ppg_dalia", path=dalia, channels=["PPG"], subjects=["S10"])
    assert via_registry.ids == ("S10",) and via_registry.n_channels == 1


def test_activities_cut_records_at_whole_reference_windows(tmp_path: Path) -> None:
    root = tmp_path / "dalia"
    write_subject(root, "S3", seconds=100, activity=[(1, 30), (0, 50), (7, 100)])
    ss = load(root, activities=["sitting", "walking"])
    assert ss.ids == ("S3-sitting-0", "S3-walking-0")
    sitting, walking = ss.targets
    # sitting 0-30 s holds windows starting 0..22 s; walking 50-100 s windows 50..92 s
    assert len(sitting) == 12 and len(walking) == 22
    np.testing.assert_allclose([sitting[0], walking[0]], [75.0, 75.25], rtol=1e-6)
    assert ss.signals[0].shape[1] == 30 * 64 and ss.signals[1].shape[1] == 50 * 64
    with pytest.raises(RecipeError, match="activities"):
        load(root, activities=["running"])


@pytest.mark.parametrize(
    ("kwargs", "reason", "message"),
    [
        ({"acc_rate": 64.0}, "wrong sampling rate", "ACC must be sampled at 32 Hz"),
        ({"label_count": 30}, "reference longer than signal", "has 30 values"),
        ({"label_count": 20}, "reference shorter than signal", "has 20 values"),
    ],
)
def test_bad_subject_files_raise_or_are_skipped(
    dalia: Path, kwargs: dict, reason: str, message: str
) -> None:
    write_subject(dalia / "PPG_FieldStudy", "S2", **kwargs)
    with pytest.raises(RecordError, match=message):
        load(dalia)
    ss = load(dalia, on_error="skip")
    assert ss.ids == ("S1", "S10") and ss.meta["skipped"] == {reason: ["S2"]}


def test_a_pickle_that_would_run_code_is_refused(dalia: Path) -> None:
    evil = dalia / "PPG_FieldStudy" / "S2" / "S2.pkl"
    evil.write_bytes(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueR.")
    with pytest.raises(RecordError, match=r"wants os.system.*refusing"):
        load(dalia)
    evil.write_bytes(b"\x80\x02}q\x00.")  # a pickle, but no PPG-DaLiA content
    with pytest.raises(RecordError, match=r"no signal\.wrist\.BVP"):
        load(dalia)


def test_missing_data_says_how_to_get_it(tmp_path: Path) -> None:
    (tmp_path / "ppg+dalia.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"no S<n>/S<n>.pkl files \(unzip ppg\+dalia.zip"):
        load(tmp_path)
    info = dataset_info("ppg_dalia")
    assert info.remote_files[0].url.startswith("https://archive.ics.uci.edu/")
    assert "generated files" in info.layout
