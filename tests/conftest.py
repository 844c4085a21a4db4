"""Shared fixtures: the real data directory and small real subsets built from it."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported; see cli.main

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """`PHYSIODL_DATA`, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("PHYSIODL_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"real data not found at {path}; set PHYSIODL_DATA to the shared data folder")
    return path


@pytest.fixture(scope="session")
def cinc_zip(data_dir: Path) -> Path:
    return data_dir / "cinc2017" / "training2017.zip"


@pytest.fixture(scope="session")
def cinc_small_zip(cinc_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zip in PhysioNet's layout with the first 40 N, 20 A, 12 O and 8 ~ real records."""
    quota = {"N": 40, "A": 20, "O": 12, "~": 8}
    out = tmp_path_factory.mktemp("cinc_small") / "training2017.zip"
    with zipfile.ZipFile(cinc_zip) as src, zipfile.ZipFile(out, "w") as dst:
        reference = src.read("training2017/REFERENCE.csv").decode().split()
        chosen = []
        for line in reference:
            name, label = line.split(",")
            if quota.get(label, 0) > 0:
                quota[label] -= 1
                chosen.append(line)
        dst.writestr("training2017/", b"")
        for line in chosen:
            name = line.split(",")[0]
            for ext in (".hea", ".mat"):
                entry = f"training2017/{name}{ext}"
                dst.writestr(entry, src.read(entry))
        records = "".join(line.split(",")[0] + "\n" for line in chosen)
        dst.writestr("training2017/RECORDS", records)
        dst.writestr("training2017/REFERENCE.csv", "".join(f"{c}\r\n" for c in chosen))
    return out
