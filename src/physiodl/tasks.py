"""What a model predicts and how it is trained and scored: the four `Task` kinds.

A task owns its output size, loss, target encoding, cheap per-epoch metrics, the mapping from
raw outputs to predictions and the aggregation of window outputs to whole recordings. Full
scoring lives in `physiodl.metrics`.

Output and target shapes per kind (``b`` = batch):

==============  ==========================  =====================================
kind            model output                targets
==============  ==========================  =====================================
classification  ``(b, 1)`` binary logit,    ``(b,)`` int64 class codes
                ``(b, n_classes)`` logits
regression      ``(b, n_outputs)``;         ``(b, n_outputs)`` float, NaN = masked
                ``(b, n_bins)`` for bins
detection       ``(b, time)`` per bin       ``(b, time)`` float, NaN = masked
forecasting     ``(b, n_channels*horizon)`` ``(b, n_channels, horizon)``, NaN = masked
==============  ==========================  =====================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit, softmax
from torch import Tensor

from physiodl.errors import DataError, RecipeError
from physiodl.peak_matching import PeakMatching
from physiodl.tracking import ValueBins

MonitorMode = Literal["min", "max"]


class Task(ABC):
    """Base class of the task kinds; subclasses are frozen dataclasses."""

    kind: ClassVar[str]
    monitor: ClassVar[str]
    """Validation metric that selects the best epoch (logged by `SignalModule`)."""
    monitor_mode: ClassVar[MonitorMode]
    per_bin: ClassVar[bool] = False
    """Whether outputs and targets are per time bin (scored per record by `score_records`)."""

    @property
    @abstractmethod
    def out_size(self) -> int:
        """Number of model outputs per example (per bin for detection)."""

    @abstractmethod
    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean training loss of a batch; NaN targets are masked where the kind allows it."""

    @abstractmethod
    def encode_targets(self, targets: np.ndarray) -> np.ndarray:
        """Targets as the loss expects them (dtype, shape), checked for valid values."""

    @abstractmethod
    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """Raw model outputs to predictions (class probabilities ``(n, n_classes)``, values)."""

    @abstractmethod
    def batch_metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Cheap per-batch metrics, averaged over an epoch (``acc`` or ``mae``)."""

    def aggregate(self, outputs: np.ndarray, owner: np.ndarray, n_records: int) -> np.ndarray:
        """Window outputs to one output per record: the mean over each record's windows."""
        return _owner_mean(outputs, owner, n_records)

    def score_records(
        self, targets: Sequence[np.ndarray], predictions: Sequence[np.ndarray]
    ) -> dict[str, Any]:
        """Scores of per-bin predictions, one array per record (per-bin tasks only)."""
        raise DataError(f"{self.kind} predictions are not per bin")

    def with_operating_point(
        self, targets: Sequence[np.ndarray], predictions: Sequence[np.ndarray]
    ) -> Task:
        """This task with its decision settings chosen on (validation) targets and predictions;
        the same task for kinds without such settings."""
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain-type description; `task_from_dict` rebuilds the task from it."""
        values = asdict(self)  # type: ignore[call-overload]
        return {"kind": self.kind, **{k: _plain(v) for k, v in values.items()}}


@dataclass(frozen=True)
class ClassificationTask(Task):
    """Binary (one logit, BCE-with-logits as the seed) or multi-class (softmax CE).

    Args:
        classes: class names; code ``k`` in the targets is ``classes[k]``.
        class_weights: optional loss weight per class (e.g. `transforms.balance.class_weights`).
        class_priors: how much more frequent each class is in the data predictions are for
            than in the balance the model learnt: `predict` multiplies its probabilities by
            them and renormalises (Saerens et al., Neural Computation 2002). After fully
            balanced training (oversampling, inverse-frequency weights) these are the training
            class frequencies; after square-root weights, their square roots.
    """

    classes: tuple[str, ...]
    class_weights: tuple[float, ...] | None = None
    class_priors: tuple[float, ...] | None = None

    kind: ClassVar[str] = "classification"
    monitor: ClassVar[str] = "val_balanced_accuracy"
    monitor_mode: ClassVar[MonitorMode] = "max"

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if len(self.classes) < 2:
            raise RecipeError(
                f"classification needs at least 2 classes, got {list(self.classes)}; "
                "list them in data.classes"
            )
        if self.class_weights is not None:
            weights = tuple(float(w) for w in self.class_weights)
            if len(weights) != len(self.classes) or min(weights) <= 0:
                raise RecipeError(
                    f"class_weights {list(weights)} must hold one positive weight per class "
                    f"{list(self.classes)}"
                )
            object.__setattr__(self, "class_weights", weights)
        if self.class_priors is not None:
            priors = tuple(float(p) for p in self.class_priors)
            if len(priors) != len(self.classes) or min(priors) <= 0:
                raise RecipeError(
                    f"class_priors {list(priors)} must hold one positive frequency per class "
                    f"{list(self.classes)}"
                )
            object.__setattr__(self, "class_priors", priors)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def out_size(self) -> int:
        return 1 if self.n_classes == 2 else self.n_classes

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        weights = None
        if self.class_weights is not None:
            weights = torch.tensor(self.class_weights, dtype=outputs.dtype, device=outputs.device)
        if self.out_size > 1:
            return F.cross_entropy(outputs, targets, weight=weights)
        logits = outputs[:, 0]
        if weights is None:
            return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))
        per_example = F.binary_cross_entropy_with_logits(
            logits, targets.to(logits.dtype), reduction="none"
        )
        example_weights = weights[targets]
        return (per_example * example_weights).sum() / example_weights.sum()

    def encode_targets(self, targets: np.ndarray) -> np.ndarray:
        codes = np.asarray(targets)
        if codes.dtype.kind not in "iu" or codes.ndim != 1:
            raise DataError(
                f"classification targets must be a 1-D array of integer class codes, got "
                f"dtype {codes.dtype} and shape {codes.shape}"
            )
        bad = (codes < 0) | (codes >= self.n_classes)
        if bad.any():
            raise DataError(
                f"class code {int(codes[bad][0])} is outside 0..{self.n_classes - 1} for classes "
                f"{list(self.classes)}; relabel the data or list the class in data.classes"
            )
        return codes.astype(np.int64)

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        if self.out_size == 1:
            p = expit(outputs[:, 0].astype(np.float64))
            proba = np.stack([1.0 - p, p], axis=1)
        else:
            proba = softmax(outputs.astype(np.float64), axis=1)
        if self.class_priors is None:
            return proba
        weighted = proba * np.asarray(self.class_priors)
        return weighted / weighted.sum(axis=1, keepdims=True)

    def predicted_codes(self, outputs: Tensor) -> Tensor:
        """Predicted class codes of raw outputs (threshold 0 on the binary logit)."""
        if self.out_size == 1:
            return (outputs[:, 0] > 0).long()
        return outputs.argmax(dim=1)

    def batch_metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        correct = self.predicted_codes(outputs) == targets
        return {"acc": correct.float().mean()}


@dataclass(frozen=True)
class RegressionTask(Task):
    """One or more values per example.

    ``criterion`` ``mse``, ``l1`` or ``huber``: the model outputs the values themselves.
    ``criterion = "bins"``: the model outputs one logit per bin of the grid ``bin_low,
    bin_low + bin_width, ..., bin_high`` (one value per example) and is trained with
    cross-entropy against a Gaussian of width ``bin_sigma`` around the true value (see
    `physiodl.tracking`). ``max_jump`` (bins only) tracks the value across the windows of a
    recording: the decoded values of consecutive windows differ by at most ``max_jump``.

    Point criteria learn ``(value - target_shift) / target_scale`` and map outputs back, so a
    model starts near the right range whatever the unit (heart rate: ~100 bpm); with
    ``scale_targets`` (default) the pipeline sets the two to the training targets' mean and
    standard deviation. Logged and reported errors are in the targets' own unit.
    """

    n_outputs: int = 1
    criterion: Literal["mse", "l1", "huber", "bins"] = "mse"
    huber_delta: float = 1.0
    bin_low: float = 30.0
    bin_high: float = 230.0
    bin_width: float = 1.0
    bin_sigma: float = 2.0
    max_jump: float | None = None
    scale_targets: bool = True
    target_shift: float = 0.0
    target_scale: float = 1.0

    kind: ClassVar[str] = "regression"
    monitor: ClassVar[str] = "val_mae"
    monitor_mode: ClassVar[MonitorMode] = "min"

    def __post_init__(self) -> None:
        _check_option("criterion", self.criterion, ("mse", "l1", "huber", "bins"))
        if self.n_outputs < 1:
            raise RecipeError(f"regression n_outputs must be >= 1, got {self.n_outputs}")
        bad_bins = self.criterion == "bins" and (
            self.bins.count < 2 or self.n_outputs != 1 or self.bin_sigma <= 0
        )
        if bad_bins:
            raise RecipeError(
                f"criterion 'bins' predicts one value (n_outputs = 1, got {self.n_outputs}) "
                f"over at least 2 bins with bin_sigma > 0 (got {self.bin_sigma})"
            )
        if not self.target_scale > 0:
            raise RecipeError(f"regression target_scale must be > 0, got {self.target_scale}")
        if self.max_jump is not None and (self.criterion != "bins" or self.max_jump < 0):
            raise RecipeError(
                f"max_jump = {self.max_jump} tracks binned outputs: it needs criterion = 'bins' "
                "and a value >= 0"
            )

    @property
    def bins(self) -> ValueBins:
        return ValueBins(self.bin_low, self.bin_high, self.bin_width)

    @property
    def out_size(self) -> int:
        return self.bins.count if self.criterion == "bins" else self.n_outputs

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if self.criterion == "bins":
            values = targets.reshape(len(outputs))
            known = ~torch.isnan(values)
            soft = self.bins.soft_targets(torch.where(known, values, 0.0), self.bin_sigma)
            per_example = -(soft * F.log_softmax(outputs, dim=1)).sum(dim=1)
            return _masked_mean(per_example, known)
        targets = (targets.reshape(outputs.shape) - self.target_shift) / self.target_scale
        return _masked_loss(outputs, targets, self.criterion, huber_delta=self.huber_delta)

    def values(self, outputs: Tensor) -> Tensor:
        """Point outputs in the targets' unit."""
        return outputs * self.target_scale + self.target_shift

    def encode_targets(self, targets: np.ndarray) -> np.ndarray:
        values = np.asarray(targets, dtype=np.float32)
        if values.ndim == 1 and self.n_outputs == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[1] != self.n_outputs:
            raise DataError(
                f"regression targets have shape {values.shape}; expected (n, {self.n_outputs})"
            )
        return values

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        if self.criterion == "bins":
            return self.bins.decode(outputs, None, causal=False)[:, None].astype(np.float32)
        return (outputs * self.target_scale + self.target_shift).astype(np.float32)

    def decode(self, outputs: np.ndarray, *, causal: bool = False) -> np.ndarray:
        """Values ``(windows,)`` of one recording's consecutive window outputs, tracked across
        the windows when ``max_jump`` is set (``causal``: from past windows only)."""
        if self.criterion == "bins":
            return self.bins.decode(outputs, self.max_jump, causal=causal)
        return np.asarray(outputs, dtype=np.float64)[:, 0] * self.target_scale + self.target_shift

    def batch_metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        if self.criterion == "bins":
            centres = torch.as_tensor(self.bins.centres, dtype=outputs.dtype, device=outputs.device)
            values = centres[outputs.argmax(dim=1)][:, None]
            return {"mae": _masked_loss(values, targets.reshape(values.shape), "l1")}
        values = self.values(outputs)
        return {"mae": _masked_loss(values, targets.reshape(values.shape), "l1")}


