"""Synthetic peak-finding events shaped like LHCb's PV-finder data (the seed's ``.npz`` form).

Each event is a line of ``length`` bins (PV-finder: 4,000 bins of 100 µm along the beam, z from
-100 to 300 mm). It holds a random number of *primary vertices* (the true peaks), each with a
track count drawn from a heavy-tailed (log-normal) law, plus *background*: secondary vertices
(heavy-flavour and strange decays, a few tracks each, displaced forward and sideways) and
poorly measured random tracks. Every track is smeared by its own resolution and adds a
Gaussian kernel to the inputs, like PV-finder's kernel density estimate (KDE) of track
points of closest approach:

====================  ===================================================================
channel               content
====================  ===================================================================
``density``           the KDE: sum of the track kernels, with additive noise where tracks are
``density_sharp``     ``sqrt`` of the summed squared kernels: weighs well-measured tracks more
``x``, ``y``          kernel-weighted mean transverse track position (mm), 0 where no track is;
                      primary vertices sit on the beam line, secondary ones off it
====================  ===================================================================

The target ``y`` has a bump of height 1 per *visible* primary vertex (at least
``visible_tracks`` tracks) whose width shrinks with its track count (the vertex resolution),
bumps combined by their maximum; bins within ``mask_halfwidth`` of an invisible vertex are NaN
(neither a miss nor a false positive there). Background gives input bumps without targets.

The defaults follow the published LHCb Run 3 / PV-finder setting, not any model: ν = 7.6
interactions per crossing, of which ~5.6 visible, a 45 mm (450-bin) long luminous region, and
track multiplicities with a median of 10; `event_statistics` measures what they give (the
numbers are in ``docs/peaks.md``). Difficulty knobs: ``mean_vertices`` (peak density),
``z_spread`` (closeness of peaks), ``noise``, ``track_median`` / ``track_log_sd`` (share of weak
peaks), ``secondaries_per_vertex`` and ``random_track_fraction`` (background).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from scipy.signal import find_peaks

from physiodl.errors import RecipeError
from physiodl.signalset import SignalSet

CHANNELS = ("density", "density_sharp", "x", "y")
BIN_MM = 0.1  # PV-finder: 100 µm bins
_KERNEL_HALF_WIDTH = 24  # bins each side of a track; kernels are clipped at 6 bins' sigma
_MAX_TRACK_SIGMA = 6.0


@dataclass(frozen=True)
class PeakEventConfig:
    """Generator settings; the defaults are the PV-finder-like default difficulty.

    Attributes:
        length: bins per event.
        mean_vertices: Poisson mean of primary vertices per event (LHCb Run 3: ν = 7.6).
        z_centre: centre of the luminous region, bins (z = 0 mm in PV-finder's window).
        z_spread: standard deviation of vertex positions, bins (45 mm); smaller is denser.
        track_median: median tracks per primary vertex (log-normal law).
        track_log_sd: log-normal sigma of the track count: larger gives more weak and more
            very strong vertices.
        visible_tracks: a vertex with at least this many tracks is a target (LHCb: 5).
        track_sigma: median z resolution of one track, bins (log-normal, sigma 0.5).
        beam_width_mm: transverse spread of primary vertices around the beam line.
        track_xy_mm: transverse resolution of one track.
        secondaries_per_vertex: Poisson mean of secondary vertices per primary vertex.
        secondary_flight: mean forward flight of a secondary vertex, bins (exponential).
        secondary_angle: transverse displacement per unit of flight (a typical opening angle).
        random_track_fraction: poorly measured random tracks per primary-vertex track.
        noise: additive noise on ``density`` where tracks are, relative to the peak of one
            median track's kernel.
        target_width: target bump sigma of a vertex with ``visible_tracks`` tracks, bins;
            it shrinks as ``1 / sqrt(tracks)``.
        target_min_width: smallest target sigma, bins.
        mask_halfwidth: bins each side of an invisible vertex set to NaN in the target.
    """

    length: int = 4000
    mean_vertices: float = 7.6
    z_centre: float = 1000.0
    z_spread: float = 450.0
    track_median: float = 10.0
    track_log_sd: float = 1.2
    visible_tracks: int = 5
    track_sigma: float = 2.0
    beam_width_mm: float = 0.04
    track_xy_mm: float = 0.05
    secondaries_per_vertex: float = 0.4
    secondary_flight: float = 50.0
    secondary_angle: float = 0.1
    random_track_fraction: float = 0.05
    noise: float = 0.05
    target_width: float = 2.5
    target_min_width: float = 0.5
    mask_halfwidth: int = 8

    def __post_init__(self) -> None:
        positive = ("length", "track_median", "track_sigma", "target_width", "target_min_width")
        non_negative = (
            "mean_vertices",
            "z_spread",
            "track_log_sd",
            "beam_width_mm",
            "track_xy_mm",
            "secondaries_per_vertex",
            "secondary_flight",
            "secondary_angle",
            "random_track_fraction",
            "noise",
            "mask_halfwidth",
        )
        bad = [n for n in positive if getattr(self, n) <= 0]
        bad += [n for n in non_negative if getattr(self, n) < 0]
        if self.visible_tracks < 1:
            bad.append("visible_tracks")
        if self.length < 2 * _KERNEL_HALF_WIDTH:
            bad.append("length")
        if bad:
            values = ", ".join(f"{n}={getattr(self, n)!r}" for n in sorted(set(bad)))
            raise RecipeError(
                f"synthetic-peaks: invalid settings {values}: sizes must be positive, "
                f"rates non-negative, length >= {2 * _KERNEL_HALF_WIDTH}"
            )

    @classmethod
    def of(cls, **settings: Any) -> PeakEventConfig:
        """From keyword settings; an unknown name is a `RecipeError` listing the allowed."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise RecipeError(
                f"synthetic-peaks has no setting {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(names))}"
            )
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PeakEvents:
    """Generated events in the seed's form plus the truth behind them.

    ``X`` ``(n, 4, length)`` and ``y`` ``(n, length)`` float32 (NaN = masked bins);
    ``vertices``: one ``(k, 3)`` array per event of (z in bins, tracks, visible 0/1);
    ``secondaries``: background vertices per event.
    """

    X: np.ndarray
    y: np.ndarray
    vertices: list[np.ndarray]
    secondaries: np.ndarray


