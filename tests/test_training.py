"""The training engine: batches per (seed, epoch), exact metrics, fit, resume and DDP."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch import nn

from physiodl.errors import CheckpointError, RecipeError
from physiodl.signalset import SignalSet
from physiodl.tasks import ClassificationTask, ForecastingTask, make_task
from physiodl.training import (
    ChunkDataModule,
    FitConfig,
    SignalModule,
    fit,
    predict_batches,
)
from physiodl.transforms.windows import chunk_index

REPO = Path(__file__).resolve().parents[1]
QUIET = {"enable_progress_bar": False}


def waves(n: int, seed: int, af_share: float = 0.25) -> SignalSet:
    """Two-channel records, 60-200 steps: class 1 oscillates three times faster than class 0."""
    rng = np.random.default_rng(seed)
    targets = (rng.random(n) < af_share).astype(np.int64)
    signals = []
    for label in targets:
        t = np.arange(int(rng.integers(60, 200)))
        wave = np.sin(2 * np.pi * (0.05 if label == 0 else 0.15) * t + rng.uniform(0, 6))
        x = np.stack([wave, rng.standard_normal(len(t))]) + 0.3 * rng.standard_normal((2, len(t)))
        signals.append(x.astype(np.float32))
    ids = tuple(f"r{i}" for i in range(n))
    return SignalSet(signals, 10.0, ("ecg", "noise"), ids, targets, ("N", "A"))


class TinyNet(nn.Module):
    """Conv + dropout (so exact resume needs the random state) + global mean + linear."""

    def __init__(self, in_channels: int = 2, out_size: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(in_channels, 8, 5),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(8, out_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConstantLogit(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(len(x), 1)


@pytest.fixture(scope="module")
def data() -> tuple[SignalSet, SignalSet]:
    return waves(120, 0), waves(40, 1)


def datamodule(data: tuple[SignalSet, SignalSet], **options) -> ChunkDataModule:
    settings = {"length": 40, "balance": "oversample", "batch_size": 32, "seed": 3, **options}
    return ChunkDataModule(*data, **settings)


def keys(batches) -> list[tuple[int, int, int]]:
    return [
        (int(o), int(s), b.length) for b in batches for o, s in zip(b.owner, b.starts, strict=True)
    ]


def test_prechunked_windows_are_oversampled_at_window_level(data) -> None:
    dm = datamodule(data)
    train = data[0]
    owner, starts = chunk_index(train.lengths, 40)
    planned = keys(dm.train_batches(0))
    classes = np.bincount([train.targets[o] for o, _, _ in planned])
    assert classes[0] == classes[1] == np.bincount(train.targets[owner]).max()
    assert set(planned) == {(int(o), int(s), 40) for o, s in zip(owner, starts, strict=True)}
    assert len(planned) == dm.n_train_windows == sum(len(b.owner) for b in dm.train_batches(1))


def test_validation_uses_every_natural_window_once(data) -> None:
    dm = datamodule(data, random=True)
    owner, starts = chunk_index(data[1].lengths, 40)
    assert keys(dm.validation_batches()) == [
        (int(o), int(s), 40) for o, s in zip(owner, starts, strict=True)
    ]


def test_random_chunk_epochs_depend_only_on_seed_and_epoch(data) -> None:
    dm, twin = datamodule(data, random=True), datamodule(data, random=True)
    epoch0, epoch1 = keys(dm.train_batches(0)), keys(dm.train_batches(1))
    assert epoch0 == keys(twin.train_batches(0))
    assert epoch0 != epoch1
    counts = np.bincount(data[0].targets)
    assert len(epoch0) == 2 * counts.max()  # one window per oversampled record
    lengths = data[0].lengths
    assert all(0 <= s <= max(lengths[o] - 40, 0) for o, s, _ in epoch0)
    x, y = dm.train_set[dm.train_batches(0)[0]]
    assert x.shape == (32, 2, 40) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_whole_records_batch_similar_lengths_cropped_to_the_shortest(data) -> None:
    dm = datamodule(data, length=None, random=True, batch_size=8)
    lengths = data[0].lengths
    for batch in dm.train_batches(0):
        assert batch.length == lengths[batch.owner].min()
        assert np.all(batch.starts + batch.length <= lengths[batch.owner])
        x, _ = dm.train_set[batch]
        assert x.shape == (len(batch.owner), 2, batch.length)
    val_lengths = data[1].lengths
    for batch in dm.validation_batches():
        assert np.all(val_lengths[batch.owner] == batch.length) and not batch.starts.any()
    assert sorted(o for b in dm.validation_batches() for o in b.owner) == list(range(40))


def test_ddp_shards_are_disjoint_and_the_same_after_resume(data) -> None:
    """Lightning wraps the sampler in DistributedSamplerWrapper; emulate its two ranks."""
    dm = datamodule(data, random=True, balance="none", batch_size=16)  # no repeated windows
    everything = keys(dm.train_batches(2))
    shards = []
    for rank in range(2):
        sampler = DistributedSamplerWrapper(
            dm.train_dataloader().sampler, num_replicas=2, rank=rank, shuffle=False
        )
        sampler.set_epoch(2)
        shards.append(keys(list(sampler)))
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(everything)
    resumed = datamodule(data, random=True, balance="none", batch_size=16)
    resumed = resumed.train_dataloader().sampler
    resumed.epoch = 2  # what train_dataloader() sets from the restored loop state
    assert keys(list(resumed)) == everything


def test_targets_of_every_kind_are_cut_with_the_windows() -> None:
    rng = np.random.default_rng(0)
    signals = [rng.standard_normal((2, n)).astype(np.float32) for n in (30, 12)]
    ids = ("a", "b")
    bins = [(np.arange(30) % 2).astype(np.float32), np.ones(12, np.float32)]
    detection = SignalSet(signals, 1.0, ("x", "y"), ids, bins)
    dm = ChunkDataModule(detection, detection, length=20)
    x, y = dm.val_set[dm.validation_batches()[0]]
    assert x.shape == (2, 2, 20) and y.shape == (2, 20)
    np.testing.assert_array_equal(y[0], np.arange(20) % 2)
    assert torch.isnan(y[1, 12:]).all() and (x[1, :, 12:] == 0).all()

    values = SignalSet(signals, 1.0, ("x", "y"), ids, np.array([60.0, 75.0]))
    _, y = ChunkDataModule(values, values, length=10).val_set[
        ChunkDataModule(values, values, length=10).validation_batches()[0]
    ]
    np.testing.assert_array_equal(y[:, 0], [60, 60, 60, 75])

    forecast = ChunkDataModule(values, values, length=10, horizon=4)
    x, y = forecast.val_set[forecast.validation_batches()[0]]
    assert x.shape[1:] == (2, 10) and y.shape[1:] == (1, 4)
    np.testing.assert_array_equal(y[0, 0], signals[0][0, 10:14])
    assert ForecastingTask(horizon=4).loss(torch.zeros(len(y), 4), y).isfinite()

    with pytest.raises(RecipeError, match="needs class targets"):
        ChunkDataModule(values, values, length=10, balance="oversample")


def test_balanced_accuracy_is_computed_over_the_whole_validation_epoch(data) -> None:
    dm = datamodule(data)
    task = ClassificationTask(("N", "A"))
    module = SignalModule(ConstantLogit(1.0), task)  # always predicts class 1
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (scores,) = trainer.validate(module, datamodule=dm, verbose=False)
    owner, _ = chunk_index(data[1].lengths, 40)
    share_of_a = data[1].targets[owner].mean()
    assert scores["val_balanced_accuracy"] == pytest.approx(0.5)
    assert scores["val_acc"] == pytest.approx(share_of_a, abs=1e-6)


class CtrlCAfter(TinyNet):
    """TinyNet that raises KeyboardInterrupt (Ctrl-C) at its ``steps + 1``-th training step."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.steps -= 1
            if self.steps < 0:
                raise KeyboardInterrupt
        return super().forward(x)


