"""Task kinds: losses against known values, masking, predictions, aggregation, round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from physiodl.errors import DataError, RecipeError
from physiodl.tasks import (
    ClassificationTask,
    DetectionTask,
    ForecastingTask,
    RegressionTask,
    check_task_options,
    make_task,
    task_from_dict,
)


def test_binary_classification_is_one_logit_with_the_seeds_bce() -> None:
    task = ClassificationTask(("N", "A"))
    outputs = torch.tensor([[0.0], [2.0], [-1.0]])
    targets = torch.tensor([0, 1, 1])
    expected = (math.log(2) + math.log1p(math.exp(-2)) + math.log1p(math.exp(1))) / 3
    assert task.out_size == 1
    assert task.loss(outputs, targets).item() == pytest.approx(expected, rel=1e-6)
    # logit 0 -> class 0 (right), 2 -> 1 (right), -1 -> 0 (wrong)
    assert task.batch_metrics(outputs, targets)["acc"].item() == pytest.approx(2 / 3)
    assert task.monitor == "val_balanced_accuracy" and task.monitor_mode == "max"


def test_binary_class_weights_weigh_each_example_by_its_class() -> None:
    task = ClassificationTask(("N", "A"), class_weights=(0.5, 1.5))
    outputs = torch.tensor([[0.3], [-0.7], [1.2]])
    targets = torch.tensor([0, 1, 1])
    per_example = F.binary_cross_entropy_with_logits(
        outputs[:, 0], targets.float(), reduction="none"
    )
    weights = torch.tensor([0.5, 1.5, 1.5])
    expected = (per_example * weights).sum() / weights.sum()
    assert task.loss(outputs, targets).item() == pytest.approx(expected.item(), rel=1e-6)
    equal = ClassificationTask(("N", "A"), class_weights=(2.0, 2.0))
    plain = ClassificationTask(("N", "A"))
    assert equal.loss(outputs, targets).item() == pytest.approx(plain.loss(outputs, targets).item())


def test_multiclass_uses_softmax_cross_entropy_with_weights() -> None:
    task = ClassificationTask(("N", "A", "O", "~"), class_weights=(1.0, 2.0, 1.0, 4.0))
    outputs = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    expected = F.cross_entropy(outputs, targets, weight=torch.tensor([1.0, 2.0, 1.0, 4.0]))
    assert task.out_size == 4
    assert task.loss(outputs, targets).item() == pytest.approx(expected.item(), rel=1e-6)
    accuracy = (outputs.argmax(1) == targets).float().mean().item()
    assert task.batch_metrics(outputs, targets)["acc"].item() == pytest.approx(accuracy)


def test_classification_predict_gives_probabilities() -> None:
    binary = ClassificationTask(("N", "A")).predict(np.array([[0.0], [np.log(3.0)]]))
    np.testing.assert_allclose(binary, [[0.5, 0.5], [0.25, 0.75]])
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    multi = ClassificationTask(("a", "b", "c")).predict(logits)
    np.testing.assert_allclose(multi.sum(axis=1), 1.0)
    np.testing.assert_allclose(multi[1], 1 / 3)
    assert multi[0].argmax() == 2


def test_classification_targets_outside_the_classes_are_an_error() -> None:
    task = ClassificationTask(("N", "A"))
    assert task.encode_targets(np.array([0, 1, 1], dtype=np.int32)).dtype == np.int64
    with pytest.raises(DataError, match="class code 2"):
        task.encode_targets(np.array([0, 2]))
    with pytest.raises(DataError, match="integer class codes"):
        task.encode_targets(np.array([0.0, 1.0]))
    with pytest.raises(RecipeError, match="one positive weight per class"):
        ClassificationTask(("N", "A"), class_weights=(1.0,))


def test_aggregate_is_the_mean_of_window_logits_per_record() -> None:
    task = ClassificationTask(("N", "A", "O"))
    outputs = np.array([[1, 0, 0], [3, 0, 0], [0, 2, 0], [0, 0, 5]], dtype=np.float32)
    owner = np.array([0, 0, 2, 1])
    np.testing.assert_allclose(task.aggregate(outputs, owner, 3), [[2, 0, 0], [0, 0, 5], [0, 2, 0]])
    with pytest.raises(DataError, match=r"records \[3\] have no windows"):
        task.aggregate(outputs, owner, 4)


def test_regression_masks_nan_targets() -> None:
    task = RegressionTask(n_outputs=2)
    outputs = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    targets = torch.tensor([[2.0, float("nan")], [3.0, 0.0]])
    loss = task.loss(outputs, targets)
    assert loss.item() == pytest.approx((1.0 + 0.0 + 16.0) / 3)
    loss.backward()
    assert outputs.grad is not None and outputs.grad[0, 1] == 0
    assert task.batch_metrics(outputs, targets)["mae"].item() == pytest.approx(5 / 3)
    l1 = RegressionTask(n_outputs=2, criterion="l1")
    assert l1.loss(outputs, targets).item() == pytest.approx(5 / 3)
    all_masked = task.loss(outputs, torch.full((2, 2), float("nan")))
    assert all_masked.item() == 0 and all_masked.requires_grad


def test_regression_huber_and_target_shapes() -> None:
    task = RegressionTask(criterion="huber", huber_delta=1.0)
    outputs = torch.tensor([[0.0], [0.0]])
    targets = torch.tensor([0.5, 3.0])  # (n,) targets fit a single output
    assert task.loss(outputs, targets).item() == pytest.approx((0.125 + 2.5) / 2)
    assert task.encode_targets(np.array([1.0, 2.0])).shape == (2, 1)
    with pytest.raises(DataError, match=r"expected \(n, 3\)"):
        RegressionTask(n_outputs=3).encode_targets(np.zeros((4, 2)))
    with pytest.raises(RecipeError, match="criterion"):
        RegressionTask(criterion="mape")  # type: ignore[arg-type]


def test_detection_bce_masks_bins_and_weighs_positives() -> None:
    task = DetectionTask(pos_weight=3.0)
    outputs = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, float("nan"), 1.0]])
    keep = torch.tensor([0, 1, 3])
    expected = F.binary_cross_entropy_with_logits(
        outputs[0, keep], targets[0, keep], pos_weight=torch.tensor(3.0)
    )
    assert task.loss(outputs, targets).item() == pytest.approx(expected.item(), rel=1e-6)
    # bins 0 and 1 right, bin 3 (logit 0 -> no event) wrong
    assert task.batch_metrics(outputs, targets)["acc"].item() == pytest.approx(2 / 3)
    np.testing.assert_allclose(task.predict(np.array([[0.0]])), [[0.5]])
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        task.encode_targets(np.array([0.0, 2.0]))
    with pytest.raises(DataError, match="per time bin"):
        task.aggregate(np.zeros((2, 4)), np.array([0, 0]), 1)


def test_forecasting_compares_flat_outputs_with_channel_horizon_targets() -> None:
    task = ForecastingTask(horizon=3, n_channels=2)
    outputs = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    targets = outputs.reshape(2, 2, 3).clone()
    targets[0, 1, 2] += 2.0
    assert task.out_size == 6
    assert task.loss(outputs, targets).item() == pytest.approx(4.0 / 12)
    assert task.predict(outputs.numpy()).shape == (2, 2, 3)
    with pytest.raises(RecipeError, match="horizon"):
        make_task("forecasting", horizon=0)


@pytest.mark.parametrize(
    "task",
    [
        ClassificationTask(("N", "A", "O"), class_weights=(1.0, 2.0, 0.5)),
        RegressionTask(n_outputs=2, criterion="l1"),
        DetectionTask(criterion="bce", pos_weight=5.0),
        ForecastingTask(horizon=10, n_channels=2),
    ],
)
def test_to_dict_round_trips_through_json(task) -> None:
    description = json.loads(json.dumps(task.to_dict()))
    assert description["kind"] == task.kind
    rebuilt = task_from_dict(description)
    assert rebuilt == task
    assert rebuilt.out_size == task.out_size


def test_make_task_names_unknown_kinds_and_options() -> None:
    assert make_task("regression") == RegressionTask()
    with pytest.raises(RecipeError, match="unknown task 'segmentation'"):
        make_task("segmentation")
    with pytest.raises(RecipeError, match="no option 'loss'"):
        make_task("regression", loss="l1")
    with pytest.raises(RecipeError, match="at least 2 classes"):
        make_task("classification", classes=["N"])


def test_pvfinder_cost_is_zero_at_the_target_and_punishes_misses_more() -> None:
    task = DetectionTask(criterion="pvfinder", asymmetry=2.5)
    target = torch.tensor([[0.8]])
    exact = torch.logit(torch.tensor([[0.8]]))
    assert task.loss(exact, target).item() == pytest.approx(0.0, abs=1e-6)
    # the same ratio r = p / y under (miss) and over (false bump) the target
    low, high = torch.logit(torch.tensor([[0.4]])), torch.logit(torch.tensor([[0.8]]))
    miss = task.loss(low, target).item()
    overshoot = task.loss(high, torch.tensor([[0.4]])).item()
    assert miss > overshoot > 0
    # NaN bins count neither way; outputs there do not change the loss
    outputs = torch.tensor([[0.3, -2.0, 5.0]])
    targets = torch.tensor([[0.5, 0.0, float("nan")]])
    changed = outputs.clone()
    changed[0, 2] = -7.0
    assert task.loss(outputs, targets).item() == pytest.approx(task.loss(changed, targets).item())
    assert torch.isfinite(task.loss(torch.full((1, 3), 30.0), torch.zeros(1, 3)))
    with pytest.raises(RecipeError, match="pos_weight applies to criterion = 'bce'"):
        DetectionTask(criterion="pvfinder", pos_weight=2.0)


def test_detection_operating_point_is_chosen_on_given_predictions() -> None:
    task = DetectionTask(tolerance=3.0, fp_budget=0.0, threshold=0.5)
    x = np.arange(100) + 0.5
    target = np.exp(-0.5 * (x - 30.5) ** 2)
    # the true peak scores 0.9, a false one 0.7: only a threshold above 0.7 has no FP
    scores = np.maximum(0.9 * np.exp(-0.5 * (x - 30.5) ** 2), 0.7 * np.exp(-0.5 * (x - 70.5) ** 2))
    chosen = task.with_operating_point([target], [scores])
    assert 0.7 < chosen.threshold <= 0.9
    result = chosen.score_records([target], [scores])
    assert (result["efficiency"], result["fp_per_event"]) == (1.0, 0.0)
    assert task.score_records([target], [scores])["fp_per_event"] == 1.0
    assert ClassificationTask(("N", "A")).with_operating_point([], []) == ClassificationTask(
        ("N", "A")
    )


def test_task_options_are_checked_by_name() -> None:
    check_task_options("detection", {"criterion": "mse", "tolerance": 3})
    with pytest.raises(RecipeError, match=r"no option 'tolerence'.*tolerance"):
        check_task_options("detection", {"tolerence": 3})


def test_class_priors_reweight_balanced_probabilities() -> None:
    balanced = ClassificationTask(("N", "A"))
    natural = ClassificationTask(("N", "A"), class_priors=(0.9, 0.1))
    logits = np.array([[0.0], [np.log(9.0)]])  # balanced p_A = 0.5 and 0.9
    np.testing.assert_allclose(balanced.predict(logits)[:, 1], [0.5, 0.9])
    # p_A = 0.5 * 0.1 / (0.5 * 0.1 + 0.5 * 0.9) = 0.1; 0.9 * 0.1 / (0.09 + 0.1 * 0.9) = 0.5
    np.testing.assert_allclose(natural.predict(logits)[:, 1], [0.1, 0.5])
    three = ClassificationTask(("a", "b", "c"), class_priors=(0.5, 0.25, 0.25))
    proba = three.predict(np.zeros((1, 3)))
    np.testing.assert_allclose(proba, [[0.5, 0.25, 0.25]])
    assert task_from_dict(natural.to_dict()) == natural
    with pytest.raises(RecipeError, match="class_priors"):
        ClassificationTask(("N", "A"), class_priors=(1.0,))


def test_regression_learns_scaled_targets_and_reports_in_their_unit() -> None:
    task = RegressionTask(target_shift=100.0, target_scale=20.0)
    targets = torch.tensor([[120.0], [80.0], [float("nan")]])
    outputs = torch.tensor([[1.0], [-1.0], [5.0]])  # exactly (target - 100) / 20
    assert task.loss(outputs, targets).item() == pytest.approx(0.0)
    assert task.batch_metrics(outputs + 0.5, targets)["mae"].item() == pytest.approx(10.0)
    np.testing.assert_allclose(task.predict(np.array([[1.0], [0.0]])), [[120.0], [100.0]])
    np.testing.assert_allclose(task.decode(np.array([[-0.5]])), [90.0])
    assert task_from_dict(json.loads(json.dumps(task.to_dict()))) == task
    with pytest.raises(RecipeError, match="target_scale must be > 0"):
        RegressionTask(target_scale=0.0)