def peaks_simulate(
    n_events: int, seed: int = 0, config: PeakEventConfig | None = None, first: int = 0
) -> PeakEvents:
    """Generate events ``first .. first + n_events - 1`` of the stream of ``seed``.

    Event ``i`` depends only on ``seed``, ``i`` and ``config``: the first 5,000 events of a
    10,000-event set are the 5,000-event set.
    """
    config = config or PeakEventConfig()
    if n_events < 1:
        raise RecipeError(f"synthetic-peaks: events must be >= 1, got {n_events}")
    X = np.empty((n_events, len(CHANNELS), config.length), dtype=np.float32)
    y = np.empty((n_events, config.length), dtype=np.float32)
    vertices = []
    secondaries = np.empty(n_events, dtype=np.int64)
    for k in range(n_events):
        rng = np.random.default_rng([seed, first + k])
        X[k], y[k], truth, secondaries[k] = _event(rng, config)
        vertices.append(truth)
    return PeakEvents(X=X, y=y, vertices=vertices, secondaries=secondaries)


def without_inputs(events: PeakEvents) -> PeakEvents:
    """``events`` without ``X`` (enough for `event_statistics`, a fraction of the memory)."""
    return replace(events, X=events.X[:0])


def load(events: int = 5000, seed: int = 0, first: int = 0, **settings: Any) -> SignalSet:
    """Generated events as a `SignalSet` (the `physiodl.datasets.peaks_npz.load` form).

    Args:
        events: number of events.
        seed: generator seed (the maintainers check scores on seeds not used in training).
        first: index of the first event in the seed's stream.
        settings: `PeakEventConfig` difficulty settings.
    """
    from physiodl.datasets.peaks_npz import events_signalset

    config = PeakEventConfig.of(**settings)
    generated = peaks_simulate(events, seed, config, first)
    ids = [f"s{seed}-{first + i:06d}" for i in range(events)]
    digest = hashlib.sha256(generated.X.tobytes())
    digest.update(generated.y.tobytes())
    meta = {
        "dataset": "synthetic-peaks",
        "source": f"physiodl.datasets.synthetic_peaks (seed {seed}, events {first}..)",
        "sha256": digest.hexdigest(),
        "generator": config.to_dict(),
    }
    return events_signalset(generated.X, generated.y, ids, meta=meta)


