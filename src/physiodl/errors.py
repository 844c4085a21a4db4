"""Errors a user can cause. The CLI prints their message, without a traceback, and exits 2."""

from __future__ import annotations


class PhysioDLError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class DataError(PhysioDLError):
    """A missing, corrupt or inconsistent data file or record."""


class RecordError(DataError):
    """A fault in one record; ``reason`` is the short category used in ``meta["skipped"]``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RecipeError(PhysioDLError):
    """A recipe or command-line override that does not validate."""


class DownloadError(PhysioDLError):
    """A download that failed (offline, moved URL, checksum mismatch)."""


class CheckpointError(PhysioDLError):
    """A checkpoint that cannot be read or does not fit the data given to it."""
