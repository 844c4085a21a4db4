"""Training throughput through physiodl (`fit`: Lightning) versus a bare PyTorch loop.

Same model (``nn.LSTM(17, 128)`` + the seed's head), same batches (192 windows of 17 x 40,
~60 per epoch, synthetic), same optimizer (Adam, lr 0.01). Throughput is measured per
epoch from its start to the end of its last training batch (data loading and optimisation,
no validation) and the first epoch of each run is dropped as warm-up. The two loops
alternate ``--repeats`` times so that load from other processes hits both alike; the
reported figure is the median over the kept epochs. Prints JSON; the target is a ratio
``physiodl / bare >= 0.9``.

    python bench/bench_training_overhead.py [--epochs 3] [--repeats 3] [--batches 60] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from physiodl.signalset import SignalSet
from physiodl.tasks import make_task
from physiodl.training import ChunkDataModule, fit
from physiodl.transforms.windows import PackedSignals

CHANNELS, LENGTH, BATCH = 17, 40, 192
WINDOWS_PER_RECORD = 40


class LSTMHead(nn.Module):
    """The seed's TorchLSTMNet: LSTM(17, 128), last hidden state, 128 -> 128 -> 1."""

    def __init__(self, in_channels: int = CHANNELS, hidden: int = 128) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_channels, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x.transpose(1, 2))
        return self.head(h[-1])


def synthetic_set(n_records: int, seed: int) -> SignalSet:
    rng = np.random.default_rng(seed)
    signals = [
        rng.standard_normal((CHANNELS, LENGTH * WINDOWS_PER_RECORD), dtype=np.float32)
        for _ in range(n_records)
    ]
    targets = rng.integers(0, 2, n_records)
    ids = tuple(f"r{i}" for i in range(n_records))
    channels = tuple(f"f{i}" for i in range(CHANNELS))
    return SignalSet(signals, 1.0, channels, ids, targets, ("N", "A"))


def bare_loop(data: SignalSet, epochs: int, seed: int) -> list[float]:
    """Examples/s per epoch of a plain loop over pre-stacked tensors (the seed's loop)."""
    torch.manual_seed(seed)
    model = LSTMHead()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.BCEWithLogitsLoss()
    x_all = torch.from_numpy(
        np.concatenate([s.reshape(CHANNELS, -1, LENGTH).transpose(1, 0, 2) for s in data.signals])
    ).contiguous()
    y_all = torch.from_numpy(np.repeat(np.asarray(data.targets), WINDOWS_PER_RECORD)).float()
    generator = torch.Generator().manual_seed(seed)
    rates = []
    for _ in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(len(x_all), generator=generator)
        for lo in range(0, len(order), BATCH):
            index = order[lo : lo + BATCH]
            outputs = model(x_all[index])
            loss = loss_fn(outputs[:, 0], y_all[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        rates.append(len(x_all) / (time.perf_counter() - started))
    return rates


def physiodl_fit(train: SignalSet, val: SignalSet, epochs: int, seed: int) -> list[float]:
    """Examples/s per epoch through ChunkDataModule + SignalModule + pl.Trainer (`fit`)."""
    torch.manual_seed(seed)
    task = make_task("classification", classes=("N", "A"))
    datamodule = ChunkDataModule(train, val, length=LENGTH, batch_size=BATCH, seed=seed)
    settings = {"max_epochs": epochs, "optimizer": {"name": "adam", "lr": 0.01}}
    # Lightning's progress bar writes to stdout, which carries this script's JSON
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        result = fit(
            LSTMHead(),
            task,
            datamodule,
            out_dir=Path(tmp) / "model",
            tensorboard_dir=Path(tmp) / "tensorboard",
            train_cfg=settings,
            seed=seed,
        )
    return [row["examples_per_second"] for row in result.history]


def gather_microseconds(data: SignalSet, seed: int) -> float:
    """Time to cut one batch of windows (the DataModule's per-batch data work)."""
    packed = PackedSignals.pack(data.signals)
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, len(data), BATCH)
    starts = rng.integers(0, WINDOWS_PER_RECORD, BATCH) * LENGTH
    packed.chunks(owner, starts, LENGTH)
    started = time.perf_counter()
    for _ in range(200):
        packed.chunks(owner, starts, LENGTH)
    return (time.perf_counter() - started) / 200 * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, default=60, help="training batches per epoch")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    n_records = args.batches * BATCH // WINDOWS_PER_RECORD
    train, val = synthetic_set(n_records, 0), synthetic_set(max(n_records // 10, 2), 1)
    bare: list[float] = []
    ours: list[float] = []
    for repeat in range(args.repeats):
        bare += bare_loop(train, args.epochs, repeat)[1:]
        ours += physiodl_fit(train, val, args.epochs, repeat)[1:]
    bare_rate, our_rate = statistics.median(bare), statistics.median(ours)
    print(
        json.dumps(
            {
                "device": "cpu",
                "torch_threads": torch.get_num_threads(),
                "batch": [BATCH, CHANNELS, LENGTH],
                "batches_per_epoch": n_records * WINDOWS_PER_RECORD // BATCH,
                "epochs_kept": len(bare),
                "bare_examples_per_second": round(bare_rate, 1),
                "physiodl_examples_per_second": round(our_rate, 1),
                "ratio": round(our_rate / bare_rate, 3),
                "bare_per_epoch": [round(r, 1) for r in bare],
                "physiodl_per_epoch": [round(r, 1) for r in ours],
                "batch_gather_us": round(gather_microseconds(train, 0), 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