class PerBin(nn.Module):
    """A detection model: one logit per time step."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[:, 0]


def test_detection_on_whole_records_of_different_lengths() -> None:
    rng = np.random.default_rng(0)
    lengths = (30, 30, 12, 50)
    signals = [rng.standard_normal((2, n)).astype(np.float32) for n in lengths]
    bins = [(rng.random(n) < 0.3).astype(np.float32) for n in lengths]
    records = SignalSet(signals, 1.0, ("x", "y"), ("a", "b", "c", "d"), bins)
    dm = ChunkDataModule(records, records, length=None, batch_size=2)
    module = SignalModule(PerBin(), make_task("detection"))
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False
    )
    trainer.fit(module, datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics["train_loss"])
    (scores,) = trainer.validate(module, datamodule=dm, verbose=False)
    with torch.no_grad():
        logits = torch.cat([module.model(torch.from_numpy(x[None]))[0] for x in signals])
    truth = torch.from_numpy(np.concatenate(bins))
    assert scores["val_acc"] == pytest.approx(((logits > 0) == (truth > 0.5)).float().mean())


def fit_tiny(data, out_dir: Path, epochs: int, resume=False, model=None, scheduler="none", **dm):
    torch.manual_seed(0)
    model = TinyNet() if model is None else model
    task = make_task("classification", classes=("N", "A"))
    cfg = {
        "max_epochs": epochs,
        "optimizer": {"name": "adam", "lr": 0.01},
        "scheduler": scheduler,
        "trainer": QUIET,
    }
    result = fit(
        model,
        task,
        datamodule(data, **dm),
        out_dir=out_dir,
        train_cfg=cfg,
        seed=1,
        resume=resume,
        tensorboard_dir=out_dir.parent / "tensorboard" / out_dir.name,
    )
    return model, result


def test_fit_learns_and_reports_the_best_epoch(data, tmp_path: Path) -> None:
    model, result = fit_tiny(data, tmp_path / "tiny", epochs=3)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    scores = [row["val_balanced_accuracy"] for row in result.history]
    assert result.best_epoch == 1 + int(np.argmax(scores))
    assert result.best_score == pytest.approx(max(scores))
    assert max(scores) > 0.9 and result.history[-1]["train_acc"] > 0.8
    assert result.best_checkpoint == tmp_path / "tiny" / "lightning" / "best.ckpt"
    assert (tmp_path / "tiny" / "lightning" / "last.ckpt").is_file()
    assert result.examples_per_second > 0 and result.train_seconds > 0
    assert not result.interrupted and result.global_rank == 0
    with (tmp_path / "tiny" / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_loss"]) for r in rows] == [row["val_loss"] for row in result.history]
    assert {"train_loss", "train_acc", "val_acc", "lr", "epoch_seconds"} <= set(rows[0])
    assert list((tmp_path / "tensorboard" / "tiny").glob("events.out.tfevents.*"))
    model.load_state_dict(result.best_state_dict)


def test_resume_after_ctrl_c_ends_exactly_like_an_uninterrupted_run(data, tmp_path) -> None:
    """Random chunks, dropout and a one-cycle schedule: all must continue exactly."""
    options = {"scheduler": "onecycle", "random": True}
    straight, straight_result = fit_tiny(data, tmp_path / "straight", 3, **options)
    handler = signal.getsignal(signal.SIGINT)
    torch.manual_seed(0)
    ctrl_c = CtrlCAfter(steps=datamodule(data, random=True).n_train_batches + 3)  # in epoch 2
    _, stopped = fit_tiny(data, tmp_path / "resumed", 3, model=ctrl_c, **options)
    assert stopped.interrupted and [row["epoch"] for row in stopped.history] == [1]
    assert signal.getsignal(signal.SIGINT) is handler
    resumed, resumed_result = fit_tiny(data, tmp_path / "resumed", 3, resume=True, **options)
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    timing = {"train_seconds", "examples_per_second", "epoch_seconds"}
    for a, b in zip(straight_result.history, resumed_result.history, strict=True):
        assert {k: v for k, v in a.items() if k not in timing} == {
            k: v for k, v in b.items() if k not in timing
        }
    assert resumed_result.best_epoch == straight_result.best_epoch


def test_fit_refuses_what_it_owns_and_stale_checkpoints(data, tmp_path: Path) -> None:
    task = ClassificationTask(("N", "A"))
    with pytest.raises(RecipeError, match=r"trainer\.max_epochs \(set train\.max_epochs\)"):
        fit(
            TinyNet(),
            task,
            datamodule(data),
            out_dir=tmp_path,
            train_cfg={"trainer": {"max_epochs": 3}},
        )
    with pytest.raises(RecipeError, match="no setting 'epochs'"):
        FitConfig.of({"epochs": 3})
    with pytest.raises(RecipeError, match="class_weights"):
        fit(
            TinyNet(),
            task,
            datamodule(data, balance="class_weights"),
            out_dir=tmp_path,
            train_cfg={},
        )
    (tmp_path / "lightning").mkdir()
    (tmp_path / "lightning" / "last.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        fit(TinyNet(), task, datamodule(data), out_dir=tmp_path, train_cfg={})


def test_predict_batches_matches_eval_mode_and_restores_the_mode() -> None:
    torch.manual_seed(0)
    model = TinyNet().train()
    x = np.random.default_rng(0).standard_normal((10, 2, 30)).astype(np.float32)
    outputs = predict_batches(model, x, batch_size=3)
    assert model.training
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(outputs, expected, rtol=1e-6, atol=1e-6)


DDP_SCRIPT = """
import json, os, sys, time
from pathlib import Path

