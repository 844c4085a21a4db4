"""Peak-finding inference speed: events per second of the best model against the seed's BiLSTM.

Both models come from ``recipes/peaks.toml`` (its ``unet`` and ``seed-bilstm`` entries), or
from the checkpoints of a finished run (``--run runs/peaks/<run id>``), so the figures hold
for what the comparison trained. Events are generated at the default difficulty (4 channels
x 4,000 bins) and pass through the checkpoint's preprocessing; the timed part is the whole
per-event path of `physiodl predict` on features: windows, the model in
``torch.inference_mode`` and stitching, plus peak finding at the operating point. The two
models alternate ``--rounds`` times so that load from other processes hits both alike;
``ratio`` is best / seed events per second over all rounds, ``ratio_median`` the median of the
per-round ratios. Prints JSON.

    python bench/bench_peaks_inference.py [--run DIR] [--events 64] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from physiodl.checkpoint import TrainedModel, load_checkpoint
from physiodl.datasets import load_dataset
from physiodl.evaluation import predict_records
from physiodl.features import FeaturePipeline
from physiodl.models import build_model
from physiodl.outputs import event_peak_rows
from physiodl.recipes import load_recipe
from physiodl.tasks import make_task

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "peaks.toml"
MODELS = {"best": "unet", "seed": "seed-bilstm"}


def untrained(name: str, events: Any) -> TrainedModel:
    """The recipe's model ``name`` with fresh weights and its preprocessing fitted on events."""
    config = load_recipe(RECIPE)
    model_cfg = config.model(name)
    features = config.model_features(model_cfg)
    pipeline = FeaturePipeline.for_data(features, events.fs).fit(events)
    task = make_task("detection", **config.model_task_options(model_cfg))
    model = build_model(
        model_cfg.arch,
        in_channels=events.n_channels,
        out_size=1,
        input_length=features.chunks.length,
        **model_cfg.hparams,
    )
    return TrainedModel(model.eval(), task, pipeline, model_cfg.arch, {}, {}, {}, {})


def events_per_second(trained: TrainedModel, events: Any) -> float:
    chunks = trained.features.config.chunks
    features = trained.features(events)
    started = time.perf_counter()
    scores = predict_records(
        trained.model, trained.task, features, length=chunks.length, stride=chunks.eval_stride
    )
    event_peak_rows(trained.task, features.ids, None, list(scores))
    return len(events) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished peaks run directory")
    parser.add_argument("--events", type=int, default=64, help="events per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    events = load_dataset("synthetic-peaks", events=args.events, seed=99)
    models = {
        role: load_checkpoint(args.run / "models" / name / "best.ckpt")
        if args.run
        else untrained(name, events)
        for role, name in MODELS.items()
    }
    for trained in models.values():  # warm-up
        events_per_second(trained, events.subset(range(4)))
    speeds: dict[str, list[float]] = {role: [] for role in models}
    for number in range(args.rounds):
        order = list(models) if number % 2 == 0 else list(models)[::-1]
        for role in order:
            speeds[role].append(events_per_second(models[role], events))
    total = {role: sum(v) / len(v) for role, v in speeds.items()}
    ratios = [b / s for b, s in zip(speeds["best"], speeds["seed"], strict=True)]
    print(
        json.dumps(
            {
                "benchmark": "peak-finding inference, events of 4 x 4000 bins",
                "best_model": f"{MODELS['best']} ({models['best'].arch})",
                "seed_model": f"{MODELS['seed']} ({models['seed'].arch})",
                "weights": str(args.run) if args.run else "untrained (same cost)",
                "events": args.events,
                "rounds": args.rounds,
                "threads": args.threads,
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg()[0],
                "events_per_second": {role: round(v, 2) for role, v in total.items()},
                "per_round": {role: [round(x, 2) for x in v] for role, v in speeds.items()},
                "ratio": round(total["best"] / total["seed"], 2),
                "ratio_median": round(statistics.median(ratios), 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
