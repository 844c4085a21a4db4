"""PhysioNet/CinC records (WFDB ``.hea`` + MATLAB v4 ``.mat``) read from a folder or a zip.

A CinC record ``A00001`` is a header ``A00001.hea``::

    A00001 1 300 9000 05:05:15 1/05/2000
    A00001.mat 16+24 1000/mV 16 0 -127 0 0 ECG

and ``A00001.mat``: a MATLAB v4 file with one little-endian int16 matrix ``val`` of shape
``(n_signals, n_samples)``: a 20-byte header, the NUL-terminated name, then the samples
(``24 + 2 n`` bytes for one signal). Single and double precision matrices (MATLAB
``save -v4``) are read too. Physical value = (stored value - baseline) / gain.

`CincSource` reads the records of a folder or a zip without extracting it. Accepted layouts:
the zip as PhysioNet ships it (members ``training2017/<record>.hea|.mat``), a zip with the
files at its top, the unzipped ``training2017/`` folder, or a folder holding it (or holding
``training2017.zip``).
"""

from __future__ import annotations

import hashlib
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType

import numpy as np

from physiodl.errors import DataError, RecordError
from physiodl.io.download import file_sha256

LAYOUT = """\
training2017.zip              as PhysioNet ships it (or the same files unzipped in a folder)
  training2017/A00001.hea     WFDB header: "A00001 1 300 9000", "A00001.mat 16+24 1000/mV ..."
  training2017/A00001.mat     MATLAB v4 file, int16 matrix 'val' of shape (1, n)
  ...                         one .hea + one .mat per record
  training2017/RECORDS        record names, one per line (optional: else the .hea files)
  training2017/REFERENCE.csv  labels, one "A00001,N" line per record (N, A, O or ~)"""

TOP_FOLDER = "training2017"
_MAT_HEADER = struct.Struct("<5i")
_MAT_DTYPES = {0: np.dtype("<f8"), 1: np.dtype("<f4"), 3: np.dtype("<i2")}
_FORMAT_RE = re.compile(r"^(\d+)(?:x\d+)?(?::\d+)?(?:\+(\d+))?$")
_GAIN_RE = re.compile(r"^(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)(?:\((-?\d+)\))?(?:/(\S+))?$")


@dataclass(frozen=True)
class SignalSpec:
    """One signal line of a WFDB header."""

    file_name: str
    byte_offset: int | None
    gain: float
    baseline: int
    description: str


@dataclass(frozen=True)
class RecordHeader:
    """The parts of a WFDB header that reading the samples needs."""

    name: str
    fs: float
    n_samples: int
    signals: tuple[SignalSpec, ...]


def parse_header(text: str, source: str) -> RecordHeader:
    """Parse a single-segment WFDB header; ``source`` names the file in error messages."""
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise RecordError("corrupt .hea", f"{source}: the header is empty; restore the file")
    fields = lines[0].split()
    try:
        name = fields[0].split("/")[0]
        n_signals = int(fields[1])
        fs = float(fields[2].split("/")[0].split("(")[0])
        n_samples = int(fields[3])
    except (IndexError, ValueError):
        raise RecordError(
            "corrupt .hea",
            f"{source}: record line {lines[0]!r} is not 'name n_signals fs n_samples ...'; "
            "restore the file",
        ) from None
    if fs <= 0 or n_samples < 0 or n_signals < 1 or len(lines) - 1 != n_signals:
        raise RecordError(
            "corrupt .hea",
            f"{source}: record line {lines[0]!r} does not fit the {len(lines) - 1} signal "
            "line(s) that follow (or has fs <= 0); restore the file",
        )
    signals = tuple(_parse_signal_line(line, source) for line in lines[1:])
    return RecordHeader(name=name, fs=fs, n_samples=n_samples, signals=signals)


def _parse_signal_line(line: str, source: str) -> SignalSpec:
    fields = line.split()
    fmt = _FORMAT_RE.match(fields[1]) if len(fields) > 1 else None
    gain = _GAIN_RE.match(fields[2]) if len(fields) > 2 else None
    if fmt is None or gain is None or float(gain[1]) <= 0:
        raise RecordError(
            "corrupt .hea",
            f"{source}: signal line {line!r} is not 'file format gain/units ...' with a "
            "positive gain; restore the file",
        )
    adc_zero = int(fields[4]) if len(fields) > 4 and fields[4].lstrip("-").isdigit() else 0
    return SignalSpec(
        file_name=fields[0],
        byte_offset=None if fmt[2] is None else int(fmt[2]),
        gain=float(gain[1]),
        baseline=adc_zero if gain[2] is None else int(gain[2]),
        description=" ".join(fields[8:]),
    )


