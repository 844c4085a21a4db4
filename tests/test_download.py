"""Downloads against a local HTTP server (with Range support), safe zip extraction, fetch."""

from __future__ import annotations

import hashlib
import io
import socket
import stat
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from physiodl import datasets
from physiodl.datasets import DatasetInfo, RemoteFile, dataset_status, fetch_dataset
from physiodl.errors import DataError, DownloadError, RecipeError
from physiodl.io.download import download, safe_extract

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves ``files`` on localhost; records Range headers; can cut a response short."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"/data.bin": PAYLOAD}
        self.ranges: list[str | None] = []
        self.cut_after: int | None = None
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                server.ranges.append(header)
                if server.ignore_range:
                    header = None
                start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
                if start >= len(data) and header:
                    self.send_error(416)
                    return
                self.send_response(206 if header else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut_after is not None:
                    body = body[: server.cut_after]
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def free_port() -> int:
    """A localhost port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_full_download_verifies_and_renames(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "data.bin"
    out = download(
        f"{server.url}/data.bin", dest, sha256=PAYLOAD_SHA, size=len(PAYLOAD), progress=False
    )
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "data.bin.part").exists()
    assert server.ranges == [None]


def test_resume_from_partial_file(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:123_456])
    download(f"{server.url}/data.bin", dest, sha256=PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges == ["bytes=123456-"]


def test_broken_download_keeps_part_and_resumes(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    server.cut_after = 100_000
    with pytest.raises(DownloadError, match=r"broke off after 100000 of 300000 bytes.*resume"):
        download(f"{server.url}/data.bin", dest, size=len(PAYLOAD), progress=False)
    assert not dest.exists()
    assert (tmp_path / "data.bin.part").stat().st_size == 100_000
    server.cut_after = None
    download(f"{server.url}/data.bin", dest, sha256=PAYLOAD_SHA, size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=100000-"]


def test_server_without_range_support_restarts(server: Server, tmp_path: Path) -> None:
    (tmp_path / "data.bin.part").write_bytes(b"stale bytes")
    server.ignore_range = True
    download(f"{server.url}/data.bin", tmp_path / "data.bin", sha256=PAYLOAD_SHA, progress=False)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_complete_part_is_verified_without_a_request(server: Server, tmp_path: Path) -> None:
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    download(f"{server.url}/data.bin", tmp_path / "data.bin", size=len(PAYLOAD), progress=False)
    assert server.ranges == [] and (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_removes_part(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=r"checksum mismatch.*was removed"):
        download(f"{server.url}/data.bin", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()


def test_size_mismatch_removes_part(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="has 300000 bytes, expected 300001"):
        download(f"{server.url}/data.bin", tmp_path / "d.bin", size=300_001, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_fails_at_once_with_instructions(tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    url = f"http://127.0.0.1:{free_port()}/data.bin"
    with pytest.raises(DownloadError, match=rf"cannot reach .*by hand .* save it as {dest}"):
        download(url, dest, timeout=5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP error 404"):
        download(f"{server.url}/missing.bin", tmp_path / "x.bin", progress=False)


def test_existing_file_is_kept_or_refused(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    assert download(f"{server.url}/data.bin", dest, sha256=PAYLOAD_SHA, progress=False) == dest
    dest.write_bytes(b"the user's own file")
    with pytest.raises(DownloadError, match=r"already exists.*not replaced"):
        download(f"{server.url}/data.bin", dest, sha256=PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == b"the user's own file" and server.ranges == []


def make_zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def test_safe_extract_moves_into_place(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "a.zip", {"top/x.txt": b"x", "top/sub/y.txt": b"y", "z.txt": b"z"}
    )
    dest = tmp_path / "out"
    created = safe_extract(archive, dest)
    assert created == [dest / "top", dest / "z.txt"]
    assert (dest / "top" / "sub" / "y.txt").read_bytes() == b"y"
    assert sorted(p.name for p in dest.iterdir()) == ["top", "z.txt"]  # no staging folder left
    assert archive.exists()
    with pytest.raises(DataError, match="already exists"):
        safe_extract(archive, dest)


@pytest.mark.parametrize(
    ("members", "symlink", "problem"),
    [
        ({"../evil.txt": b"x"}, None, "contains '..'"),
        ({"ok/../../evil.txt": b"x"}, None, "contains '..'"),
        ({"/tmp/evil.txt": b"x"}, None, "absolute path"),
        ({"C:/evil.txt": b"x"}, None, "absolute path"),
        ({"a\\..\\evil.txt": b"x"}, None, "backslash"),
        ({"ok.txt": b"x"}, "link", "symbolic link"),
    ],
)
def test_safe_extract_refuses_escaping_members(
    tmp_path: Path, members: dict[str, bytes], symlink: str | None, problem: str
) -> None:
    archive = make_zip(tmp_path / "evil.zip", members, symlink)
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=problem):
        safe_extract(archive, dest)
    assert not dest.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip"]


@pytest.fixture
def served_dataset(server: Server, monkeypatch: pytest.MonkeyPatch) -> DatasetInfo:
    """A registered dataset whose zip is served by the local server."""
    payload_zip = make_zip_bytes({"demo/RECORDS": b"r1\n", "demo/r1.txt": b"1"})
    server.files["/demo.zip"] = payload_zip
    info = DatasetInfo(
        name="demo",
        title="demo",
        task="classification",
        load=lambda path: path,
        default_path="demo/demo.zip",
        remote_files=(
            RemoteFile(
                f"{server.url}/demo.zip", "demo.zip", hashlib.sha256(payload_zip).hexdigest(), None
            ),
        ),
        layout="demo.zip with demo/RECORDS",
        known_sha256={"f" * 64: "a known copy"},
    )
    monkeypatch.setitem(datasets.DATASETS, "demo", info)
    return info


def make_zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_fetch_downloads_verifies_and_extracts(served_dataset: DatasetInfo, tmp_path: Path) -> None:
    assert dataset_status("demo", tmp_path)["present"] is False
    path = fetch_dataset("demo", tmp_path, progress=False)
    assert path == tmp_path / "demo" / "demo.zip" and path.is_file()
    assert (tmp_path / "demo" / "demo" / "r1.txt").read_bytes() == b"1"
    assert fetch_dataset("demo", tmp_path, progress=False) == path  # already there: kept
    status = dataset_status("demo", tmp_path)
    assert status["present"] and status["kind"] == "zip" and status["checksum_ok"] is True
    assert status["recognised"].startswith("the official file")


def test_fetch_offline_names_the_layout(
    served_dataset: DatasetInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = RemoteFile(f"http://127.0.0.1:{free_port()}/demo.zip", "demo.zip", None, None)
    monkeypatch.setitem(
        datasets.DATASETS,
        "demo",
        DatasetInfo(**{**vars(served_dataset), "remote_files": (remote,)}),
    )
    with pytest.raises(
        DownloadError, match=r"save it as .*demo.zip[\s\S]*demo.zip with demo/RECORDS"
    ):
        fetch_dataset("demo", tmp_path, progress=False)


def test_fetch_generated_dataset_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="nothing to fetch"):
        fetch_dataset("synthetic-ecg", tmp_path)
