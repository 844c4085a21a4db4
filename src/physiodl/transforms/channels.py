"""Channel selection by name."""

from __future__ import annotations

from collections.abc import Sequence

from physiodl.errors import DataError
from physiodl.signalset import SignalSet


def select_channels(ss: SignalSet, names: Sequence[str]) -> SignalSet:
    """The channels ``names`` of every record, in that order; a `DataError` names any missing."""
    names = tuple(names)
    missing = [c for c in names if c not in ss.channels]
    if missing:
        raise DataError(
            f"no channel {', '.join(map(repr, missing))} in the data; it has "
            f"{', '.join(ss.channels)}"
        )
    if names == ss.channels:
        return ss
    index = [ss.channels.index(c) for c in names]
    return ss.with_signals([x[index] for x in ss.signals], channels=names)