def parse_mat_v4(data: bytes, header: RecordHeader, source: str) -> np.ndarray:
    """The ``(n_signals, n_samples)`` matrix ``val`` of a MATLAB v4 file, validated.

    The file must hold exactly one real matrix named ``val`` with the header's shape; its
    size must be exactly header + name + samples (``24 + 2 n`` bytes for one int16 signal).
    """
    n_signals, n_samples = len(header.signals), header.n_samples
    restore = "the file is truncated or corrupt; restore it from the original data"
    if len(data) < _MAT_HEADER.size:
        raise RecordError(
            "corrupt .mat",
            f"{source}: {len(data)} bytes, shorter than a MATLAB v4 header (20 bytes); {restore}",
        )
    mopt, n_rows, n_cols, imagf, name_len = _MAT_HEADER.unpack_from(data)
    dtype = _MAT_DTYPES.get(mopt // 10) if mopt % 10 == 0 else None
    name_end = _MAT_HEADER.size + name_len
    if dtype is None or imagf != 0 or not 1 < name_len <= 64 or len(data) < name_end:
        raise RecordError(
            "corrupt .mat",
            f"{source}: not a little-endian real MATLAB v4 matrix (type {mopt}, imagf {imagf}, "
            f"name length {name_len}); {restore}",
        )
    if data[_MAT_HEADER.size : name_end] != b"val\x00":
        raise RecordError(
            "corrupt .mat",
            f"{source}: the matrix is named {data[_MAT_HEADER.size : name_end]!r}, expected "
            f"'val'; {restore}",
        )
    if (n_rows, n_cols) != (n_signals, n_samples):
        raise RecordError(
            "corrupt .mat",
            f"{source}: the matrix is {n_rows} x {n_cols} but the header says {n_signals} "
            f"signal(s) x {n_samples} samples; {restore}",
        )
    offsets = {s.byte_offset for s in header.signals} - {None}
    if offsets and offsets != {name_end}:
        raise RecordError(
            "corrupt .mat",
            f"{source}: samples start at byte {name_end}, the header says {sorted(offsets)}; "
            f"{restore}",
        )
    expected = name_end + dtype.itemsize * n_rows * n_cols
    if len(data) != expected:
        raise RecordError(
            "corrupt .mat",
            f"{source}: {len(data)} bytes, expected {expected} ({name_end} + {dtype.itemsize} x "
            f"{n_rows * n_cols} samples for the header's n = {n_samples}); {restore}",
        )
    count = n_rows * n_cols
    return np.frombuffer(data, dtype=dtype, count=count, offset=name_end).reshape(n_cols, n_rows).T


def mat_file_name(header: RecordHeader, source: str) -> str:
    """The one ``.mat`` file that holds all signals of ``header``."""
    files = {s.file_name for s in header.signals}
    if len(files) != 1 or not next(iter(files)).endswith(".mat"):
        raise RecordError(
            "corrupt .hea",
            f"{source}: signals are stored in {sorted(files)}, expected one .mat file; "
            "restore the file",
        )
    return files.pop()


def decode_record(header: RecordHeader, mat_data: bytes, source: str) -> np.ndarray:
    """Physical float32 ``(n_signals, n_samples)`` samples of one record.

    ``source`` names the record (without suffix) in messages. Raises `RecordError` for a
    corrupt ``.mat``, NaN samples or an empty recording.
    """
    stored = parse_mat_v4(mat_data, header, f"{source}.mat")
    if header.n_samples == 0:
        raise RecordError(
            "empty recording", f"{source}: the recording has no samples; remove it from RECORDS"
        )
    values = stored.astype(np.float32)
    baseline = np.array([s.baseline for s in header.signals], dtype=np.float32)[:, None]
    if baseline.any():
        values -= baseline
    values /= np.array([s.gain for s in header.signals], dtype=np.float32)[:, None]
    n_nan = 0 if stored.dtype.kind == "i" else int(np.isnan(values).sum())
    if n_nan:
        raise RecordError(
            "NaN samples",
            f"{source}.mat: {n_nan} of {values.size} samples are NaN; repair or remove the record",
        )
    return values


def parse_labels(text: str, source: str) -> dict[str, str]:
    """``{record: label}`` from ``record,label`` lines (CRLF or LF line ends)."""
    labels: dict[str, str] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not all(fields):
            raise DataError(f"{source} line {line_no}: expected 'record,label', got {line!r}")
        if fields[0] in labels:
            raise DataError(f"{source} line {line_no}: record {fields[0]!r} is labelled twice")
        labels[fields[0]] = fields[1]
    return labels


class CincSource:
    """The records of a folder or a zip in PhysioNet's CinC layout, read without extracting.

    Use as a context manager (a zip stays open until `close`).
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path).expanduser()
        self._zip: zipfile.ZipFile | None = None
        self._members: set[str] = set()
        if path.is_dir():
            path = self._record_folder(path)
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise DataError(
                    f"{path} is neither a folder nor a zip file; expected this layout:\n{LAYOUT}"
                )
            self._zip = zipfile.ZipFile(path)
            self._members = {m.filename for m in self._zip.infolist() if not m.is_dir()}
            try:
                self.prefix = self._zip_prefix(path)
            except DataError:
                self._zip.close()
                raise
        elif not path.is_dir():
            raise DataError(f"{path} does not exist; expected this layout:\n{LAYOUT}")
        else:
            self.prefix = ""
        self.path = path
        self.kind = "zip" if self._zip is not None else "folder"

    @staticmethod
    def _record_folder(folder: Path) -> Path:
        """The folder with the records: ``folder``, its ``training2017/`` or ``.zip``."""
        if any(folder.glob("*.hea")):
            return folder
        for candidate in (folder / TOP_FOLDER, folder / f"{TOP_FOLDER}.zip"):
            if candidate.exists():
                return candidate
        raise DataError(
            f"{folder} holds no .hea files, no {TOP_FOLDER}/ folder and no {TOP_FOLDER}.zip; "
            f"expected this layout:\n{LAYOUT}"
        )

    def _zip_prefix(self, path: Path) -> str:
        """The folder inside the zip that holds the ``.hea`` files (``""`` for the top)."""
        folders = {str(PurePosixPath(m).parent) for m in self._members if m.endswith(".hea")}
        prefixes = sorted("" if f == "." else f + "/" for f in folders)
        if len(prefixes) == 1:
            return prefixes[0]
        if f"{TOP_FOLDER}/" in prefixes:
            return f"{TOP_FOLDER}/"
        found = ", ".join(p or "(top)" for p in prefixes) or "none"
        raise DataError(
            f"{path}: expected one folder of .hea files in the zip, found: {found}; "
            f"expected this layout:\n{LAYOUT}"
        )

    def __enter__(self) -> CincSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the zip (nothing to do for a folder)."""
        if self._zip is not None:
            self._zip.close()

    def describe(self, file_name: str) -> str:
        """How a file of this source is named in messages: ``zip:member`` or a path."""
        if self._zip is not None:
            return f"{self.path}:{self.prefix}{file_name}"
        return str(self.path / file_name)

    def read(self, file_name: str) -> bytes | None:
        """The bytes of ``file_name`` in the record folder; ``None`` if it is missing."""
        if self._zip is not None:
            member = self.prefix + file_name
            if member not in self._members:
                return None
            try:
                return self._zip.read(member)
            except (zipfile.BadZipFile, zlib.error, EOFError) as err:
                raise RecordError(
                    "unreadable zip member",
                    f"{self.describe(file_name)} cannot be read from the zip ({err}); get a "
                    "fresh copy of the zip",
                ) from None
        file = self.path / file_name
        return file.read_bytes() if file.is_file() else None

    def record_names(self) -> list[str]:
        """Record names from ``RECORDS``, else from the ``.hea`` files (sorted)."""
        data = self.read("RECORDS")
        if data is None:
            if self._zip is not None:
                heads = [m for m in self._members if m.startswith(self.prefix)]
                names = [m[len(self.prefix) :] for m in heads]
            else:
                names = [p.name for p in self.path.iterdir()]
            return sorted(n[:-4] for n in names if n.endswith(".hea") and "/" not in n)
        names = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
        names = [n for n in names if n]
        if len(set(names)) != len(names):
            raise DataError(f"{self.describe('RECORDS')}: lists some records twice; repair it")
        return names

    def labels(self, file_name: str = "REFERENCE.csv") -> dict[str, str]:
        """``{record: label}`` from the labels file ``file_name`` in the record folder."""
        data = self.read(file_name)
        if data is None:
            raise DataError(
                f"labels file {self.describe(file_name)} not found; put it beside the .hea "
                f"files or name another one (labels_file); expected this layout:\n{LAYOUT}"
            )
        return parse_labels(data.decode("utf-8", "replace"), self.describe(file_name))

    def record(self, name: str) -> tuple[np.ndarray, RecordHeader]:
        """Physical float32 ``(n_signals, n_samples)`` samples and the header of ``name``."""
        hea_name = self.describe(f"{name}.hea")
        header_bytes = self.read(f"{name}.hea")
        if header_bytes is None:
            raise RecordError(
                "missing .hea",
                f"{hea_name} not found but {name!r} is listed in RECORDS; restore it or remove "
                "the record from RECORDS",
            )
        header = parse_header(header_bytes.decode("latin-1"), hea_name)
        mat_name = mat_file_name(header, hea_name)
        mat = self.read(mat_name)
        if mat is None:
            raise RecordError(
                "missing .mat",
                f"{self.describe(mat_name)} not found beside {name}.hea; restore it or remove "
                "the record",
            )
        return decode_record(header, mat, self.describe(name)), header

    def sha256(self) -> str:
        """SHA-256 of the zip file, or of a folder's files (names and bytes, sorted by name)."""
        if self._zip is not None:
            return file_sha256(self.path)
        digest = hashlib.sha256()
        for file in sorted(p for p in self.path.iterdir() if p.is_file()):
            digest.update(file.name.encode() + b"\x00")
            digest.update(file.read_bytes())
        return digest.hexdigest()
