"""On-disk cache of `SignalSet`s keyed by a config dict: one uncompressed ``.npz`` per key.

A file holds every record's ``(channels, time)`` samples flattened and concatenated (``data``,
float32) with their ``lengths``, plus ids, channels, targets, classes, groups, ``fs`` and ``meta``
(JSON). Files are written to a temporary name and renamed into place, so a crash never leaves a
half-written file that looks valid; an unreadable file is recomputed with a warning.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from physiodl.errors import DataError
from physiodl.io.paths import cache_dir as user_cache_dir
from physiodl.signalset import SignalSet

log = logging.getLogger(__name__)

#: Version of the file layout below; part of every key, so a change never reads old files.
CACHE_FORMAT = 1


def canonical_json(key: dict[str, Any]) -> str:
    """``key`` as JSON with sorted keys and no spaces (tuples become lists, paths strings)."""
    return json.dumps(
        {**key, "cache_format": CACHE_FORMAT},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
        default=_plain,
    )


def cache_path(key: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
    """The file for ``key``: ``<cache_dir>/features/<sha256 of the canonical key>.npz``."""
    root = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    digest = hashlib.sha256(canonical_json(key).encode()).hexdigest()
    return root / "features" / f"{digest}.npz"


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """Resolved path, size and modification time of a data file, for a cache key."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cached_signalset(
    key: dict[str, Any],
    compute: Callable[[], SignalSet],
    *,
    cache_dir: str | Path | None = None,
    enabled: bool = True,
) -> SignalSet:
    """The `SignalSet` cached under ``key``, else ``compute()`` stored under it.

    Args:
        key: everything the result depends on (data file fingerprint, loader options, transform
            config, a format version); JSON-serialisable.
        compute: builds the `SignalSet` on a cache miss.
        cache_dir: root of the cache; default `physiodl.io.paths.cache_dir`.
        enabled: ``False`` computes without reading or writing the cache.
    """
    if not enabled:
        return compute()
    path = cache_path(key, cache_dir)
    expected = canonical_json(key)
    if path.is_file():
        try:
            ss = _read(path, expected)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, DataError) as err:
            warnings.warn(f"feature cache {path} is unusable ({err}); recomputing", stacklevel=2)
        else:
            log.info("features loaded from cache %s", path)
            return ss
    ss = compute()
    try:
        save_signalset(ss, path, key_json=expected)
    except OSError as err:
        warnings.warn(f"could not write feature cache {path} ({err}); not cached", stacklevel=2)
    return ss


def save_signalset(ss: SignalSet, path: str | Path, *, key_json: str = "") -> None:
    """Write ``ss`` to ``path`` (uncompressed ``.npz``) atomically: temp file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = _metadata_arrays(ss, key_json)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name, array in arrays.items():
                    with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
                with zf.open("data.npy", "w", force_zip64=True) as member:
                    _write_concatenated(member, ss.signals)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_signalset(path: str | Path) -> SignalSet:
    """Read a file written by `save_signalset`."""
    return _read(Path(path))


def _read(path: Path, key_json: str | None = None) -> SignalSet:
    """The stored `SignalSet`; a `ValueError` if the file is damaged or holds another key."""
    with np.load(path, allow_pickle=False) as z:
        if int(z["cache_format"]) != CACHE_FORMAT:
            raise ValueError(f"cache format {int(z['cache_format'])}, expected {CACHE_FORMAT}")
        if key_json is not None and str(z["key"]) != key_json:
            raise ValueError("the file holds another key")
        channels = tuple(str(c) for c in z["channels"])
        lengths = z["lengths"]
        offsets = np.concatenate([[0], np.cumsum(lengths * len(channels))])
        data = _read_stored_float32(path, z.zip.getinfo("data.npy"), int(offsets[-1]))
        signals = [
            data[a:b].reshape(len(channels), n)
            for (a, b), n in zip(itertools.pairwise(offsets), lengths, strict=True)
        ]
        targets_kind = str(z["targets_kind"])
        targets: np.ndarray | list[np.ndarray] | None = None
        if targets_kind == "array":
            targets = z["targets"]
        elif targets_kind == "per_record":
            bounds = np.concatenate([[0], np.cumsum(z["target_lengths"])])
            values = z["target_data"]
            targets = [values[a:b] for a, b in itertools.pairwise(bounds)]
        return SignalSet(
            signals=signals,
            fs=float(z["fs"]),
            channels=channels,
            ids=tuple(str(i) for i in z["ids"]),
            targets=targets,
            classes=tuple(str(c) for c in z["classes"]) if "classes" in z.files else None,
            groups=z["groups"] if "groups" in z.files else None,
            meta=json.loads(str(z["meta"])),
        )


def _read_stored_float32(path: Path, info: zipfile.ZipInfo, count: int) -> np.ndarray:
    """An uncompressed ``.npy`` member read straight from the file (no zip stream, no CRC pass)."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{info.filename} is compressed")
    with path.open("rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"no local zip header for {info.filename}")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_length + extra_length)
        if np.lib.format.read_magic(fh) != (2, 0):
            raise ValueError(f"{info.filename} is not a version 2.0 .npy")
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        if shape != (count,) or dtype != np.float32:
            raise ValueError(f"{info.filename} holds {shape} {dtype}, expected ({count},) float32")
        data = np.fromfile(fh, dtype=np.float32, count=count)
    if data.size != count:
        raise ValueError(f"{info.filename} is truncated: {data.size} of {count} samples")
    return data


def _metadata_arrays(ss: SignalSet, key_json: str) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {
        "cache_format": np.array(CACHE_FORMAT),
        "key": np.array(key_json),
        "meta": np.array(json.dumps(ss.meta, default=_plain, allow_nan=False)),
        "fs": np.array(float(ss.fs)),
        "channels": np.array(ss.channels, dtype=str),
        "ids": np.array(ss.ids, dtype=str),
        "lengths": ss.lengths,
    }
    if ss.targets is None:
        arrays["targets_kind"] = np.array("none")
    elif isinstance(ss.targets, np.ndarray):
        arrays["targets_kind"] = np.array("array")
        arrays["targets"] = _no_objects(ss.targets, "targets")
    else:
        arrays["targets_kind"] = np.array("per_record")
        arrays["target_lengths"] = np.array([len(t) for t in ss.targets], dtype=np.int64)
        values = np.concatenate(ss.targets) if ss.targets else np.zeros(0)
        arrays["target_data"] = _no_objects(values, "targets")
    if ss.classes is not None:
        arrays["classes"] = np.array(ss.classes, dtype=str)
    if ss.groups is not None:
        arrays["groups"] = _no_objects(ss.groups, "groups")
    return arrays


def _write_concatenated(fh: BinaryIO, signals: list[np.ndarray]) -> None:
    """One float32 ``.npy`` of all records, flattened, written record by record (no big copy)."""
    total = sum(x.size for x in signals)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
    np.lib.format.write_array_header_2_0(fh, {**header, "shape": (total,)})
    for x in signals:
        fh.write(np.ascontiguousarray(x, dtype=np.float32).tobytes())


def _no_objects(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` without object dtype (strings become a unicode array)."""
    values = np.asarray(values)
    if values.dtype == object:
        values = np.asarray(values.tolist())
    if values.dtype == object:
        raise TypeError(f"cannot cache {name}: mixed types; use strings or numbers")
    return values


def _plain(value: Any) -> Any:
    """JSON form of numpy values and paths."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-serialisable")
