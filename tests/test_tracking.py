"""Binned regression and tracking: Viterbi against brute force, causal decoding, the task."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from physiodl.errors import RecipeError
from physiodl.tasks import RegressionTask, make_task, task_from_dict
from physiodl.tracking import ValueBins, viterbi_path


def _best_paths(scores: np.ndarray, max_step: int) -> tuple[float, dict[int, float]]:
    """Brute force: the best score of a whole path, and of each prefix's best path end."""
    steps, bins = scores.shape
    best, prefix = -math.inf, {}
    for path in itertools.product(range(bins), repeat=steps):
        if any(abs(a - b) > max_step for a, b in itertools.pairwise(path)):
            continue
        best = max(best, sum(scores[t, b] for t, b in enumerate(path)))
    for t in range(steps):
        prefix[t] = max(
            sum(scores[u, b] for u, b in enumerate(path))
            for path in itertools.product(range(bins), repeat=t + 1)
            if all(abs(a - b) <= max_step for a, b in itertools.pairwise(path))
        )
    return best, prefix


@pytest.mark.parametrize("seed", range(4))
def test_viterbi_finds_the_best_constrained_path(seed: int) -> None:
    scores = np.random.default_rng(seed).normal(size=(5, 6))
    best, prefix = _best_paths(scores, max_step=1)
    path = viterbi_path(scores, 1)
    assert np.abs(np.diff(path)).max() <= 1
    assert sum(scores[t, b] for t, b in enumerate(path)) == pytest.approx(best)
    causal = viterbi_path(scores, 1, causal=True)
    for t in range(len(scores)):  # each causal end is the end of the best path so far
        assert viterbi_path(scores[: t + 1], 1)[-1] == causal[t]
        end_score = sum(scores[u, b] for u, b in enumerate(viterbi_path(scores[: t + 1], 1)))
        assert end_score == pytest.approx(prefix[t])


def test_tracking_ignores_a_short_jump_that_per_window_decoding_follows() -> None:
    bins = ValueBins(60, 80, 1)
    truth = [70, 70, 71, 71, 72, 72]
    logits = np.full((6, bins.count), -4.0)
    for t, value in enumerate(truth):
        logits[t, value - 60] = 3.0
    logits[3, 79 - 60] = 6.0  # one window's strongest bin is far off (a motion artefact)
    per_window = bins.decode(logits, None, causal=False)
    tracked = bins.decode(logits, 3.0, causal=False)
    assert per_window[3] == pytest.approx(79, abs=0.1)
    np.testing.assert_allclose(tracked, truth, atol=0.01)
    causal = bins.decode(logits, 3.0, causal=True)
    np.testing.assert_allclose(causal, truth, atol=0.01)  # 79 is out of reach from 71


def test_refine_weighs_the_neighbouring_bins() -> None:
    bins = ValueBins(0, 10, 1)
    scores = np.log(np.array([[0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 0]], dtype=float) + 1e-12)
    assert bins.refine(scores, np.array([4]))[0] == pytest.approx(4.0)
    scores = np.log(np.array([[0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]], dtype=float) + 1e-12)
    assert bins.refine(scores, np.array([4]))[0] == pytest.approx(4.5)
    edge = np.log(np.array([[2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=float) + 1e-12)
    assert bins.refine(edge, np.array([0]))[0] == pytest.approx(0.5)  # no bins past the edge


def test_binned_regression_task_loss_metrics_and_round_trip() -> None:
    task = make_task("regression", criterion="bins", bin_low=40, bin_high=60, bin_width=2)
    assert isinstance(task, RegressionTask) and task.out_size == 11
    uniform = torch.zeros(3, 11)
    targets = torch.tensor([[44.0], [float("nan")], [50.0]])
    assert task.loss(uniform, targets).item() == pytest.approx(math.log(11), rel=1e-6)
    peaked = torch.full((3, 11), -10.0)
    peaked[0, 2] = peaked[1, 0] = peaked[2, 6] = 10.0  # 44 (right), masked, 52 (2 off)
    assert task.batch_metrics(peaked, targets)["mae"].item() == pytest.approx(1.0)
    soft = task.bins.soft_targets(torch.tensor([44.0]), task.bin_sigma)
    assert soft.sum().item() == pytest.approx(1.0) and soft.argmax().item() == 2
    assert (
        task.loss(torch.log(soft), torch.tensor([[44.0]])).item()
        < task.loss(uniform[:1], torch.tensor([[44.0]])).item()
    )
    assert task_from_dict(task.to_dict()) == task
    np.testing.assert_allclose(task.predict(peaked.numpy())[:, 0], [44, 40, 52], atol=1e-3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"criterion": "bins", "bin_low": 50, "bin_high": 40}, "bin_high > bin_low"),
        ({"criterion": "bins", "bin_width": 3}, "whole number of bin_width"),
        ({"criterion": "bins", "n_outputs": 2}, "n_outputs = 1"),
        ({"criterion": "mse", "max_jump": 6.0}, "needs criterion = 'bins'"),
        ({"criterion": "bins", "max_jump": -1.0}, "a value >= 0"),
    ],
)
def test_bad_bin_settings_are_recipe_errors(options: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        make_task("regression", **options)


def test_point_regression_decodes_its_first_output() -> None:
    task = make_task("regression")
    outputs = np.array([[71.5], [72.0]])
    np.testing.assert_allclose(task.decode(outputs), [71.5, 72.0])
    np.testing.assert_allclose(task.decode(outputs, causal=True), [71.5, 72.0])
