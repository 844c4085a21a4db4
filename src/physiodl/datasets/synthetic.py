"""Synthetic single-lead ECGs in the four CinC 2017 classes, for tests and demos.

Each beat is a sum of Gaussian bumps (P, Q, R, S, T), as in McSharry et al.'s ECGSYN
(IEEE Trans Biomed Eng 2003;50(3):289-294), placed on a beat-time series that depends on
the rhythm. The signals are in mV and look like AliveCor recordings to a classifier; they
are not a physiological model.

Rhythms (``rhythm`` argument, also the class labels of `load`):

- ``"N"`` sinus rhythm: regular RR intervals with mild variability (respiratory sinus
  arrhythmia of about 4 % plus 1.5 % random), a P wave before every QRS.
- ``"A"`` atrial fibrillation: irregularly irregular RR intervals (independent,
  log-normal, coefficient of variation about 0.2), no P waves, fibrillatory f-waves of
  4-9 Hz and 0.03-0.12 mV on the baseline.
- ``"O"`` other rhythm, one of: bigeminy (every second beat a premature ventricular
  beat: wide QRS, no P wave, inverted T, then a compensatory pause), isolated premature
  ventricular beats (12 % of beats), sinus bradycardia (0.6 x ``heart_rate``) or sinus
  tachycardia (1.7 x ``heart_rate``).
- ``"~"`` noisy: a weak sinus ECG (0.1-0.4 of the usual amplitude) buried in motion
  artefact (low-pass noise of 0.3-1 mV) and bursts of muscle noise.

Every rhythm gets a random overall amplitude (0.6-1.6), baseline wander (two slow
sinusoids, up to 0.15 mV each), white noise (0.005-0.03 mV) and, in 30 % of records,
mains hum at 50 Hz (when ``fs`` allows it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from physiodl.errors import RecipeError
from physiodl.signalset import SignalSet

RHYTHMS = {
    "N": "sinus rhythm",
    "A": "atrial fibrillation",
    "O": "other rhythm (ectopic beats, bradycardia, tachycardia)",
    "~": "noisy",
}
# Heart rates (bpm) drawn per record by `load`.
HEART_RATES = {"N": (55.0, 95.0), "A": (75.0, 140.0), "O": (55.0, 95.0), "~": (60.0, 100.0)}

# Waves as (offset from the R peak in s at RR = 1 s, amplitude mV, width s); offsets scale
# with sqrt(RR) (Bazett), so the T wave comes earlier at fast rates.
_SINUS_BEAT = ((-0.20, 0.15, 0.025), (-0.035, -0.12, 0.010), (0.0, 1.0, 0.011),
               (0.035, -0.25, 0.011), (0.28, 0.30, 0.055))  # fmt: skip
_NO_P_BEAT = _SINUS_BEAT[1:]
_VENTRICULAR_BEAT = ((0.0, 1.3, 0.035), (0.06, -0.45, 0.04), (0.32, -0.35, 0.08))


def ecg_simulate(
    duration_s: float,
    fs: float,
    *,
    rhythm: str = "N",
    heart_rate: float = 70.0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """One synthetic single-lead ECG in mV, float32 of ``round(duration_s * fs)`` samples.

    Args:
        duration_s: length in seconds.
        fs: sampling rate in Hz.
        rhythm: ``"N"``, ``"A"``, ``"O"`` or ``"~"`` (see the module docstring).
        heart_rate: mean (ventricular) rate in beats per minute, 20-250.
        rng: a generator or a seed; the same seed gives the same signal.

    Examples:
        >>> x = ecg_simulate(10.0, 300.0, rhythm="A", rng=0)
        >>> x.shape, x.dtype
        ((3000,), dtype('float32'))
    """
    if rhythm not in RHYTHMS:
        raise RecipeError(f"rhythm {rhythm!r} is not one of {', '.join(RHYTHMS)}")
    if duration_s <= 0 or fs <= 0 or not 20 <= heart_rate <= 250:
        raise RecipeError(
            f"ecg_simulate needs duration_s > 0, fs > 0 and heart_rate in 20-250 bpm, got "
            f"{duration_s}, {fs}, {heart_rate}"
        )
    rng = np.random.default_rng(rng)
    n = round(duration_s * fs)
    t = np.arange(n) / fs
    rr_mean = 60.0 / heart_rate
    subtype = rng.choice(["bigeminy", "ectopic", "bradycardia", "tachycardia"])
    if rhythm == "O" and subtype in ("bradycardia", "tachycardia"):
        rr_mean /= 0.6 if subtype == "bradycardia" else 1.7
    n_beats = int(duration_s / (0.5 * rr_mean)) + 4
    start = -rng.uniform(0.0, rr_mean)
    if rhythm == "A":
        rr = rr_mean * rng.lognormal(-0.02, 0.2, n_beats)
        ventricular = np.zeros(n_beats, dtype=bool)
    else:
        phase = 2 * np.pi * rng.uniform(0.15, 0.35) * rr_mean * np.arange(n_beats)
        rr = rr_mean * (1 + 0.04 * np.sin(phase + rng.uniform(0, 2 * np.pi)))
        rr *= 1 + 0.015 * rng.standard_normal(n_beats)
        ventricular = np.zeros(n_beats, dtype=bool)
        if rhythm == "O" and subtype == "bigeminy":
            ventricular[1::2] = True
        elif rhythm == "O" and subtype == "ectopic":
            ventricular = rng.random(n_beats) < 0.12
        # A premature beat comes at 60 % of the RR, followed by a compensatory pause.
        rr[:-1][ventricular[1:]] *= 0.6
        rr[ventricular] *= 1.4
    rr = np.maximum(rr, 0.25)
    beats = start + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    keep = beats < duration_s + 0.5
    beats, rr, ventricular = beats[keep], rr[keep], ventricular[keep]

    scale = rng.uniform(0.6, 1.6) * (rng.uniform(0.1, 0.4) if rhythm == "~" else 1.0)
    beat_amp = scale * (
        1 + 0.08 * np.sin(2 * np.pi * 0.25 * beats) + 0.03 * rng.standard_normal(len(beats))
    )
    normal = _NO_P_BEAT if rhythm == "A" else _SINUS_BEAT
    x = _render_beats(n, fs, beats[~ventricular], rr[~ventricular], beat_amp[~ventricular], normal)
    x += _render_beats(
        n, fs, beats[ventricular], rr[ventricular], beat_amp[ventricular], _VENTRICULAR_BEAT
    )

    if rhythm == "A":
        f_wave = rng.uniform(4.0, 9.0) + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t)
        amplitude = rng.uniform(0.03, 0.12) * (1 + 0.3 * np.sin(2 * np.pi * 0.2 * t))
        x += amplitude * np.sin(2 * np.pi * np.cumsum(f_wave) / fs + rng.uniform(0, 2 * np.pi))
    if rhythm == "~":
        x += _noise_artefacts(n, fs, rng)
    for _ in range(2):
        x += rng.uniform(0, 0.15) * np.sin(
            2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 2 * np.pi)
        )
    x += rng.uniform(0.005, 0.03) * rng.standard_normal(n)
    if rng.random() < 0.3 and fs > 100:
        x += rng.uniform(0.005, 0.03) * np.sin(2 * np.pi * 50.0 * t)
    return x.astype(np.float32)


def _render_beats(
    n: int,
    fs: float,
    beats: np.ndarray,
    rr: np.ndarray,
    amplitude: np.ndarray,
    waves: Sequence[tuple[float, float, float]],
) -> np.ndarray:
    """Sum of Gaussian bumps, one per wave and beat, on ``n`` samples."""
    offset, height, width = (np.array(v) for v in zip(*waves, strict=True))
    centers = (beats[:, None] + offset[None, :] * np.sqrt(rr)[:, None]).ravel()
    heights = (amplitude[:, None] * height[None, :]).ravel()
    widths = np.broadcast_to(width, (len(beats), len(waves))).ravel()
    half = int(np.ceil(4 * width.max() * fs))
    index = np.round(centers * fs).astype(np.int64)[:, None] + np.arange(-half, half + 1)
    bumps = heights[:, None] * np.exp(
        -0.5 * ((index / fs - centers[:, None]) / widths[:, None]) ** 2
    )
    inside = (index >= 0) & (index < n)
    return np.bincount(index[inside], weights=bumps[inside], minlength=n)


def _noise_artefacts(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Motion artefact (low-pass noise) plus bursts of muscle (white) noise."""
    from scipy import signal as sps  # imported here: scipy.signal is slow to import

    cutoff = min(rng.uniform(1.0, 10.0), 0.4 * fs)
    motion = sps.sosfilt(sps.butter(2, cutoff, fs=fs, output="sos"), rng.standard_normal(n))
    motion *= rng.uniform(0.3, 1.0) / (motion.std() + 1e-12)
    bursts = np.zeros(n)
    for _ in range(rng.integers(1, 5)):
        length = int(rng.uniform(0.1, 0.3) * n)
        begin = int(rng.integers(0, max(1, n - length)))
        bursts[begin : begin + length] += rng.uniform(0.05, 0.3) * rng.standard_normal(length)
    return motion + bursts


