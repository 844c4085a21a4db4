"""The CinC 2017 loader: layouts, options, every fault, and the full shared zip."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from physiodl.datasets import cinc2017
from physiodl.errors import DataError, RecipeError
from physiodl.io.cinc_format import CincSource, parse_header

PREFIX = "training2017/"


def rewrite_zip(
    src: Path, dst: Path, changes: dict[str, bytes | None], rename: Callable[[str], str] = str
) -> Path:
    """Copy ``src`` to ``dst``: members in ``changes`` replaced (``None``: dropped)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = changes.get(info.filename, zin.read(info.filename))
            if data is not None and rename(info.filename):
                zout.writestr(rename(info.filename), data)
    return dst


def member(zip_path: Path, name: str) -> bytes:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.read(name)


def first_record(zip_path: Path, label: str = "N") -> str:
    reference = member(zip_path, PREFIX + "REFERENCE.csv").decode().split()
    return next(line.split(",")[0] for line in reference if line.endswith("," + label))


def loadmat_mv(zip_path: Path, name: str) -> np.ndarray:
    return scipy.io.loadmat(io.BytesIO(member(zip_path, f"{PREFIX}{name}.mat")))["val"] / 1000


def test_small_zip_loads_as_signalset(cinc_small_zip: Path) -> None:
    ss = cinc2017.load(cinc_small_zip, progress=False)
    assert len(ss) == 60
    assert ss.class_counts() == {"N": 40, "A": 20}
    assert ss.fs == 300.0 and ss.channels == ("ECG",) and ss.classes == ("N", "A")
    assert ss.targets.dtype == np.int64 and list(ss.groups) == list(ss.ids)
    assert all(x.dtype == np.float32 and x.shape[0] == 1 for x in ss.signals)
    assert ss.meta["excluded"] == {
        "label O not in classes": 12,
        "label ~ not in classes": 8,
        "shorter than min_length": [],
    }
    assert ss.meta["skipped"] == {}
    assert ss.meta["sha256"] == hashlib.sha256(cinc_small_zip.read_bytes()).hexdigest()
    for i in (0, 45):
        expected = loadmat_mv(cinc_small_zip, ss.ids[i])
        np.testing.assert_allclose(ss.signals[i], expected, rtol=1e-6)
    labels = dict(
        line.split(",")
        for line in member(cinc_small_zip, PREFIX + "REFERENCE.csv").decode().split()
    )
    assert [ss.classes[t] for t in ss.targets] == [labels[i] for i in ss.ids]


def test_four_classes_keep_the_given_order(cinc_small_zip: Path) -> None:
    ss = cinc2017.load(cinc_small_zip, classes=("~", "O", "A", "N"), progress=False)
    assert ss.class_counts() == {"~": 8, "O": 12, "A": 20, "N": 40}
    assert ss.meta["excluded"] == {"shorter than min_length": []}


def test_folder_layouts_and_zip_without_top_folder(cinc_small_zip: Path, tmp_path: Path) -> None:
    reference = cinc2017.load(cinc_small_zip, progress=False)
    with zipfile.ZipFile(cinc_small_zip) as archive:
        archive.extractall(tmp_path / "unzipped")
    flat = rewrite_zip(cinc_small_zip, tmp_path / "flat.zip", {}, lambda n: n.removeprefix(PREFIX))
    for path in (tmp_path / "unzipped", tmp_path / "unzipped" / "training2017", flat):
        ss = cinc2017.load(path, progress=False)
        assert ss.ids == reference.ids
        assert all(np.array_equal(a, b) for a, b in zip(ss.signals, reference.signals, strict=True))
    folder_hashes = {
        cinc2017.load(tmp_path / "unzipped", progress=False).meta["sha256"] for _ in "ab"
    }
    assert len(folder_hashes) == 1 and reference.meta["sha256"] not in folder_hashes


def test_records_file_is_optional(cinc_small_zip: Path, tmp_path: Path) -> None:
    no_records = rewrite_zip(cinc_small_zip, tmp_path / "x.zip", {PREFIX + "RECORDS": None})
    assert (
        cinc2017.load(no_records, progress=False).ids
        == cinc2017.load(cinc_small_zip, progress=False).ids
    )