def _event(
    rng: np.random.Generator, c: PeakEventConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One event: inputs ``(4, length)``, target ``(length,)``, vertex truth, secondaries."""
    margin = 2 * c.mask_halfwidth
    n_pv = rng.poisson(c.mean_vertices)
    z_pv = _positions(rng, n_pv, c.z_centre, c.z_spread, margin, c.length - margin)
    tracks = np.maximum(1, np.rint(rng.lognormal(math.log(c.track_median), c.track_log_sd, n_pv)))
    tracks = tracks.astype(np.int64)
    xy_pv = rng.normal(0.0, c.beam_width_mm, (n_pv, 2))

    n_sv = rng.poisson(c.secondaries_per_vertex, n_pv)
    parent = np.repeat(np.arange(n_pv), n_sv)
    flight = rng.exponential(c.secondary_flight, len(parent))
    z_sv = z_pv[parent] + flight
    xy_sv = xy_pv[parent] + flight[:, None] * BIN_MM * rng.normal(
        0, c.secondary_angle, (len(parent), 2)
    )
    tracks_sv = 2 + rng.poisson(1.5, len(parent))

    n_random = rng.poisson(c.random_track_fraction * tracks.sum())
    z_random = rng.normal(c.z_centre, 1.3 * c.z_spread, n_random)
    xy_random = rng.normal(0.0, 0.3, (n_random, 2))

    origin_z = np.concatenate([np.repeat(z_pv, tracks), np.repeat(z_sv, tracks_sv), z_random])
    origin_xy = np.concatenate(
        [np.repeat(xy_pv, tracks, axis=0), np.repeat(xy_sv, tracks_sv, axis=0), xy_random]
    )
    sigma = rng.lognormal(math.log(c.track_sigma), 0.5, len(origin_z))
    sigma[len(origin_z) - n_random :] *= 2.5  # random tracks are poorly measured
    sigma = np.minimum(sigma, _MAX_TRACK_SIGMA)
    z_track = origin_z + rng.normal(0.0, sigma)
    xy_track = origin_xy + rng.normal(0.0, c.track_xy_mm, origin_xy.shape)

    x = _inputs(rng, c, z_track, sigma, xy_track)
    y = _target(c, z_pv, tracks)
    truth = np.column_stack([z_pv, tracks, tracks >= c.visible_tracks]).astype(np.float64)
    return x, y, truth, len(parent)


def _positions(
    rng: np.random.Generator, n: int, centre: float, spread: float, low: float, high: float
) -> np.ndarray:
    """``n`` normal positions redrawn until they lie in ``[low, high)``."""
    z = rng.normal(centre, spread, n)
    outside = (z < low) | (z >= high)
    while outside.any():
        z[outside] = rng.normal(centre, spread, int(outside.sum()))
        outside = (z < low) | (z >= high)
    return z


def _inputs(
    rng: np.random.Generator,
    c: PeakEventConfig,
    z: np.ndarray,
    sigma: np.ndarray,
    xy: np.ndarray,
) -> np.ndarray:
    """The four input channels from track positions, resolutions and transverse positions."""
    offsets = np.arange(-_KERNEL_HALF_WIDTH, _KERNEL_HALF_WIDTH + 1)
    bins = np.floor(z).astype(np.int64)[:, None] + offsets
    kernel = np.exp(-0.5 * ((bins + 0.5 - z[:, None]) / sigma[:, None]) ** 2)
    kernel /= math.sqrt(2 * math.pi) * sigma[:, None]
    inside = (bins >= 0) & (bins < c.length)
    index, weight = bins[inside], kernel[inside]
    density = np.bincount(index, weight, c.length)
    sharp = np.sqrt(np.bincount(index, weight**2, c.length))
    moments = [np.bincount(index, (kernel * xy[:, k : k + 1])[inside], c.length) for k in (0, 1)]
    occupied = density > 1e-3
    one_track_peak = 1 / (math.sqrt(2 * math.pi) * c.track_sigma)
    noisy = density + c.noise * one_track_peak * rng.standard_normal(c.length) * occupied
    out = np.zeros((len(CHANNELS), c.length), dtype=np.float32)
    out[0] = np.maximum(noisy, 0.0)
    out[1] = sharp
    for k in (0, 1):
        out[2 + k] = np.divide(moments[k], density, out=np.zeros(c.length), where=occupied)
    return out


def _target(c: PeakEventConfig, z: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """Bumps of height 1 at visible vertices (max-combined), NaN around invisible ones."""
    y = np.zeros(c.length, dtype=np.float64)
    centres = np.arange(c.length) + 0.5
    visible = tracks >= c.visible_tracks
    for z_v, n in zip(z[visible], tracks[visible], strict=True):
        width = max(c.target_min_width, c.target_width * math.sqrt(c.visible_tracks / n))
        half = math.ceil(4 * width)
        lo, hi = max(0, int(z_v) - half), min(c.length, int(z_v) + half + 1)
        bump = np.exp(-0.5 * ((centres[lo:hi] - z_v) / width) ** 2)
        np.maximum(y[lo:hi], bump, out=y[lo:hi])
    for z_v in z[~visible]:
        lo = max(0, int(z_v) - c.mask_halfwidth)
        hi = min(c.length, int(z_v) + c.mask_halfwidth + 1)
        region = y[lo:hi]
        region[region < 0.01] = np.nan
    return y.astype(np.float32)


def event_statistics(
    parts: PeakEvents | Sequence[PeakEvents],
    tolerance: int = 5,
    truth_height: float = 0.5,
    weak_tracks: int = 10,
) -> dict[str, float]:
    """What a generated set (or its parts) looks like: the figures quoted in the docs.

    ``close_pair_share`` is the share of visible vertices with another visible vertex within
    ``tolerance`` bins; ``weak_share`` that of visible vertices with fewer than ``weak_tracks``
    tracks; ``target_peaks_per_event`` counts target maxima above ``truth_height`` (the truth
    the metrics use: close vertices can merge into one maximum).
    """
    parts = [parts] if isinstance(parts, PeakEvents) else list(parts)
    visible, weak, close, all_vertices, target_peaks, secondaries = [], [], [], [], [], []
    masked = known = 0
    for events in parts:
        for truth in events.vertices:
            z, tracks, seen = truth[:, 0], truth[:, 1], truth[:, 2].astype(bool)
            all_vertices.append(len(z))
            visible.append(int(seen.sum()))
            weak.append(int((seen & (tracks < weak_tracks)).sum()))
            gaps = np.diff(np.sort(z[seen])) <= tolerance
            close.append(int(np.count_nonzero(np.r_[False, gaps] | np.r_[gaps, False])))
        target_peaks += [
            len(find_peaks(np.nan_to_num(t, nan=0.0), height=truth_height)[0]) for t in events.y
        ]
        secondaries.append(events.secondaries)
        masked += int(np.isnan(events.y).sum())
        known += events.y.size
    n_visible = max(sum(visible), 1)
    return {
        "events": len(visible),
        "vertices_per_event": float(np.mean(all_vertices)),
        "visible_per_event": float(np.mean(visible)),
        "visible_per_event_sd": float(np.std(visible)),
        "events_without_visible": float(np.mean(np.array(visible) == 0)),
        "weak_share": sum(weak) / n_visible,
        "close_pair_share": sum(close) / n_visible,
        "target_peaks_per_event": float(np.mean(target_peaks)),
        "secondaries_per_event": float(np.mean(np.concatenate(secondaries))),
        "masked_bin_share": masked / known,
    }
