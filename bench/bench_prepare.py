"""Data preparation of the shared CinC 2017 set: physiodl (cold and cached) vs the seed's code.

Each measurement runs in a fresh subprocess, which reports its wall time and peak RSS
(``resource.getrusage``). Prints one JSON object with the figures and the ratios.

- ``imports``: the modules only (the RSS floor of every measurement).
- ``cold``: empty cache: load N and A records >= 4000 samples, spectrogram (nperseg 32,
  noverlap 4) through `physiodl.cache.cached_signalset`, stratified 80/20 split, normaliser
  fitted on the training records, both parts normalised.
- ``cached``: the same again, the spectrogram now read from the cache.
- ``seed``: the seed's approach: every record padded to 18,286 samples, one spectrogram call over
  the padded array, per-frequency mean/std over all of it (padding and validation included).
  (The seed also held torch copies; those are left out, so its figure is a lower bound.)

Usage: ``python bench/bench_prepare.py [--data ZIP] [--max-records N]``; the cache is a
temporary folder, removed at the end. Targets: peak <= 1 GiB, cached re-run <= 2 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from physiodl.cache import cached_signalset, file_fingerprint
from physiodl.datasets import cinc2017
from physiodl.signalset import SignalSet
from physiodl.splits import stratified_split
from physiodl.transforms.normalise import fit_normaliser
from physiodl.transforms.spectral import spectrogram

CLASSES = ("N", "A")
MIN_LENGTH = 4000
SEED_MAX_LENGTH = 18286
NPERSEG, NOVERLAP = 32, 4
MEASUREMENTS = ("imports", "cold", "cached", "seed")


def default_zip() -> Path:
    root = Path(__file__).resolve().parents[1]
    data = Path(os.environ.get("PHYSIODL_DATA", root.parent / "shared" / "data"))
    return data / "cinc2017" / "training2017.zip"


def load_raw(args: argparse.Namespace) -> SignalSet:
    return cinc2017.load(
        args.data,
        classes=CLASSES,
        min_length=MIN_LENGTH,
        max_records=args.max_records,
        progress=False,
    )


def physiodl_prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Load and spectrogram (cached), split, fit on training records, normalise."""
    started = time.perf_counter()
    key = {
        "dataset": "cinc2017",
        "file": file_fingerprint(args.data),
        "options": {"classes": CLASSES, "min_length": MIN_LENGTH, "max_records": args.max_records},
        "features": {"spectrogram": {"nperseg": NPERSEG, "noverlap": NOVERLAP}},
        "format": 1,
    }
    features = cached_signalset(
        key,
        lambda: spectrogram(load_raw(args), nperseg=NPERSEG, noverlap=NOVERLAP),
        cache_dir=args.cache_dir,
    )
    loaded = time.perf_counter()
    split = stratified_split(np.asarray(features.targets), validation=0.2, seed=12345)
    train = features.subset(split.train)
    normaliser = fit_normaliser(train, kind="per_channel")
    train = normaliser.apply(train)
    validation = normaliser.apply(features.subset(split.validation))
    done = time.perf_counter()
    return {
        "records": len(features),
        "train_records": len(train),
        "validation_records": len(validation),
        "frames": int(features.lengths.sum()),
        "features_seconds": loaded - started,
        "split_normalise_seconds": done - loaded,
        "seconds": done - started,
        "checksum": features_digest(features),
        "mean": normaliser.mean.tolist(),
        "std": normaliser.std.tolist(),
    }


def features_digest(ss: SignalSet) -> str:
    """SHA-256 of every record's float32 bytes and shape (not timed)."""
    digest = hashlib.sha256()
    for x in ss.signals:
        digest.update(repr(x.shape).encode() + np.ascontiguousarray(x).tobytes())
    return digest.hexdigest()


def seed_prepare(args: argparse.Namespace) -> dict[str, Any]:
    """The seed: pad to 18,286, one spectrogram call, statistics over the padded array."""
    from scipy import signal

    started = time.perf_counter()
    raw = load_raw(args)
    samples = raw.padded(SEED_MAX_LENGTH)[:, 0]
    _, _, sxx = signal.spectrogram(samples, scaling="spectrum", nperseg=NPERSEG, noverlap=NOVERLAP)
    mean = np.mean(sxx, axis=(0, 2), keepdims=True)
    sxx = sxx - mean
    std = np.std(sxx, axis=(0, 2), keepdims=True)
    sxx = sxx / std
    features = sxx.transpose(0, 2, 1)
    return {
        "records": len(raw),
        "shape": list(features.shape),
        "seconds": time.perf_counter() - started,
        "mean": mean.ravel().tolist(),
        "std": std.ravel().tolist(),
    }


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one measurement in this process; add peak RSS."""
    result: dict[str, Any] = {}
    if name in ("cold", "cached"):
        result = physiodl_prepare(args)
    elif name == "seed":
        result = seed_prepare(args)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in a fresh interpreter; adds the process's whole wall time."""
    command = [sys.executable, __file__, "--measure", name, "--data", str(args.data)]
    command += ["--cache-dir", str(args.cache_dir)]
    if args.max_records is not None:
        command += ["--max-records", str(args.max_records)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measurement {name!r} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    cold, cached, seed = results["cold"], results["cached"], results["seed"]
    ours_mean, seed_mean = np.array(cold["mean"]), np.array(seed["mean"])
    return {
        "records": cold["records"],
        "figures": {
            name: {k: v for k, v in r.items() if k not in ("mean", "std", "checksum")}
            for name, r in results.items()
        },
        "ratios": {
            "seed_peak_over_cold_peak": seed["peak_rss_mib"] / cold["peak_rss_mib"],
            "seed_seconds_over_cold_seconds": seed["seconds"] / cold["seconds"],
            "cold_seconds_over_cached_seconds": cold["seconds"] / cached["seconds"],
        },
        "checks": {
            "cached_equals_cold": cold["checksum"] == cached["checksum"],
            "peak_under_1_gib": max(cold["peak_rss_mib"], cached["peak_rss_mib"]) <= 1024,
            "cached_rerun_under_2_s": cached["seconds"] <= 2.0,
            "cached_process_under_2_s": cached["process_seconds"] <= 2.0,
            # the seed's statistics include padding (zeros) and the validation records
            "seed_mean_over_ours_per_frequency": (seed_mean / ours_mean).round(3).tolist(),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_zip())
    parser.add_argument("--max-records", type=int, default=None)
    parser.add_argument("--measure", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args)))
        return
    with tempfile.TemporaryDirectory(prefix="physiodl-bench-") as cache_dir:
        args.cache_dir = Path(cache_dir)
        results = {name: run_child(name, args) for name in MEASUREMENTS}
    print(json.dumps(summarise(results), indent=2))


if __name__ == "__main__":
    main()
