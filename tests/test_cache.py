"""Feature cache: exact round-trips, keying, atomic writes, recovery from corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from physiodl import cache
from physiodl.cache import cache_path, cached_signalset, load_signalset, save_signalset
from physiodl.signalset import SignalSet


def make_set(per_record_targets: bool = False) -> SignalSet:
    rng = np.random.default_rng(0)
    lengths = [30, 7, 30, 1]
    targets: np.ndarray | list[np.ndarray]
    if per_record_targets:
        targets = [rng.integers(0, 2, n).astype(np.int8) for n in lengths]
    else:
        targets = np.array([0, 1, 1, 0], dtype=np.int64)
    return SignalSet(
        signals=[rng.standard_normal((3, n)).astype(np.float32) for n in lengths],
        fs=300 / 28,
        channels=("ECG 0.0Hz", "ECG 9.4Hz", "ECG 18.8Hz"),
        ids=("A00001", "A00002", "A00003", "Ä4"),
        targets=targets,
        classes=("N", "A"),
        groups=np.array(["p1", "p1", "p2", "p3"]),
        meta={"source": "/x/y.zip", "skipped": {"NaN samples": ["A9"]}, "n": 4},
    )


def assert_same(a: SignalSet, b: SignalSet) -> None:
    assert len(a) == len(b)
    for x, y in zip(a.signals, b.signals, strict=True):
        assert x.dtype == y.dtype == np.float32
        np.testing.assert_array_equal(x, y)
    assert (a.fs, a.channels, a.ids, a.classes, a.meta) == (
        b.fs,
        b.channels,
        b.ids,
        b.classes,
        b.meta,
    )
    if isinstance(a.targets, np.ndarray):
        np.testing.assert_array_equal(a.targets, b.targets)
        assert a.targets.dtype == b.targets.dtype
    elif a.targets is not None:
        for s, t in zip(a.targets, b.targets, strict=True):
            np.testing.assert_array_equal(s, t)
    assert (a.groups is None) == (b.groups is None)
    if a.groups is not None:
        np.testing.assert_array_equal(a.groups, b.groups)


@pytest.mark.parametrize("per_record_targets", [False, True])
def test_save_and_load_round_trip_exactly(tmp_path: Path, per_record_targets: bool) -> None:
    ss = make_set(per_record_targets)
    save_signalset(ss, tmp_path / "x.npz")
    assert_same(load_signalset(tmp_path / "x.npz"), ss)


def test_round_trip_without_optional_fields(tmp_path: Path) -> None:
    ss = SignalSet(signals=[np.ones((1, 5), np.float32)], fs=125.0, channels=("PPG",), ids=("s1",))
    save_signalset(ss, tmp_path / "x.npz")
    loaded = load_signalset(tmp_path / "x.npz")
    assert loaded.targets is None and loaded.classes is None and loaded.groups is None
    assert_same(loaded, ss)


def test_second_call_reads_the_cache_instead_of_computing(tmp_path: Path) -> None:
    calls = []

    def compute() -> SignalSet:
        calls.append(1)
        return make_set()

    key = {"dataset": "cinc2017", "size": 79166078, "features": {"nperseg": 32, "noverlap": 4}}
    first = cached_signalset(key, compute, cache_dir=tmp_path)
    reordered = {
        "features": {"noverlap": 4, "nperseg": 32},
        "size": 79166078,
        "dataset": "cinc2017",
    }
    second = cached_signalset(reordered, compute, cache_dir=tmp_path)
    assert len(calls) == 1
    assert_same(first, second)
    assert cache_path(key, tmp_path).parent == tmp_path / "features"
    assert [p.name for p in (tmp_path / "features").iterdir()] == [cache_path(key, tmp_path).name]
    cached_signalset({**key, "size": 1}, compute, cache_dir=tmp_path)
    assert len(calls) == 2


def test_disabled_cache_always_computes_and_writes_nothing(tmp_path: Path) -> None:
    calls = []
    for _ in range(2):
        cached_signalset(
            {"k": 1}, lambda: calls.append(1) or make_set(), cache_dir=tmp_path, enabled=False
        )
    assert len(calls) == 2 and not (tmp_path / "features").exists()


def test_default_location_follows_physiodl_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PHYSIODL_CACHE", str(tmp_path / "c"))
    assert cache_path({"k": 1}).parent == tmp_path / "c" / "features"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_key"])
def test_unreadable_file_is_recomputed_with_a_warning(tmp_path: Path, damage: str) -> None:
    key = {"k": 1}
    path = cache_path(key, tmp_path)
    cached_signalset(key, make_set, cache_dir=tmp_path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip")
    else:
        save_signalset(make_set(True), path, key_json='{"k":2}')
    with pytest.warns(UserWarning, match="recomputing"):
        ss = cached_signalset(key, make_set, cache_dir=tmp_path)
    assert_same(ss, make_set())
    assert_same(load_signalset(path), make_set())  # repaired on disk


def test_a_failed_write_leaves_no_file_behind(tmp_path: Path, monkeypatch) -> None:
    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "_write_concatenated", crash)
    with pytest.raises(KeyboardInterrupt):
        cached_signalset({"k": 1}, make_set, cache_dir=tmp_path)
    assert list((tmp_path / "features").iterdir()) == []


def test_an_unwritable_cache_warns_and_returns_the_result(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="could not write"):
        ss = cached_signalset({"k": 1}, make_set, cache_dir=blocker)
    assert_same(ss, make_set())


def test_keys_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        cached_signalset({"k": object()}, make_set, cache_dir=tmp_path)
    path = cache_path({"p": Path("/a"), "v": np.int64(3), "t": (1, 2)}, tmp_path)
    assert path == cache_path({"p": "/a", "v": 3, "t": [1, 2]}, tmp_path)