def load(
    n_records: int = 200,
    classes: Sequence[str] = ("N", "A"),
    fs: float = 300.0,
    min_duration_s: float = 9.0,
    max_duration_s: float = 60.0,
    class_balance: Mapping[str, float] | Sequence[float] | None = None,
    seed: int = 0,
) -> SignalSet:
    """A `SignalSet` of synthetic ECGs shaped like `physiodl.datasets.cinc2017.load`'s.

    Args:
        n_records: number of recordings.
        classes: rhythms to generate (``"N"``, ``"A"``, ``"O"``, ``"~"``), in target order.
        fs: sampling rate in Hz.
        min_duration_s, max_duration_s: each duration is uniform in this range.
        class_balance: relative class frequencies, a mapping class -> weight or one weight
            per class; ``None`` gives equal counts. Counts are exact (largest remainder).
        seed: the same seed gives the same records; record ``i`` depends only on
            ``seed`` and ``i``, the label order on ``seed`` and the counts.

    Returns:
        float32 ``(1, T)`` signals in mV, channels ``("ECG",)``, ids ``SYN00001``...,
        groups = ids, int64 targets indexing ``classes``, ``meta["sha256"]`` of the data.
    """
    classes = tuple([classes] if isinstance(classes, str) else classes)
    if not classes or any(c not in RHYTHMS for c in classes) or len(set(classes)) != len(classes):
        raise RecipeError(
            f"synthetic-ecg: classes {list(classes)} must be distinct rhythms from "
            f"{', '.join(RHYTHMS)}"
        )
    if n_records < 1 or fs <= 0 or not 0 < min_duration_s <= max_duration_s:
        raise RecipeError(
            "synthetic-ecg: needs n_records >= 1, fs > 0 and 0 < min_duration_s <= "
            f"max_duration_s, got {n_records}, {fs}, {min_duration_s}, {max_duration_s}"
        )
    counts = _class_counts(n_records, classes, class_balance)
    rng = np.random.default_rng(seed)
    targets = rng.permutation(np.repeat(np.arange(len(classes), dtype=np.int64), counts))
    signals = []
    for code, child in zip(targets, np.random.SeedSequence(seed).spawn(n_records), strict=True):
        record_rng = np.random.default_rng(child)
        rhythm = classes[code]
        duration = record_rng.uniform(min_duration_s, max_duration_s)
        heart_rate = record_rng.uniform(*HEART_RATES[rhythm])
        x = ecg_simulate(duration, fs, rhythm=rhythm, heart_rate=heart_rate, rng=record_rng)
        signals.append(x[None, :])
    ids = tuple(f"SYN{i + 1:05d}" for i in range(n_records))
    digest = hashlib.sha256(targets.tobytes())
    for x in signals:
        digest.update(x.tobytes())
    return SignalSet(
        signals=signals,
        fs=float(fs),
        channels=("ECG",),
        ids=ids,
        targets=targets,
        classes=classes,
        groups=np.array(ids),
        meta={
            "dataset": "synthetic-ecg",
            "source": f"physiodl.datasets.synthetic (seed {seed})",
            "sha256": digest.hexdigest(),
            "excluded": {},
            "skipped": {},
        },
    )


def _class_counts(
    n_records: int,
    classes: tuple[str, ...],
    class_balance: Mapping[str, float] | Sequence[float] | None,
) -> np.ndarray:
    """Records per class, summing exactly to ``n_records`` (largest remainder)."""
    if class_balance is None:
        weights = np.ones(len(classes))
    elif isinstance(class_balance, Mapping):
        if set(class_balance) != set(classes):
            raise RecipeError(
                f"synthetic-ecg: class_balance keys {sorted(class_balance)} must be the "
                f"classes {list(classes)}"
            )
        weights = np.array([class_balance[c] for c in classes], dtype=float)
    else:
        weights = np.asarray(class_balance, dtype=float)
    if weights.shape != (len(classes),) or (weights < 0).any() or weights.sum() <= 0:
        raise RecipeError(
            f"synthetic-ecg: class_balance {class_balance!r} needs one non-negative weight "
            f"per class of {list(classes)}, not all zero"
        )
    exact = n_records * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n_records - counts.sum()]] += 1
    return counts
