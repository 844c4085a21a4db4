"""The PV-finder-like event generator, `data synth peaks` and the seed-form `.npz` loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from physiodl.cli import main
from physiodl.datasets import load_dataset
from physiodl.datasets.peaks_npz import load as load_npz
from physiodl.datasets.peaks_npz import save_events
from physiodl.datasets.synthetic_peaks import (
    CHANNELS,
    PeakEventConfig,
    event_statistics,
    peaks_simulate,
)
from physiodl.errors import DataError, RecipeError

SMALL = PeakEventConfig(length=512, z_centre=256.0, z_spread=100.0)


@pytest.fixture(scope="module")
def default_events():
    """300 events at the default (PV-finder-like) difficulty."""
    return peaks_simulate(300, seed=11)


def test_default_difficulty_matches_the_pv_finder_setting(default_events) -> None:
    stats = event_statistics(default_events)
    assert default_events.X.shape == (300, 4, 4000)
    assert default_events.y.shape == (300, 4000)
    assert 5.0 <= stats["visible_per_event"] <= 6.2  # LHCb Run 3: 5.6 visible vertices
    assert 7.0 <= stats["vertices_per_event"] <= 8.2  # nu = 7.6 interactions
    assert stats["close_pair_share"] > 0.02  # pairs closer than the 5-bin tolerance exist
    assert 0.2 < stats["weak_share"] < 0.45  # vertices with 5-9 tracks
    assert 0.003 < stats["masked_bin_share"] < 0.015  # about 1 % NaN target bins
    assert stats["secondaries_per_event"] > 2  # background bumps without targets
    # the truth the metrics read from the target: a maximum per (resolved) visible vertex
    assert stats["visible_per_event"] - 0.3 < stats["target_peaks_per_event"]
    assert stats["target_peaks_per_event"] <= stats["visible_per_event"]


def test_targets_are_bumps_at_visible_vertices_and_nan_near_invisible(default_events) -> None:
    y = default_events.y
    known = y[~np.isnan(y)]
    assert known.min() >= 0.0 and known.max() <= 1.0
    assert np.isfinite(default_events.X).all()
    for truth, target in zip(default_events.vertices[:50], y[:50], strict=True):
        for z, tracks, visible in truth:
            bin_ = int(z)
            if visible:
                assert target[bin_] > 0.5, (z, tracks)
            elif np.isnan(target[bin_]):
                continue
            else:  # an invisible vertex is masked unless a visible bump covers its bin
                assert target[bin_] >= 0.01


def test_events_depend_only_on_seed_and_index() -> None:
    ten = peaks_simulate(10, seed=3, config=SMALL)
    again = peaks_simulate(10, seed=3, config=SMALL)
    tail = peaks_simulate(4, seed=3, config=SMALL, first=6)
    other = peaks_simulate(10, seed=4, config=SMALL)
    np.testing.assert_array_equal(ten.X, again.X)
    np.testing.assert_array_equal(ten.X[6:], tail.X)
    np.testing.assert_array_equal(ten.y[6:], tail.y)
    assert not np.array_equal(ten.X, other.X)


def test_difficulty_knobs_change_what_they_say() -> None:
    dense = event_statistics(peaks_simulate(200, 5, PeakEventConfig(mean_vertices=15.0)))
    weak = event_statistics(peaks_simulate(200, 5, PeakEventConfig(track_median=6.0)))
    base = event_statistics(peaks_simulate(200, 5))
    assert dense["visible_per_event"] > 1.7 * base["visible_per_event"]
    assert dense["close_pair_share"] > base["close_pair_share"]
    assert weak["weak_share"] > base["weak_share"] + 0.1
    with pytest.raises(RecipeError, match=r"no setting 'nois'.*noise"):
        PeakEventConfig.of(nois=0.1)
    with pytest.raises(RecipeError, match="z_spread=-1"):
        PeakEventConfig(z_spread=-1.0)


def test_synth_command_writes_seed_form_files_that_load_back(tmp_path: Path, capsys) -> None:
    out = tmp_path / "events"
    args = ["data", "synth", "peaks", "--events", "25", "--seed", "4", "--out", str(out)]
    settings = ["--per-file", "10", "--set", "length=512", "z_centre=256.0", "z_spread=100.0"]
    assert main([*args, *settings]) == 0
    files = sorted(out.glob("*.npz"))
    assert [f.name for f in files] == [f"peaks-seed4-00{k}.npz" for k in range(3)]
    with np.load(files[0]) as npz:
        assert sorted(npz.files) == ["X", "y"]
        assert npz["X"].shape == (10, 4, 512) and npz["X"].dtype == np.float32
    info = json.loads((out / "peaks-seed4.json").read_text())
    assert info["statistics"]["events"] == 25
    assert info["settings"]["length"] == 512
    loaded = load_dataset("peaks-npz", path=out)
    expected = peaks_simulate(25, 4, SMALL)
    assert len(loaded) == 25 and loaded.channels == CHANNELS and loaded.fs == 1.0
    np.testing.assert_array_equal(np.stack(loaded.signals), expected.X)
    np.testing.assert_array_equal(np.stack(loaded.targets), expected.y)
    assert loaded.ids[10] == "peaks-seed4-001:0"
    assert "visible_per_event" in capsys.readouterr().out


def test_generated_dataset_is_registered_with_its_settings() -> None:
    events = load_dataset("synthetic-peaks", events=5, seed=2, length=512, z_centre=256.0)
    assert len(events) == 5 and events.signals[0].shape == (4, 512)
    assert events.meta["generator"]["length"] == 512
    with pytest.raises(RecipeError, match="no setting 'lenght'"):
        load_dataset("synthetic-peaks", events=5, lenght=512)


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def events(n: int = 4, length: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.random((n, 4, length)).astype(np.float32)
    y = np.zeros((n, length), dtype=np.float32)
    y[:, 20] = 1.0
    return X, y


def test_npz_without_x_or_y_or_with_mismatched_lengths_is_an_error(tmp_path: Path) -> None:
    X, y = events()
    with pytest.raises(DataError, match=r"no array 'y'.*holds X"):
        load_npz(write_npz(tmp_path / "a.npz", X=X))
    with pytest.raises(DataError, match="no array 'X'"):
        load_npz(write_npz(tmp_path / "b.npz", y=y))
    with pytest.raises(DataError, match="mismatched lengths"):
        load_npz(write_npz(tmp_path / "c.npz", X=X, y=y[:3]))
    with pytest.raises(DataError, match="mismatched lengths"):
        load_npz(write_npz(tmp_path / "d.npz", X=X, y=y[:, :50]))
    with pytest.raises(DataError, match=r"expected X \(events, channels, bins\)"):
        load_npz(write_npz(tmp_path / "e.npz", X=X[:, 0], y=y))
    (tmp_path / "f.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load_npz(tmp_path / "f.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no \.npz files"):
        load_npz(tmp_path / "empty")


def test_nan_in_x_raises_or_is_skipped_and_counted(tmp_path: Path) -> None:
    X, y = events()
    X[2, 1, 5] = np.nan
    y[3] = np.nan  # no known target bin
    path = save_events(tmp_path / "bad.npz", X, y)
    with pytest.raises(DataError, match=r"event 2 \(bad:2\) has NaN or inf in X.*on_error"):
        load_npz(path)
    loaded = load_npz(path, on_error="skip")
    assert loaded.ids == ("bad:0", "bad:1")
    assert loaded.meta["skipped"] == {
        "NaN or inf in X": ["bad:2"],
        "no known target bin": ["bad:3"],
    }


def test_events_without_a_true_peak_are_kept_and_listed_or_excluded(tmp_path: Path) -> None:
    X, y = events()
    y[1] = 0.0
    y[2, :10] = np.nan
    y[2, 10:] = 0.0
    path = save_events(tmp_path / "empty.npz", X, y)
    kept = load_npz(path)
    assert len(kept) == 4
    assert kept.meta["empty_events"] == ["empty:1", "empty:2"]
    # NaN bins stay NaN (masked), never set to 0
    assert np.isnan(kept.targets[2][:10]).all()
    dropped = load_npz(path, exclude_empty=True)
    assert dropped.ids == ("empty:0", "empty:3")
    assert dropped.meta["excluded"] == {"no true peak": 2}


def test_several_files_make_one_dataset_of_one_shape(tmp_path: Path) -> None:
    X, y = events()
    save_events(tmp_path / "set" / "1.npz", X, y)
    save_events(tmp_path / "set" / "2.npz", X[:2], y[:2])
    both = load_npz(tmp_path / "set", max_events=5)
    assert both.ids == ("1:0", "1:1", "1:2", "1:3", "2:0")
    save_events(tmp_path / "set" / "3.npz", X[:, :, :32], y[:, :32])
    with pytest.raises(DataError, match="one dataset needs one shape"):
        load_npz(tmp_path / "set")
