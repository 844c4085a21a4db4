"""read_recording: WFDB, CinC .mat, bare .mat, .csv and .npy."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import wfdb

from physiodl.errors import DataError
from physiodl.io.recordings import read_recording


@pytest.fixture(scope="module")
def mitdb_record(data_dir: Path) -> Path:
    return data_dir / "mitdb-sample" / "100"


@pytest.fixture
def cinc_record(cinc_small_zip: Path, tmp_path: Path) -> tuple[Path, np.ndarray]:
    """One CinC record (.hea + .mat) extracted to tmp_path, and its values in mV."""
    with zipfile.ZipFile(cinc_small_zip) as archive:
        name = archive.read("training2017/RECORDS").decode().split()[0]
        for ext in (".hea", ".mat"):
            (tmp_path / f"{name}{ext}").write_bytes(archive.read(f"training2017/{name}{ext}"))
        val = scipy.io.loadmat(io.BytesIO(archive.read(f"training2017/{name}.mat")))["val"]
    return tmp_path / name, val / 1000


def test_wfdb_record(mitdb_record: Path) -> None:
    expected = wfdb.rdrecord(str(mitdb_record), sampto=1000).p_signal.T
    for path in (mitdb_record, mitdb_record.with_suffix(".hea")):
        values, fs, names = read_recording(path)
        assert values.shape == (2, 650_000) and values.dtype == np.float32
        assert fs == 360.0 and names == ("MLII", "V5")
        np.testing.assert_allclose(values[:, :1000], expected, rtol=1e-6)
    v5, _, names = read_recording(mitdb_record, channels=["V5"])
    assert names == ("V5",) and np.array_equal(v5[0], values[1])


def test_wfdb_fs_must_agree(mitdb_record: Path) -> None:
    assert read_recording(mitdb_record, fs=360)[1] == 360.0
    with pytest.raises(DataError, match=r"says 360\.0 Hz but --fs 250"):
        read_recording(mitdb_record, fs=250)


def test_unknown_channel(mitdb_record: Path) -> None:
    with pytest.raises(DataError, match="no channel 'II'; it has MLII, V5"):
        read_recording(mitdb_record, channels=["II"])


def test_cinc_mat_with_header(cinc_record: tuple[Path, np.ndarray]) -> None:
    record, expected = cinc_record
    for path in (record.with_suffix(".mat"), record.with_suffix(".hea"), record):
        values, fs, names = read_recording(path)
        assert fs == 300.0 and names == ("ECG",)
        np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_truncated_cinc_mat(cinc_record: tuple[Path, np.ndarray]) -> None:
    mat = cinc_record[0].with_suffix(".mat")
    mat.write_bytes(mat.read_bytes()[:-2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_recording(mat)


def test_bare_mat(tmp_path: Path) -> None:
    adc = np.array([[1000, -500, 250, 0]], dtype=np.int16)
    scipy.io.savemat(tmp_path / "adc.mat", {"val": adc})
    values, fs, names = read_recording(tmp_path / "adc.mat", fs=300)
    np.testing.assert_allclose(values, [[1.0, -0.5, 0.25, 0.0]])
    assert fs == 300.0 and names == ("ch0",)
    scipy.io.savemat(tmp_path / "mv.mat", {"val": np.array([0.5, 0.25, 0.0])})
    np.testing.assert_allclose(read_recording(tmp_path / "mv.mat", fs=100)[0], [[0.5, 0.25, 0.0]])
    with pytest.raises(DataError, match="pass --fs"):
        read_recording(tmp_path / "adc.mat")
    scipy.io.savemat(tmp_path / "other.mat", {"ecg": adc})
    with pytest.raises(DataError, match=r"no variable 'val' \(found: ecg\)"):
        read_recording(tmp_path / "other.mat", fs=300)


def test_csv_with_and_without_header(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("ECG,PPG\n0.5,10\n-0.25,11\n1,12\n")
    values, fs, names = read_recording(tmp_path / "h.csv", fs=125)
    assert names == ("ECG", "PPG") and fs == 125.0
    np.testing.assert_allclose(values, [[0.5, -0.25, 1.0], [10, 11, 12]])
    ppg, _, names = read_recording(tmp_path / "h.csv", fs=125, channels=["PPG"])
    assert names == ("PPG",) and np.array_equal(ppg, values[1:])
    (tmp_path / "n.csv").write_text("0.5,10\n-0.25,11\n")
    values, _, names = read_recording(tmp_path / "n.csv", fs=125)
    assert names == ("ch0", "ch1") and values.shape == (2, 2)
    with pytest.raises(DataError, match="pass --fs"):
        read_recording(tmp_path / "h.csv")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ECG,PPG\n0.5,10\n0.5\n", "line 3: 1 values, expected 2"),
        ("ECG\n0.5\nabc\n", "must be a number"),
        ("ECG\n", "no samples"),
        ("", "empty"),
        ("ECG\n0.5\nnan\n", "NaN"),
    ],
)
def test_bad_csv(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(DataError, match=problem):
        read_recording(tmp_path / "bad.csv", fs=100)


def test_npy(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.arange(5, dtype=np.float64))
    values, _, names = read_recording(tmp_path / "one.npy", fs=50)
    assert values.shape == (1, 5) and values.dtype == np.float32 and names == ("ch0",)
    np.save(tmp_path / "two.npy", np.ones((2, 7)))
    assert read_recording(tmp_path / "two.npy", fs=50)[0].shape == (2, 7)


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (np.ones((7, 2)), r"shape \(7, 2\)"),
        (np.ones((2, 3, 4)), "shape"),
        (np.array([1.0, np.nan, 2.0]), "1 of 3 samples are NaN"),
        (np.zeros(0), "no samples"),
        (np.array(["a", "b"]), "expected numbers"),
    ],
)
def test_bad_npy(tmp_path: Path, array: np.ndarray, problem: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError, match=problem):
        read_recording(tmp_path / "bad.npy", fs=100)


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_recording(tmp_path / "nope.csv", fs=100)
    (tmp_path / "x.edf").write_bytes(b"0")
    with pytest.raises(DataError, match=r"unknown recording format '\.edf'"):
        read_recording(tmp_path / "x.edf")
