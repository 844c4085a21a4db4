"""Per-window target traces: window geometry, training batches aligned with the reference,
evaluation pooled over windows, recordings and subjects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from physiodl.errors import DataError, RecipeError
from physiodl.signalset import SignalSet
from physiodl.tasks import make_task
from physiodl.trace_evaluation import TraceEvaluation, evaluate_traces, predict_traces
from physiodl.training import ChunkDataModule
from physiodl.window_targets import TargetWindows, check_chunks, with_target_windows

FS = 25.0
WINDOWS = TargetWindows(8.0, 2.0)


def test_window_geometry_in_samples_and_counts() -> None:
    assert WINDOWS.in_samples(25.0) == (200, 50)
    assert WINDOWS.in_samples(125.0) == (1000, 250)
    assert WINDOWS.count(37937, 125.0) == 148  # DATA_01_TYPE01 and its 148 references
    assert WINDOWS.count(999, 125.0) == 0
    with pytest.raises(RecipeError, match=r"not whole numbers of samples at 30\.3 Hz"):
        WINDOWS.in_samples(30.3)
    assert check_chunks(WINDOWS, 25.0, 200, None) == 50
    with pytest.raises(RecipeError, match=r"chunks = \{ length = 200, stride = 50 \}"):
        check_chunks(WINDOWS, 25.0, 40, None)


def _traces(counts: list[int], groups: list[str]) -> SignalSet:
    """Records whose every sample holds its own index, and a trace 100 + record + window / 10."""
    signals, targets = [], []
    for r, n in enumerate(counts):
        length = 200 + 50 * (n - 1) + 17  # a tail shorter than the stride
        signals.append(np.tile(np.arange(length, dtype=np.float32), (2, 1)))
        targets.append(100 + r + np.arange(n, dtype=np.float32) / 10)
    ss = SignalSet(
        signals,
        fs=FS,
        channels=("PPG", "ACC"),
        ids=tuple(f"r{r}" for r in range(len(counts))),
        targets=targets,
        groups=np.array(groups),
    )
    return with_target_windows(ss, WINDOWS)


def test_training_batches_hold_each_reference_window_with_its_value() -> None:
    train = _traces([5, 3], ["a", "b"])
    train.targets[0][2] = np.nan  # a window without a reference is not trained on
    val = _traces([4], ["c"])
    dm = ChunkDataModule(train, val, length=200, batch_size=3, target_stride=50, seed=1)
    assert dm.n_train_windows == 7
    seen = []
    for batch in dm.train_batches(epoch=0):
        owner, starts = batch.owner, batch.starts
        x, y = dm.train_set[batch]
        assert x.shape[1:] == (2, 200) and y.shape == (len(owner), 1)
        assert torch.equal(x[:, 0, 0], torch.from_numpy(starts).float())
        expected = 100 + owner + starts / 50 / 10
        np.testing.assert_allclose(y[:, 0].numpy(), expected, rtol=1e-6)
        seen += list(zip(owner.tolist(), starts.tolist(), strict=True))
    assert sorted(seen) == [(0, 0), (0, 50), (0, 150), (0, 200), (1, 0), (1, 50), (1, 100)]
    batches = dm.validation_batches()
    assert sum(len(b.owner) for b in batches) == 4
    with pytest.raises(RecipeError, match=r"chunks\.random = false"):
        ChunkDataModule(train, val, length=200, random=True, target_stride=50)


class RateFromSignal(nn.Module):
    """Bin logits peaked at the window's mean of channel 0 (a stand-in for a trained model)."""

    def __init__(self, centres: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("centres", torch.tensor(centres, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return -((self.centres[None, :] - x[:, 0].mean(dim=1, keepdim=True)) ** 2) / 2


def _constant_rate(values: list[list[float]], groups: list[str]) -> SignalSet:
    """Records whose channel 0 is constant in each 2 s step, at the given rates."""
    signals, targets = [], []
    for trace in values:
        steps = np.repeat(np.asarray(trace, dtype=np.float32), 50)
        padded = np.concatenate([steps, np.repeat(steps[-1:], 150)])
        signals.append(np.stack([padded, np.zeros_like(padded)]))
        targets.append(np.asarray(trace, dtype=np.float32))
    ss = SignalSet(
        signals,
        fs=FS,
        channels=("PPG", "ACC"),
        ids=tuple(f"r{i}" for i in range(len(values))),
        targets=targets,
        groups=np.array(groups),
    )
    return with_target_windows(ss, WINDOWS)


def test_trace_evaluation_scores_pooled_per_record_and_per_subject() -> None:
    task = make_task("regression", criterion="bins", bin_low=50, bin_high=150, max_jump=6.0)
    model = RateFromSignal(task.bins.centres)
    data = _constant_rate([[80, 82, 84, 86], [100, 100, 100], [120, 121]], ["s1", "s1", "s2"])
    data.targets[1][:] = [104, 100, np.nan]  # errors of 4 and 0 bpm, one unscored window
    result = evaluate_traces(model, task, data, length=200)
    assert result.ids.tolist() == ["r0"] * 4 + ["r1"] * 3 + ["r2"] * 2
    assert result.start_s.tolist() == [0, 2, 4, 6, 0, 2, 4, 0, 2]
    levels = result.levels()
    assert levels["unscored_windows"] == 1
    offline = levels["offline"]
    assert offline["n"] == 8
    # an 8 s window averages its four 2 s steps (the last step repeats past the end)
    np.testing.assert_allclose(result.offline[:4], [83.0, 84.5, 85.5, 86.0], atol=0.1)
    per_record = levels["per_record"]
    assert per_record["r1"]["n"] == 2 and per_record["r1"]["group"] == "s1"
    assert per_record["r1"]["offline"]["mae"] == pytest.approx(2.0, abs=0.05)
    assert set(levels["per_group"]) == {"s1", "s2"} and levels["per_group"]["s1"]["n"] == 6
    subject_mean = np.mean([levels["per_group"][g]["offline"]["mae"] for g in ("s1", "s2")])
    assert offline["subject_mae"] == pytest.approx(subject_mean)
    pooled = TraceEvaluation.pooled([result, result])
    assert len(pooled.ids) == 18
    assert pooled.levels()["offline"]["mae"] == pytest.approx(offline["mae"])


def test_predict_traces_covers_every_complete_window() -> None:
    task = make_task("regression", criterion="bins", bin_low=50, bin_high=150)
    data = _constant_rate([[90, 90, 90, 90, 90]], ["s"])
    unlabelled = SignalSet(data.signals, fs=FS, channels=data.channels, ids=data.ids)
    [trace] = predict_traces(
        RateFromSignal(task.bins.centres), task, unlabelled, length=200, stride=50
    )
    assert trace["start_s"].tolist() == [0, 2, 4, 6, 8]
    np.testing.assert_allclose(trace["offline"], 90, atol=0.01)
    np.testing.assert_allclose(trace["causal"], 90, atol=0.01)
    short = SignalSet([np.zeros((2, 150), np.float32)], fs=FS, channels=data.channels, ids=("x",))
    with pytest.raises(DataError, match="shorter than one window of 200 samples"):
        predict_traces(RateFromSignal(task.bins.centres), task, short, length=200, stride=50)


def test_rate_scale_stretches_training_windows_and_scales_their_targets() -> None:
    t = np.arange(1200) / FS
    pulse = np.sin(2 * np.pi * 1.5 * t).astype(np.float32)  # 90 per minute
    trace = np.full(21, 90.0, dtype=np.float32)
    ss = with_target_windows(
        SignalSet([np.stack([pulse, pulse])], fs=FS, channels=("PPG", "ACC"), ids=("r",),
                  targets=[trace], groups=np.array(["s"])),
        WINDOWS,
    )  # fmt: skip
    dm = ChunkDataModule(ss, ss, length=200, batch_size=8, target_stride=50, rate_scale=0.2)
    batch = dm.train_batches(epoch=0)[0]
    assert batch.scales is not None and np.all(np.abs(np.log(batch.scales)) <= np.log(1.2))
    x, y = dm.train_set[batch]
    np.testing.assert_allclose(y[:, 0].numpy(), 90.0 * batch.scales, rtol=1e-5)
    frequencies = np.fft.rfftfreq(2000, 1 / FS)
    for window, scale in zip(x[:, 0].numpy(), batch.scales, strict=True):
        peak = frequencies[np.abs(np.fft.rfft(window, 2000)).argmax()]
        assert peak * 60 == pytest.approx(90.0 * scale, abs=1.0)
    assert not np.array_equal(dm.train_batches(epoch=1)[0].scales, batch.scales)
    with pytest.raises(RecipeError, match="needs per-window rate targets"):
        ChunkDataModule(ss, ss, length=200, rate_scale=0.2)
