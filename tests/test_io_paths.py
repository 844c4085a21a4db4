"""Data and cache locations, and the dataset registry that resolves paths through them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from physiodl.datasets import (
    DATASETS,
    dataset_info,
    dataset_path,
    dataset_status,
    load_dataset,
)
from physiodl.errors import DataError, RecipeError
from physiodl.io.paths import cache_dir, data_dir, resolve_data_path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("PHYSIODL_DATA", "PHYSIODL_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_cache_dir_precedence(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cache_dir() == tmp_path / "home" / ".cache" / "physiodl"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "physiodl"
    clean_env.setenv("PHYSIODL_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_data_dir_precedence(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert data_dir() == tmp_path / "home" / ".cache" / "physiodl" / "data"
    clean_env.setenv("PHYSIODL_DATA", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"


def test_resolve_data_path(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.zip").write_bytes(b"")
    assert resolve_data_path("a/f.zip", tmp_path) == tmp_path / "a" / "f.zip"
    assert resolve_data_path(tmp_path / "a" / "f.zip", "/elsewhere") == tmp_path / "a" / "f.zip"
    with pytest.raises(DataError, match=r"missing\.zip.*data directory.*--data-dir.*PHYSIODL_DATA"):
        resolve_data_path("missing.zip", tmp_path)


def test_registry() -> None:
    assert {"cinc2017", "synthetic-ecg", "ieee_spc2015", "ppg_dalia"} <= set(DATASETS)
    assert {"peaks-npz", "synthetic-peaks"} <= set(DATASETS)
    info = dataset_info("cinc2017")
    assert info.default_path == "cinc2017/training2017.zip" and info.task == "classification"
    assert info.remote_files[0].size == 99_226_822
    assert "training2017/REFERENCE.csv" in info.layout
    with pytest.raises(RecipeError, match="unknown dataset 'mnist'; registered: cinc2017, "):
        dataset_info("mnist")
    assert dataset_info("synthetic-peaks").files_dataset == "peaks-npz"
    assert dataset_info("peaks-npz").task == "detection"


def test_load_dataset_resolves_the_default_path(data_dir: Path) -> None:
    ss = load_dataset("cinc2017", data_dir=data_dir, max_records=5, progress=False)
    assert len(ss) == 5 and ss.meta["source"] == str(data_dir / "cinc2017" / "training2017.zip")


def test_load_dataset_finds_the_unzipped_folder(cinc_small_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(cinc_small_zip) as archive:
        archive.extractall(tmp_path / "cinc2017")
    ss = load_dataset("cinc2017", data_dir=tmp_path, classes=["A"], progress=False)
    assert ss.class_counts() == {"A": 20}
    status = dataset_status("cinc2017", tmp_path)
    assert status["present"] and status["kind"] == "folder" and status["checksum_ok"] is None
    assert status["path"] == str(tmp_path / "cinc2017" / "training2017")
    assert status["summary"].startswith("folder")
    assert dataset_path("cinc2017", data_dir=tmp_path) == tmp_path / "cinc2017" / "training2017"
    assert dataset_path("cinc2017", "", data_dir=tmp_path) == tmp_path / "cinc2017" / "training2017"


def test_load_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="no option 'clases'; allowed: classes, labels_file"):
        load_dataset("cinc2017", clases=["N"])
    with pytest.raises(
        DataError, match=r"not found[\s\S]*physiodl data fetch cinc2017[\s\S]*REFERENCE"
    ):
        load_dataset("cinc2017", data_dir=tmp_path)
    with pytest.raises(RecipeError, match="takes no path"):
        load_dataset("synthetic-ecg", path="x")


def test_load_synthetic_by_name() -> None:
    ss = load_dataset("synthetic-ecg", n_records=4, classes=("N", "A"), seed=1)
    assert ss.class_counts() == {"N": 2, "A": 2}
    assert np.array_equal(
        ss.signals[0], load_dataset("synthetic-ecg", n_records=4, seed=1).signals[0]
    )


def test_status_recognises_the_course_subset(data_dir: Path, tmp_path: Path) -> None:
    status = dataset_status("cinc2017", data_dir)
    assert status["present"] and status["kind"] == "zip" and status["bytes"] == 79_166_078
    assert status["checksum_ok"] is True and "course subset" in status["recognised"]
    assert status["summary"] == "zip 75.5 MiB, the course subset (6,822 of 8,528 records)"
    (tmp_path / "cinc2017").mkdir()
    (tmp_path / "cinc2017" / "training2017.zip").write_bytes(b"not the data")
    other = dataset_status("cinc2017", tmp_path)
    assert other["present"] and other["checksum_ok"] is False and other["recognised"] is None
    assert dataset_status("cinc2017", tmp_path / "empty")["present"] is False
    assert dataset_status("cinc2017", tmp_path / "empty")["summary"] == "not present"
    assert dataset_status("synthetic-ecg")["kind"] == "generated"
    assert dataset_path("synthetic-ecg") is None
