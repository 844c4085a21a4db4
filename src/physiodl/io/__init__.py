"""Format readers, downloads and data locations."""

from physiodl.io.download import download, file_sha256, safe_extract
from physiodl.io.paths import cache_dir, data_dir, resolve_data_path
from physiodl.io.recordings import read_recording

__all__ = [
    "cache_dir",
    "data_dir",
    "download",
    "file_sha256",
    "read_recording",
    "resolve_data_path",
    "safe_extract",
]
