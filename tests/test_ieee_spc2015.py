"""IEEE SPC 2015 loader: the real shared data, and every kind of bad recording."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from physiodl.datasets import dataset_status, load_dataset
from physiodl.datasets.ieee_spc2015 import load
from physiodl.errors import DataError, RecipeError, RecordError
from physiodl.window_targets import TargetWindows


@pytest.fixture(scope="module")
def ieee_dir(data_dir: Path) -> Path:
    return data_dir / "ieee-spc2015"


def test_loads_the_shared_recordings_with_subjects_and_aligned_references(ieee_dir: Path) -> None:
    ss = load_dataset("ieee_spc2015", data_dir=ieee_dir.parent)
    assert len(ss) == 18 and ss.fs == 125.0
    assert ss.channels == ("PPG1", "PPG2", "ACCx", "ACCy", "ACCz")
    assert ss.ids[0] == "DATA_01_TYPE01" and ss.ids[-1] == "DATA_S04_T01"
    assert sorted(set(ss.groups.tolist())) == [
        "01", "02", "03", "04", "05", "06", "07", "10", "11", "12",
        "S02", "S03", "S04", "S05", "S07", "S08",
    ]  # fmt: skip
    assert dict(zip(ss.ids, ss.groups, strict=True))["TEST_S04_T02"] == "S04"
    assert sum(len(t) for t in ss.targets) == 2478  # the README's reference windows
    windows = TargetWindows.of(ss)
    assert windows == TargetWindows(8.0, 2.0)
    for x, trace in zip(ss.signals, ss.targets, strict=True):
        assert len(trace) == (x.shape[1] - 1000) // 250 + 1
    first = loadmat(ieee_dir / "Training_data" / "DATA_01_TYPE01_BPMtrace.mat")["BPM0"].ravel()
    np.testing.assert_allclose(ss.targets[0], first, rtol=1e-6)
    raw = loadmat(ieee_dir / "Training_data" / "DATA_01_TYPE01.mat")["sig"]
    np.testing.assert_allclose(ss.signals[0], raw[1:], rtol=1e-6)  # ECG row left out
    assert ss.meta["excluded"] == {} and ss.meta["skipped"] == {}
    status = dataset_status("ieee_spc2015", ieee_dir.parent)
    assert status["present"] and status["kind"] == "folder"


def test_channels_option_selects_rows_by_name(ieee_dir: Path) -> None:
    ss = load(ieee_dir, channels=["ACCz", "PPG2"], max_records=2)
    raw = loadmat(ieee_dir / "Training_data" / "DATA_01_TYPE01.mat")["sig"]
    np.testing.assert_allclose(ss.signals[0], raw[[5, 2]], rtol=1e-6)
    with pytest.raises(RecipeError, match="must include a PPG channel"):
        load(ieee_dir, channels=["ACCx"])
    with pytest.raises(RecipeError, match="distinct names"):
        load(ieee_dir, channels=["PPG3"])


def _copy(ieee_dir: Path, tmp_path: Path, names: list[str]) -> Path:
    """A layout folder with the named training recordings (DATA_nn_TYPE0t) and references."""
    root = tmp_path / "ieee"
    (root / "Training_data").mkdir(parents=True)
    for name in names:
        for suffix in (".mat", "_BPMtrace.mat"):
            shutil.copy(ieee_dir / "Training_data" / f"{name}{suffix}", root / "Training_data")
    return root


GOOD, BAD = "DATA_01_TYPE01", "DATA_02_TYPE02"


def _damage(root: Path, name: str, *, sig: np.ndarray | None = None, bpm: object = None) -> None:
    folder = root / "Training_data"
    if sig is not None:
        savemat(folder / f"{name}.mat", {"sig": sig})
    if bpm is not None:
        savemat(folder / f"{name}_BPMtrace.mat", {"BPM0": bpm})


def _sig(root: Path, name: str) -> np.ndarray:
    return loadmat(root / "Training_data" / f"{name}.mat")["sig"]


def _bpm(root: Path, name: str) -> np.ndarray:
    return loadmat(root / "Training_data" / f"{name}_BPMtrace.mat")["BPM0"]


@pytest.mark.parametrize(
    ("damage", "reason", "message"),
    [
        ("nan", "NaN samples", r"3 samples are NaN or infinite \(first in PPG1\)"),
        ("flat", "flat PPG", "channel PPG2 is constant"),
        ("longer", "reference longer than signal", "has 149 values, but .* hold 148"),
        ("shorter", "reference shorter than signal", "has 140 values, but .* hold 148"),
        ("rows", "missing channel", r"'sig' has shape \(4, 37850\), expected 6 rows"),
        ("rate", "reference shorter than signal", "sampling rate is not 125 Hz"),
        ("reference", "missing reference", "has no reference trace"),
        ("garbage", "unreadable file", "not a readable MATLAB file"),
    ],
)
def test_bad_recordings_raise_or_are_skipped_and_counted(
    ieee_dir: Path, tmp_path: Path, damage: str, reason: str, message: str
) -> None:
    root = _copy(ieee_dir, tmp_path, [GOOD, BAD])
    sig, bpm = _sig(root, BAD), _bpm(root, BAD)
    if damage == "nan":
        sig[1, [10, 20, 30]] = np.nan
        _damage(root, BAD, sig=sig)
    elif damage == "flat":
        sig[2] = 7.0
        _damage(root, BAD, sig=sig)
    elif damage == "longer":
        _damage(root, BAD, bpm=np.vstack([bpm, bpm[-1:]]))
    elif damage == "shorter":
        _damage(root, BAD, bpm=bpm[:140])
    elif damage == "rows":
        _damage(root, BAD, sig=sig[:4])
    elif damage == "rate":  # the signal at 250 Hz with its 125 Hz reference
        _damage(root, BAD, sig=np.repeat(sig, 2, axis=1))
    elif damage == "reference":
        (root / "Training_data" / f"{BAD}_BPMtrace.mat").unlink()
    else:
        (root / "Training_data" / f"{BAD}.mat").write_bytes(b"not a mat file")
    with pytest.raises(RecordError, match=message) as raised:
        load(root)
    assert raised.value.reason == reason and BAD in str(raised.value)
    assert "on_error='skip'" in str(raised.value)
    ss = load(root, on_error="skip")
    assert ss.ids == (GOOD,)
    assert ss.meta["skipped"] == {reason: [BAD]}


def test_windows_with_flat_ppg_keep_their_place_with_a_nan_target(
    ieee_dir: Path, tmp_path: Path
) -> None:
    root = _copy(ieee_dir, tmp_path, [GOOD])
    sig = _sig(root, GOOD)
    sig[1:3, 250 * 10 : 250 * 10 + 1500] = 0.0  # both PPGs lost for 12 s: windows 10..12 flat
    _damage(root, GOOD, sig=sig)
    ss = load(root)
    trace = ss.targets[0]
    assert len(trace) == 148
    assert np.flatnonzero(np.isnan(trace)).tolist() == [10, 11, 12]
    assert ss.meta["excluded"] == {"windows with flat PPG (target set to NaN)": {GOOD: 3}}


def test_folder_errors_name_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        load(tmp_path / "missing")
    with pytest.raises(DataError, match=r"none of the folders[\s\S]*TrueBPM/True_S<ss>"):
        load(tmp_path)
    (tmp_path / "TestData").mkdir()
    with pytest.raises(DataError, match="no ieee_spc2015 recordings"):
        load(tmp_path)