def test_other_labels_file(cinc_small_zip: Path, tmp_path: Path) -> None:
    names = member(cinc_small_zip, PREFIX + "RECORDS").decode().split()
    alternative = "".join(f"{n},{'A' if i < 5 else 'O'}\r\n" for i, n in enumerate(names)).encode()
    path = rewrite_zip(cinc_small_zip, tmp_path / "x.zip", {})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(PREFIX + "REFERENCE-v2.csv", alternative)
    ss = cinc2017.load(path, classes=("A",), labels_file="REFERENCE-v2.csv", progress=False)
    assert ss.ids == tuple(names[:5])
    assert ss.meta["labels_file"] == "REFERENCE-v2.csv"


def test_min_length_and_max_records(cinc_small_zip: Path) -> None:
    full = cinc2017.load(cinc_small_zip, progress=False)
    cutoff = int(np.median(full.lengths))
    ss = cinc2017.load(cinc_small_zip, min_length=cutoff, progress=False)
    short = [i for i, n in zip(full.ids, full.lengths, strict=True) if n < cutoff]
    assert short and ss.meta["excluded"]["shorter than min_length"] == short
    assert len(ss) == len(full) - len(short) and ss.lengths.min() >= cutoff
    first = cinc2017.load(cinc_small_zip, max_records=7, progress=False)
    assert first.ids == full.ids[:7]


@pytest.mark.parametrize(
    "options",
    [
        {"classes": ("N", "X")},
        {"classes": ()},
        {"classes": ("N", "N")},
        {"on_error": "ignore"},
        {"min_length": 0},
        {"max_records": 2.5},
    ],
)
def test_bad_options_are_recipe_errors(cinc_small_zip: Path, options: dict) -> None:
    with pytest.raises(RecipeError, match="cinc2017"):
        cinc2017.load(cinc_small_zip, progress=False, **options)


def mat_v4(values: np.ndarray, type_code: int = 0) -> bytes:
    """A MATLAB v4 file holding ``values`` as ``val`` (type 0 = double)."""
    rows, cols = values.shape
    return struct.pack("<5i", type_code, rows, cols, 0, 4) + b"val\x00" + values.T.tobytes()


def _faults(zip_path: Path, name: str) -> dict[str, tuple[dict[str, bytes | None], str]]:
    """fault -> (zip changes, reason in meta['skipped'])."""
    hea, mat = f"{PREFIX}{name}.hea", f"{PREFIX}{name}.mat"
    header, data = member(zip_path, hea), member(zip_path, mat)
    n = parse_header(header.decode(), hea).n_samples
    reference = member(zip_path, PREFIX + "REFERENCE.csv")
    line = f"{name},N\r\n".encode()
    nan_values = np.full((1, n), 0.5)
    nan_values[0, 10:13] = np.nan
    return {
        "truncated .mat": ({mat: data[:-10]}, "corrupt .mat"),
        "bad .mat header": ({mat: b"\x00\x00\x01\x00" + data[4:]}, "corrupt .mat"),
        "bad .mat name": ({mat: data[:20] + b"xyz\x00" + data[24:]}, "corrupt .mat"),
        "corrupt .hea": ({hea: b"garbage\r\n"}, "corrupt .hea"),
        ".hea without .mat": ({mat: None}, "missing .mat"),
        "missing .hea": ({hea: None}, "missing .hea"),
        "missing label": (
            {PREFIX + "REFERENCE.csv": reference.replace(line, b"")},
            "missing label",
        ),
        "unknown label": (
            {PREFIX + "REFERENCE.csv": reference.replace(line, f"{name},X\r\n".encode())},
            "unknown label",
        ),
        "NaN samples": ({mat: mat_v4(nan_values)}, "NaN samples"),
        "empty recording": (
            {
                hea: header.replace(f" {n} ".encode(), b" 0 ", 1),
                mat: mat_v4(np.zeros((1, 0), dtype=np.int16), type_code=30),
            },
            "empty recording",
        ),
    }


FAULTS = [
    "truncated .mat",
    "bad .mat header",
    "bad .mat name",
    "corrupt .hea",
    ".hea without .mat",
    "missing .hea",
    "missing label",
    "unknown label",
    "NaN samples",
    "empty recording",
]


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_raises_naming_the_record_or_is_skipped(
    fault: str, cinc_small_zip: Path, tmp_path: Path
) -> None:
    name = first_record(cinc_small_zip)
    changes, reason = _faults(cinc_small_zip, name)[fault]
    path = rewrite_zip(cinc_small_zip, tmp_path / "faulty.zip", changes)
    with pytest.raises(DataError, match=name) as raised:
        cinc2017.load(path, progress=False)
    assert "on_error='skip'" in str(raised.value)
    ss = cinc2017.load(path, on_error="skip", progress=False)
    assert ss.meta["skipped"] == {reason: [name]}
    assert len(ss) == 59 and name not in ss.ids


