"""Where data and caches live: ``--data-dir`` > ``PHYSIODL_DATA`` > the user cache."""

from __future__ import annotations

import os
from pathlib import Path

from physiodl.errors import DataError

DATA_ENV = "PHYSIODL_DATA"
CACHE_ENV = "PHYSIODL_CACHE"


def cache_dir() -> Path:
    """The user cache: ``PHYSIODL_CACHE`` > ``$XDG_CACHE_HOME/physiodl`` > ``~/.cache/physiodl``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "physiodl"
    return Path.home() / ".cache" / "physiodl"


def data_dir(explicit: str | Path | None = None) -> Path:
    """The data directory: ``explicit`` > ``PHYSIODL_DATA`` > ``cache_dir() / "data"``.

    The directory is not required to exist; readers report what is missing.
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return cache_dir() / "data"


def resolve_data_path(path: str | Path, data_dir: str | Path) -> Path:
    """``path`` if absolute, else ``data_dir / path``; a `DataError` if it does not exist."""
    path = Path(path).expanduser()
    resolved = path if path.is_absolute() else Path(data_dir).expanduser() / path
    if not resolved.exists():
        raise DataError(
            f"data not found: {resolved} (path {str(path)!r} in data directory {data_dir}); "
            f"set the data directory with --data-dir or the {DATA_ENV} environment variable, "
            "or give an absolute path"
        )
    return resolved
