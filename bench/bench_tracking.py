"""Heart-rate decoding cost: Viterbi tracking against per-window argmax, and the models' speed.

For a recording of ``--hours`` hours (8 s windows every 2 s, 1 bpm bins from 30 to 230 bpm),
times the per-window decoding (argmax + refinement), offline Viterbi and causal Viterbi with a
4 bpm limit, and the forward pass of `SpectralPeak` and `SpectralConvNet` over all windows
(25 Hz, 5 channels). Prints one JSON object with the seconds, windows per second and the
ratios of tracking to per-window decoding. Usage: ``python bench/bench_tracking.py [--hours H]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from physiodl.models import build_model
from physiodl.tracking import ValueBins


def _seconds(work: object, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args()
    windows = int(args.hours * 3600 / 2)
    bins = ValueBins(30, 230, 1)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(windows, bins.count))
    decode = {
        "per_window": lambda: bins.decode(logits, None, causal=False),
        "viterbi_offline": lambda: bins.decode(logits, 4.0, causal=False),
        "viterbi_causal": lambda: bins.decode(logits, 4.0, causal=True),
    }
    figures: dict[str, object] = {"windows": windows, "bins": bins.count}
    for name, work in decode.items():
        seconds = _seconds(work)
        figures[f"{name}_s"] = round(seconds, 4)
        figures[f"{name}_windows_per_s"] = round(windows / seconds)
    for name in ("viterbi_offline", "viterbi_causal"):
        figures[f"{name}_vs_per_window"] = round(
            figures[f"{name}_s"] / figures["per_window_s"],
            1,  # type: ignore[operator]
        )
    x = torch.from_numpy(rng.normal(size=(windows, 5, 200)).astype(np.float32))
    common = {"in_channels": 5, "out_size": bins.count, "input_length": 200, "fs": 25.0}
    for arch, hparams in (
        ("SpectralPeak", {"ppg_channels": [0, 1], "acc_channels": [2, 3, 4]}),
        ("SpectralConvNet", {"ppg_channels": [0, 1], "acc_channels": [2, 3, 4]}),
    ):
        model = build_model(arch, **common, **hparams).eval()

        def forward(model: torch.nn.Module = model) -> None:
            with torch.inference_mode():
                for lo in range(0, windows, 512):
                    model(x[lo : lo + 512])

        seconds = _seconds(forward, repeats=1)
        figures[f"{arch}_forward_s"] = round(seconds, 3)
        figures[f"{arch}_windows_per_s"] = round(windows / seconds)
    figures["threads"] = torch.get_num_threads()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