@dataclass(frozen=True)
class DetectionTask(Task):
    """Per-bin targets (peaks, events), scored per record by peak matching.

    Losses (``criterion``), all over the non-NaN bins: ``bce`` on logits (``pos_weight``
    weighs the rare positive bins: a peak-weighted loss), ``mse`` on raw outputs (the seed's
    regression of the target histogram) and ``pvfinder``, PV-finder's asymmetric cost on
    ``p = sigmoid(output)``: with ``r = (p + 1e-5) / (y + 1e-5)``, ``-log(2r / (r² + 1)) *
    (1 + asymmetry * exp(-r))``, which is 0 at ``p = y`` and punishes missing a peak
    (``r < 1``) more than overshooting.

    Peak finding and matching (`physiodl.peak_matching.PeakMatching`): ``tolerance``,
    ``truth_height``, ``min_distance``; ``threshold`` is the operating point on the scores
    (probabilities, or raw outputs for ``mse``), chosen on validation data as the highest
    efficiency with at most ``fp_budget`` false positives per event (`with_operating_point`).
    The best epoch is the one of highest ``val_efficiency``: that efficiency on a grid of 49
    thresholds, from every validation epoch's outputs.
    """

    criterion: Literal["bce", "mse", "pvfinder"] = "bce"
    pos_weight: float | None = None
    asymmetry: float = 2.5
    tolerance: float = 5.0
    truth_height: float = 0.5
    min_distance: int = 1
    fp_budget: float = 0.2
    threshold: float = 0.5

    kind: ClassVar[str] = "detection"
    monitor: ClassVar[str] = "val_efficiency"
    monitor_mode: ClassVar[MonitorMode] = "max"
    per_bin: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_option("criterion", self.criterion, ("bce", "mse", "pvfinder"))
        if self.pos_weight is not None and self.pos_weight <= 0:
            raise RecipeError(f"detection pos_weight must be positive, got {self.pos_weight}")
        if self.pos_weight is not None and self.criterion != "bce":
            raise RecipeError("detection pos_weight applies to criterion = 'bce' only")
        if self.tolerance < 0 or self.fp_budget < 0 or self.asymmetry < 0 or self.min_distance < 1:
            raise RecipeError(
                "detection needs tolerance, fp_budget and asymmetry >= 0 and min_distance >= 1; "
                f"got {self.tolerance}, {self.fp_budget}, {self.asymmetry}, {self.min_distance}"
            )

    @property
    def out_size(self) -> int:
        return 1

    @property
    def matching(self) -> PeakMatching:
        return PeakMatching(self.tolerance, self.truth_height, self.min_distance, self.fp_budget)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return _masked_loss(
            outputs, targets, self.criterion, pos_weight=self.pos_weight, asymmetry=self.asymmetry
        )

    def encode_targets(self, targets: np.ndarray) -> np.ndarray:
        values = np.asarray(targets, dtype=np.float32)
        known = values[~np.isnan(values)]
        if self.criterion != "mse" and known.size and (known.min() < 0 or known.max() > 1):
            raise DataError(
                f"detection targets for the {self.criterion} criterion must lie in [0, 1] (or "
                f"NaN), got {known.min()}..{known.max()}; use criterion = 'mse' for other values"
            )
        return values

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        return outputs if self.criterion == "mse" else expit(outputs)

    def batch_metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        if self.criterion == "mse":
            return {"mae": _masked_loss(outputs, targets, "l1")}
        mask = ~torch.isnan(targets)
        correct = (outputs > 0) == (targets > 0.5)
        return {"acc": _masked_mean(correct.to(outputs.dtype), mask)}

    def aggregate(self, outputs: np.ndarray, owner: np.ndarray, n_records: int) -> np.ndarray:
        raise DataError(
            "detection outputs are per time bin and have no per-record mean; "
            "physiodl.evaluation stitches them per record"
        )

    def score_records(
        self, targets: Sequence[np.ndarray], predictions: Sequence[np.ndarray]
    ) -> dict[str, Any]:
        return self.matching.scores(targets, predictions, self.threshold)

    def epoch_counts(self, outputs: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        """Peak-matching counts of an epoch's batches (`PeakMatching.counts`), summable."""
        scores = [self.predict(o.float().cpu().numpy()) for o in outputs]
        rows = [r for batch in scores for r in batch.reshape(-1, batch.shape[-1])]
        truth = [r for t in targets for r in t.cpu().numpy().reshape(-1, t.shape[-1])]
        return torch.from_numpy(self.matching.counts(truth, rows))

    def epoch_scores(self, counts: Tensor) -> dict[str, Tensor]:
        """``efficiency``: the best efficiency within the false-positive budget."""
        value = self.matching.efficiency_at_budget(counts.double().cpu().numpy())
        return {"efficiency": torch.tensor(value, dtype=torch.float64, device=counts.device)}

    def with_operating_point(
        self, targets: Sequence[np.ndarray], predictions: Sequence[np.ndarray]
    ) -> DetectionTask:
        return replace(self, threshold=self.matching.best_threshold(targets, predictions))


@dataclass(frozen=True)
class ForecastingTask(Task):
    """The next ``horizon`` steps of the first ``n_channels`` input channels (MSE)."""

    horizon: int
    n_channels: int = 1

    kind: ClassVar[str] = "forecasting"
    monitor: ClassVar[str] = "val_mae"
    monitor_mode: ClassVar[MonitorMode] = "min"

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.n_channels < 1:
            raise RecipeError(
                f"forecasting needs horizon >= 1 and n_channels >= 1, got horizon={self.horizon}, "
                f"n_channels={self.n_channels}"
            )

    @property
    def out_size(self) -> int:
        return self.horizon * self.n_channels

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return _masked_loss(outputs, targets.reshape(outputs.shape), "mse")

    def encode_targets(self, targets: np.ndarray) -> np.ndarray:
        return np.asarray(targets, dtype=np.float32)

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.reshape(len(outputs), self.n_channels, self.horizon)

    def batch_metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        return {"mae": _masked_loss(outputs, targets.reshape(outputs.shape), "l1")}

    def aggregate(self, outputs: np.ndarray, owner: np.ndarray, n_records: int) -> np.ndarray:
        raise DataError(
            "forecasts belong to one position in a record and have no per-record mean; "
            "score them per window"
        )


TASKS: dict[str, type[Task]] = {
    t.kind: t for t in (ClassificationTask, RegressionTask, DetectionTask, ForecastingTask)
}


def make_task(kind: str, **options: Any) -> Task:
    """Build a task by kind name; unknown kinds or options are a `RecipeError`."""
    if kind not in TASKS:
        raise RecipeError(f"unknown task {kind!r}; choose one of {', '.join(TASKS)}")
    cls = TASKS[kind]
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise RecipeError(
            f"task {kind!r} has no option {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(names) or 'none'}"
        )
    try:
        return cls(**options)
    except TypeError as err:
        raise RecipeError(f"task {kind!r}: {err}; allowed options: {', '.join(names)}") from err


def check_task_options(kind: str, options: dict[str, Any]) -> None:
    """A `RecipeError` for an unknown task kind or option name (values are checked on use)."""
    if kind not in TASKS:
        raise RecipeError(f"unknown task {kind!r}; choose one of {', '.join(TASKS)}")
    names = [f.name for f in fields(TASKS[kind])]  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise RecipeError(
            f"task_options: task {kind!r} has no option {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(names) or 'none'}"
        )


def task_from_dict(data: dict[str, Any]) -> Task:
    """Inverse of `Task.to_dict`."""
    options = dict(data)
    kind = options.pop("kind", None)
    if not isinstance(kind, str):
        raise RecipeError(f"task description {data!r} has no 'kind'")
    return make_task(kind, **options)


def _check_option(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise RecipeError(f"task option {name} = {value!r} is not one of {', '.join(allowed)}")


def _masked_loss(
    outputs: Tensor,
    targets: Tensor,
    criterion: str,
    *,
    huber_delta: float = 1.0,
    pos_weight: float | None = None,
    asymmetry: float = 0.0,
) -> Tensor:
    """Mean element loss over the non-NaN targets, without a host sync (0 if all are NaN)."""
    mask = ~torch.isnan(targets)
    clean = torch.where(mask, targets, torch.zeros_like(targets))
    if criterion == "l1":
        values = (outputs - clean).abs()
    elif criterion == "huber":
        values = F.huber_loss(outputs, clean, reduction="none", delta=huber_delta)
    elif criterion == "bce":
        weight = None if pos_weight is None else outputs.new_tensor(pos_weight)
        values = F.binary_cross_entropy_with_logits(
            outputs, clean, pos_weight=weight, reduction="none"
        )
    elif criterion == "pvfinder":
        values = _pvfinder_cost(torch.sigmoid(outputs), clean, asymmetry)
    else:
        values = (outputs - clean).square()
    return _masked_mean(values, mask)


def _pvfinder_cost(p: Tensor, y: Tensor, asymmetry: float, epsilon: float = 1e-5) -> Tensor:
    """PV-finder's per-bin cost: ``-log(2r / (r² + 1)) * (1 + asymmetry * exp(-r))``."""
    r = (p + epsilon) / (y + epsilon)
    return -torch.log(2 * r / (r.square() + 1)) * (1 + asymmetry * torch.exp(-r))


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    kept = mask.to(values.dtype)
    return (values * kept).sum() / kept.sum().clamp_min(1.0)


def _plain(value: Any) -> Any:
    """Tuples to lists so the description is TOML/JSON friendly."""
    return list(value) if isinstance(value, tuple) else value


def _owner_mean(outputs: np.ndarray, owner: np.ndarray, n_records: int) -> np.ndarray:
    """Mean of ``outputs`` rows per owner record, ``(n_records, *outputs.shape[1:])``."""
    owner = np.asarray(owner, dtype=np.int64)
    counts = np.bincount(owner, minlength=n_records)
    if len(counts) > n_records or (counts == 0).any():
        missing = np.flatnonzero(counts[:n_records] == 0)
        raise DataError(
            f"cannot aggregate: records {missing[:10].tolist()} have no windows "
            f"(or an owner index is >= {n_records})"
        )
    flat = outputs.reshape(len(outputs), -1).astype(np.float64)
    sums = np.zeros((n_records, flat.shape[1]), dtype=np.float64)
    np.add.at(sums, owner, flat)
    means = sums / counts[:, None]
    return means.reshape((n_records, *outputs.shape[1:])).astype(np.float32)
