"""Downloads that resume and verify, and zip extraction that cannot escape its folder."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm import tqdm

from physiodl.errors import DataError, DownloadError

_CHUNK = 1 << 16


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30,
) -> Path:
    """Download ``url`` to ``dest``, resuming a broken download, and verify it.

    Bytes go to ``dest`` + ``.part``; an existing ``.part`` is resumed with an HTTP Range
    request. Only a file whose size and SHA-256 match (where given) is renamed to ``dest``,
    atomically. A ``.part`` that fails the check is removed. An existing ``dest`` is never
    overwritten: it is returned if it verifies, else a `DownloadError` says to move it.

    Offline, unreachable or HTTP errors fail at once with a `DownloadError` that says how
    to put the file in place by hand.
    """
    dest = Path(dest)
    by_hand = f"download {url} by hand (browser, wget) and save it as {dest}"
    if dest.exists():
        problem = _mismatch(dest, sha256, size)
        if problem is None:
            return dest
        raise DownloadError(
            f"{dest} already exists but {problem}; it is not replaced: move it away and run "
            "again, or use another destination"
        )
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is None or offset < size:
        _fetch(url, part, offset, progress=progress, timeout=timeout, by_hand=by_hand)
    problem = _mismatch(part, sha256, size)
    if problem is not None:
        part.unlink()
        raise DownloadError(
            f"the download of {url} {problem}; the partial file {part} was removed. Run again; "
            f"if it fails again the file on the server has changed: {by_hand}"
        )
    os.replace(part, dest)
    return dest


def _fetch(
    url: str, part: Path, offset: int, *, progress: bool, timeout: float, by_hand: str
) -> None:
    """Append the bytes from ``offset`` on to ``part`` (restart if the server cannot resume)."""
    request = urllib.request.Request(url, headers={"User-Agent": "physiodl"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing after offset: the .part is complete
            return
        raise DownloadError(f"{url}: HTTP error {err.code} {err.reason}; {by_hand}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"cannot reach {url} ({reason}); are you offline? Retry later, or {by_hand}"
        ) from None
    with response:
        if offset and response.status != 206:  # the server ignored the Range request
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        show = progress and sys.stderr.isatty()
        with (
            part.open("ab" if offset else "wb") as file,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=part.stem,
                disable=not show,
            ) as bar,
        ):
            try:
                while chunk := response.read(_CHUNK):
                    file.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as err:
                raise DownloadError(
                    f"the download of {url} broke off after {file.tell()} bytes ({err}); run "
                    f"the same command again to resume from {part}"
                ) from None
            received = file.tell()
    if total is not None and received < total:
        raise DownloadError(
            f"the download of {url} broke off after {received} of {total} bytes; run the same "
            f"command again to resume from {part}"
        )


def _mismatch(path: Path, sha256: str | None, size: int | None) -> str | None:
    """What is wrong with ``path`` against the expected size and SHA-256, or ``None``."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"has {actual_size} bytes, expected {size}"
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            return f"has SHA-256 {actual}, expected {sha256.lower()} (checksum mismatch)"
    return None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def safe_extract(zip_path: str | Path, dest_dir: str | Path) -> list[Path]:
    """Extract ``zip_path`` into ``dest_dir``; returns the top-level paths created.

    Refuses (with a `DataError`, before writing anything) members with absolute paths,
    drive letters, ``..`` or backslashes, symbolic links, and top-level names that already
    exist in ``dest_dir``. Extracts into a temporary folder inside ``dest_dir`` and moves
    the top-level entries into place, so an interrupted extraction leaves nothing half
    written under the final names. The zip itself is never modified or deleted.
    """
    zip_path, dest_dir = Path(zip_path), Path(dest_dir)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{zip_path} is not a readable zip file ({err})") from None
    with archive:
        members = archive.infolist()
        for member in members:
            _check_member(member, zip_path, dest_dir)
        tops = sorted({PurePosixPath(m.filename).parts[0] for m in members})
        existing = [name for name in tops if (dest_dir / name).exists()]
        if existing:
            raise DataError(
                f"{dest_dir / existing[0]} already exists; remove it or extract {zip_path} "
                "somewhere else"
            )
        dest_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
        try:
            archive.extractall(staging)
            for name in tops:
                os.replace(staging / name, dest_dir / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [dest_dir / name for name in tops]


def _check_member(member: zipfile.ZipInfo, zip_path: Path, dest_dir: Path) -> None:
    name = member.filename
    path = PurePosixPath(name)
    if not name or path.is_absolute() or PureWindowsPath(name).drive:
        problem = "is an absolute path"
    elif "\\" in name:
        problem = "contains a backslash"
    elif ".." in path.parts:
        problem = "contains '..'"
    elif stat.S_ISLNK(member.external_attr >> 16):
        problem = "is a symbolic link"
    else:
        return
    raise DataError(
        f"{zip_path}: member {name!r} {problem}; refusing to extract (nothing may be written "
        f"outside {dest_dir}). Get the file from its official source."
    )
