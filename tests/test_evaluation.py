"""Window- and record-level evaluation of a model on records of different lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from physiodl.evaluation import evaluate, evaluation_windows, predict_records
from physiodl.recipes import ChunkConfig
from physiodl.signalset import SignalSet
from physiodl.tasks import make_task


class SquaredMean(nn.Module):
    """Logits ``(mean(x)^2, 0)``: a window average differs from one pass over the whole record."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.mean(dim=(1, 2)).square()
        return torch.stack([score, torch.zeros_like(score)], dim=1)


@pytest.fixture
def records() -> SignalSet:
    rng = np.random.default_rng(3)
    signals = [rng.normal(size=(1, n)).astype(np.float32) + 0.5 for n in (100, 130, 75)]
    ids = ("a", "b", "c")
    return SignalSet(
        signals, fs=10.0, channels=("x",), ids=ids, targets=np.array([0, 1, 0]), classes=("N", "A")
    )


def test_windows_cover_every_sample_with_end_aligned_tails() -> None:
    windows = evaluation_windows(np.array([100, 130, 75]), 50, 50)
    assert windows.owner.tolist() == [0, 0, 1, 1, 2, 1, 2]
    assert windows.starts.tolist() == [0, 50, 0, 50, 0, 80, 25]
    assert windows.is_tail.tolist() == [False] * 5 + [True, True]


def test_records_average_windows_or_take_one_whole_pass(records: SignalSet) -> None:
    task, model = make_task("classification", classes=("N", "A")), SquaredMean()
    windowed = evaluate(model, task, records, length=50, stride=50)
    whole = evaluate(model, task, records, length=50, stride=50, whole_records=True)
    # the chunk level is the same windows either way
    assert windowed.window_metrics == whole.window_metrics
    first = records.signals[0][0]
    halves = [first[:50].mean() ** 2, first[50:].mean() ** 2]
    np.testing.assert_allclose(windowed.record_outputs[0, 0], np.mean(halves), rtol=1e-5)
    np.testing.assert_allclose(whole.record_outputs[0, 0], first.mean() ** 2, rtol=1e-5)
    assert not np.allclose(windowed.record_outputs[:, 0], whole.record_outputs[:, 0])
    chunks = ChunkConfig(length=50, eval_whole=True)
    np.testing.assert_allclose(
        predict_records(model, task, records, **chunks.evaluation()), whole.record_predictions
    )