def test_corrupt_zip_member(cinc_small_zip: Path, tmp_path: Path) -> None:
    """A damaged byte inside a stored member fails its CRC check."""
    name = first_record(cinc_small_zip)
    path = tmp_path / "crc.zip"
    with zipfile.ZipFile(cinc_small_zip) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item), compress_type=zipfile.ZIP_STORED)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{PREFIX}{name}.mat")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"{name}\.mat cannot be read from the zip"):
        cinc2017.load(path, progress=False)
    ss = cinc2017.load(path, on_error="skip", progress=False)
    assert ss.meta["skipped"] == {"unreadable zip member": [name]}


def test_nan_free_float_mat_is_read(cinc_small_zip: Path, tmp_path: Path) -> None:
    name = first_record(cinc_small_zip)
    values = loadmat_mv(cinc_small_zip, name) * 1000
    path = rewrite_zip(cinc_small_zip, tmp_path / "x.zip", {f"{PREFIX}{name}.mat": mat_v4(values)})
    ss = cinc2017.load(path, max_records=1, progress=False)
    np.testing.assert_allclose(ss.signals[0], values / 1000, rtol=1e-6)


def test_truncated_mat_message_names_the_sizes(cinc_small_zip: Path, tmp_path: Path) -> None:
    name = first_record(cinc_small_zip)
    data = member(cinc_small_zip, f"{PREFIX}{name}.mat")
    path = rewrite_zip(cinc_small_zip, tmp_path / "x.zip", {f"{PREFIX}{name}.mat": data[:-10]})
    with pytest.raises(
        DataError, match=rf"{name}\.mat: {len(data) - 10} bytes, expected {len(data)}"
    ):
        cinc2017.load(path, progress=False)


def test_paths_that_are_not_the_layout(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(
        DataError, match=r"neither a folder nor a zip[\s\S]*training2017/A00001.hea"
    ):
        cinc2017.load(text, progress=False)
    with pytest.raises(DataError, match="does not exist"):
        cinc2017.load(tmp_path / "missing.zip", progress=False)
    with pytest.raises(DataError, match=r"no \.hea files"):
        cinc2017.load(tmp_path, progress=False)
    empty_zip = tmp_path / "empty.zip"
    zipfile.ZipFile(empty_zip, "w").close()
    with pytest.raises(DataError, match="found: none"):
        cinc2017.load(empty_zip, progress=False)


def test_missing_labels_file(cinc_small_zip: Path, tmp_path: Path) -> None:
    path = rewrite_zip(cinc_small_zip, tmp_path / "x.zip", {PREFIX + "REFERENCE.csv": None})
    with pytest.raises(DataError, match=r"labels file .*REFERENCE.csv not found"):
        cinc2017.load(path, progress=False)


def test_nothing_to_load(cinc_small_zip: Path) -> None:
    with pytest.raises(DataError, match="no records of classes"):
        cinc2017.load(cinc_small_zip, min_length=10**6, progress=False)


def test_source_reads_members_in_place(cinc_small_zip: Path) -> None:
    with CincSource(cinc_small_zip) as source:
        assert source.kind == "zip" and source.prefix == PREFIX
        assert source.read("nope.hea") is None
        assert len(source.record_names()) == 80


def test_full_shared_zip(cinc_zip: Path) -> None:
    ss = cinc2017.load(cinc_zip, classes=("N", "A", "O", "~"), progress=False)
    assert len(ss) == 6822
    assert ss.class_counts() == {"N": 4040, "A": 590, "O": 1965, "~": 227}
    assert ss.lengths.min() == 2714 and ss.lengths.max() == 18286
    assert ss.meta["sha256"] == "6348684c933559c3eced2fffa02eca52fc80a8afecaa14bf5551650bbf39bf6b"
    for i in (0, 1234, 6821):
        np.testing.assert_allclose(ss.signals[i], loadmat_mv(cinc_zip, ss.ids[i]), rtol=1e-6)