import torch

sys.path.insert(0, {tests!r})
from test_training import TinyNet, datamodule, waves
from physiodl.tasks import make_task
from physiodl.training import WindowDataset, fit

out = Path(sys.argv[1])
# rank 1 is this script run again by Lightning: everything before fit runs on every rank
(out / f"started-{{os.getpid()}}").write_text(os.environ.get("LOCAL_RANK", "unset"))
run_id = os.environ.setdefault("PHYSIODL_RUN_ID", f"{{time.time_ns()}}-{{os.getpid()}}")
dm = datamodule((waves(120, 0, 0.5), waves(40, 1, 0.5)), balance="none", batch_size=32)
served = []
cut = WindowDataset.__getitem__


def recording(self, batch):
    if self is dm.train_set:
        served.append([[int(o), int(s)] for o, s in zip(batch.owner, batch.starts)])
    return cut(self, batch)


WindowDataset.__getitem__ = recording
torch.manual_seed(0)
model = TinyNet()
result = fit(
    model,
    make_task("classification", classes=("N", "A")),
    dm,
    out_dir=out / "model",
    train_cfg={{
        "max_epochs": 2,
        "optimizer": {{"name": "adam", "lr": 0.01}},
        "trainer": {{"devices": 2, "strategy": "ddp", "accelerator": "cpu",
                     "enable_progress_bar": False}},
    }},
    seed=1,
)
report = {{
    "rank": result.global_rank,
    "run_id": run_id,
    "history": result.history,
    "windows_per_epoch": dm.n_train_windows,
    "epoch0": [w for batch in served[: dm.n_train_batches // 2] for w in batch],
    "epoch0_planned": [
        [int(o), int(s)] for b in dm.train_batches(0) for o, s in zip(b.owner, b.starts)
    ],
    "threads": torch.get_num_threads(),
    "weights": [p.detach().double().sum().item() for p in model.parameters()],
}}
(out / f"rank-{{result.global_rank}}.json").write_text(json.dumps(report))
"""


def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    """``trainer = {devices = 2, strategy = "ddp", accelerator = "cpu"}`` trains on 2 ranks."""
    script = tmp_path / "train_ddp.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT).format(tests=str(REPO / "tests")))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("PHYSIODL_RUN_ID", None)
    env.pop("OMP_NUM_THREADS", None)  # then Lightning gives each rank cores / 2 threads
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    started = sorted(tmp_path.glob("started-*"))
    assert sorted(p.read_text() for p in started) == ["1", "unset"]
    reports = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1]
    assert reports[0]["run_id"] == reports[1]["run_id"]  # set before fit, inherited by rank 1
    assert [r["threads"] for r in reports] == [max(1, (os.cpu_count() or 2) // 2)] * 2
    # 317 windows in 10 batches: 5 per rank (157 and 160 windows), disjoint, the planned epoch
    shard0, shard1 = (set(map(tuple, r["epoch0"])) for r in reports)
    assert sorted(len(r["epoch0"]) for r in reports) == [157, 160]
    assert not shard0 & shard1
    assert shard0 | shard1 == set(map(tuple, reports[0]["epoch0_planned"]))
    timing = {"train_seconds", "examples_per_second", "epoch_seconds"}
    history = [{k: v for k, v in row.items() if k not in timing} for row in reports[0]["history"]]
    assert history == [
        {k: v for k, v in row.items() if k not in timing} for row in reports[1]["history"]
    ]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[0]["train_examples"] == reports[0]["windows_per_epoch"] == 317
    assert reports[0]["weights"] == reports[1]["weights"]  # gradients were averaged
    assert history[1]["train_loss"] < history[0]["train_loss"] < 0.75
    assert history[1]["val_loss"] < history[0]["val_loss"] < 0.75
    assert all(0.0 <= row[k] <= 1.0 for row in history for k in ("val_acc", "train_acc"))
    assert (tmp_path / "model" / "history.csv").is_file()
    assert (tmp_path / "model" / "lightning" / "best.ckpt").is_file()
