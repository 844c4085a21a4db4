"""One model of a recipe, trained and evaluated over the recipe's splits.

With one split the model is trained on its training part and scored on its validation part.
With cross-validation (``split.kind = "kfold"`` without ``fold``) it is trained once per fold;
the validation scores pool the out-of-fold predictions of every record (each record is
predicted once, by the model that never saw it), and the folds' models become one
`FoldEnsemble`. A test part, the same in every split, is scored once by the exported model
(the ensemble under cross-validation): nothing about the test records chose anything.

A model without trainable parameters (a classical baseline) is not trained: it is evaluated
exactly as the others, so the comparison shows what learning adds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from physiodl.checkpoint import TrainedModel, save_checkpoint
from physiodl.ensemble import FoldEnsemble
from physiodl.errors import RecipeError
from physiodl.evaluation import Evaluation, evaluate, with_operating_point
from physiodl.features import FeaturePipeline
from physiodl.models import build_model
from physiodl.outputs import write_bin_examples, write_predictions
from physiodl.recipes import ChunkConfig, ModelConfig, RecipeConfig
from physiodl.rundir import RunDirectory, write_json
from physiodl.signalset import SignalSet
from physiodl.splits import Split
from physiodl.tasks import Task, make_task
from physiodl.trace_evaluation import TraceEvaluation, evaluate_traces
from physiodl.training import ChunkDataModule, fit
from physiodl.transforms.augment import Augmentation
from physiodl.transforms.balance import LOSS_WEIGHT_POWER, class_weights
from physiodl.window_targets import TargetWindows, check_chunks

log = logging.getLogger(__name__)

PartEvaluation = Evaluation | TraceEvaluation
#: Levels of a trace evaluation kept per fold (the per-record tables are in the pooled one).
FOLD_LEVELS = ("chunk", "record", "offline", "causal")


@dataclass(frozen=True)
class FoldResult:
    """A trained (or training-free) model of one split, its scaling and its validation scores."""

    model: nn.Module
    pipeline: FeaturePipeline
    task: Task
    evaluation: PartEvaluation
    summary: dict[str, Any]
    validation: SignalSet


def train_and_evaluate(
    config: RecipeConfig,
    model_cfg: ModelConfig,
    raw: SignalSet,
    features_of: Callable[[FeaturePipeline], SignalSet],
    splits: list[Split],
    run: RunDirectory,
    *,
    resume: bool,
    callbacks: tuple[Any, ...] = (),
) -> dict[str, Any]:
    """Train ``model_cfg`` on every split; write its directory; return its summary."""
    model_dir = run.model_dir(model_cfg.name)
    done = model_dir / "result.json"
    if done.is_file() and run.is_main_process:
        log.info("%s: already trained in this run, skipping", model_cfg.name)
        return json.loads(done.read_text())
    base = FeaturePipeline.for_data(config.model_features(model_cfg), raw.fs)
    features = features_of(base)
    cross_validation = len(splits) > 1
    folds = []
    for split in splits:
        fold_dir = model_dir / f"fold{split.fold}" if cross_validation else model_dir
        tensorboard = run.tensorboard_dir(model_cfg.name)
        if cross_validation:
            tensorboard = tensorboard / f"fold{split.fold}"
        folds.append(
            _train_fold(
                config,
                model_cfg,
                raw,
                features,
                base,
                split,
                fold_dir,
                tensorboard,
                resume=resume,
                callbacks=callbacks,
            )
        )
        if cross_validation and run.is_main_process:
            log.info("      fold %d: %s", split.fold, headline(folds[-1].summary))
    if not run.is_main_process:
        return {}
    trained, features_for_test = _exported(config, model_cfg, raw, features, base, folds)
    model_dir.mkdir(parents=True, exist_ok=True)
    validation = _pooled([f.evaluation for f in folds], folds[0].task)
    summary = _summary(model_cfg, folds, validation, cross_validation)
    write_predictions(model_dir / "predictions.csv", validation, folds[0].task)
    if folds[0].task.per_bin:
        write_bin_examples(
            model_dir / "examples.npz", folds[0].validation, folds[0].evaluation.record_predictions
        )
    test = splits[0].test
    if len(test):
        test_data = features_for_test.subset(test)
        chunks = config.model_features(model_cfg).chunks
        test_set = trained.features.normalise(test_data)  # features_of already transformed it
        evaluation = _evaluate(trained.model, trained.task, test_set, chunks)
        summary["test"] = evaluation.levels()
        write_predictions(model_dir / "test_predictions.csv", evaluation, trained.task)
    trained = replace(trained, metrics={k: v for k, v in summary.items() if k != "folds"})
    save_checkpoint(model_dir / "best.ckpt", trained)
    write_json(done, summary)
    return summary


def headline(result: dict[str, Any]) -> str:
    """One line of a model's (or a fold's) scores for the console."""
    parts = []
    record = result.get("record", {})
    if "efficiency" in record:
        error = record["position_error"]
        parts.append(
            f"efficiency {record['efficiency'] or 0:.3f} at {record['fp_per_event']:.3f} false "
            f"positives/event (threshold {record['threshold']:.3g}), position error "
            f"{'—' if error is None else f'{error:.2f}'} bins"
        )
    elif "offline" in result:
        parts.append(f"MAE offline {result['offline']['mae']:.2f}")
        parts.append(f"causal {result['causal']['mae']:.2f}")
        if "test" in result:
            parts.append(f"test MAE offline {result['test']['offline']['mae']:.2f}")
    else:
        chunk = result.get("chunk", {})
        parts += [f"{key} {record[key]:.3f}" for key in ("cinc_score", "af_f1") if key in record]
        if "balanced_accuracy" in record:
            parts.append(f"record balanced acc {record['balanced_accuracy']:.3f}")
        else:
            parts.append(f"record MAE {record.get('mae', float('nan')):.3f}")
        if "accuracy" in chunk:
            parts.append(f"chunk acc {chunk['accuracy']:.3f}")
    if result.get("trainable", True):
        if result.get("best_epoch") is not None:
            parts.append(f"best epoch {result['best_epoch']}/{result['epochs_trained']}")
        parts.append(f"{result['train_seconds']:.0f} s")
        if result.get("examples_per_second") is not None:
            parts.append(f"{result['examples_per_second']:.0f} examples/s")
    else:
        parts.append("no training (no trainable parameters)")
    return ", ".join(parts)


def _train_fold(
    config: RecipeConfig,
    model_cfg: ModelConfig,
    raw: SignalSet,
    features: SignalSet,
    base: FeaturePipeline,
    split: Split,
    out_dir: Path,
    tensorboard_dir: Path,
    *,
    resume: bool,
    callbacks: tuple[Any, ...],
) -> FoldResult:
    features_cfg = config.model_features(model_cfg)
    train_cfg = config.model_train(model_cfg)
    train_raw = features.subset(split.train)
    pipeline = base.fit(train_raw)
    train_set = pipeline.normalise(train_raw)
    val_set = pipeline.normalise(features.subset(split.validation))
    task = _task(config, model_cfg, raw, train_set, features_cfg.balance)
    chunks = features_cfg.chunks
    target_stride = _target_stride(train_set, chunks)
    seed = config.model_seed(model_cfg)
    torch.manual_seed(seed)  # the same initial weights, whatever ran before
    model = _build(model_cfg, task, train_set.n_channels, chunks.length, train_set.fs)
    summary: dict[str, Any] = {
        "fold": split.fold,
        "trainable": any(p.requires_grad for p in model.parameters()),
        "best_epoch": None,
        "epochs_trained": 0,
        "train_seconds": 0.0,
        "examples_per_second": 0.0,
    }
    if summary["trainable"]:
        datamodule = ChunkDataModule(
            train_set,
            val_set,
            length=chunks.length,
            random=chunks.random,
            stride=chunks.stride,
            balance=features_cfg.balance,
            batch_size=train_cfg.batch_size,
            num_workers=train_cfg.num_workers,
            seed=seed,
            augmentation=Augmentation(**train_cfg.augment.model_dump()).checked(train_set.channels),
            target_stride=target_stride,
            rate_scale=train_cfg.rate_scale,
        )
        fitted = fit(
            model,
            task,
            datamodule,
            out_dir=out_dir,
            tensorboard_dir=tensorboard_dir,
            train_cfg=train_cfg,
            seed=seed,
            resume=resume,
            callbacks=callbacks,
        )
        if fitted.interrupted:
            raise KeyboardInterrupt  # the run stays a .partial folder that --resume continues
        if train_cfg.keep == "best":
            model.load_state_dict(fitted.best_state_dict)
        summary |= {
            "best_epoch": fitted.best_epoch if train_cfg.keep == "best" else len(fitted.history),
            "epochs_trained": len(fitted.history),
            "train_seconds": fitted.train_seconds,
            "examples_per_second": fitted.examples_per_second,
        }
    evaluation = _evaluate(model, task, val_set, chunks)
    if isinstance(evaluation, Evaluation):  # per-bin tasks: decision settings from validation
        task, evaluation = with_operating_point(task, val_set, evaluation)
    levels = evaluation.levels()
    summary |= {level: levels[level] for level in FOLD_LEVELS if level in levels}
    summary["validation_records"] = len(val_set)
    return FoldResult(model, pipeline, task, evaluation, summary, val_set)


def _evaluate(model: nn.Module, task: Task, data: SignalSet, chunks: ChunkConfig) -> PartEvaluation:
    """Scores of ``model`` on normalised ``data``: per window of target traces, else as
    `physiodl.evaluation.evaluate` (windows and whole records)."""
    if TargetWindows.of(data) is not None and chunks.length is not None:
        return evaluate_traces(model, task, data, length=chunks.length)
    return evaluate(model, task, data, **chunks.evaluation())


def _pooled(parts: list[PartEvaluation], task: Task) -> PartEvaluation:
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, TraceEvaluation) for p in parts):
        return TraceEvaluation.pooled(parts)  # type: ignore[arg-type]
    return Evaluation.pooled(task, parts)  # type: ignore[arg-type]


def _exported(
    config: RecipeConfig,
    model_cfg: ModelConfig,
    raw: SignalSet,
    features: SignalSet,
    base: FeaturePipeline,
    folds: list[FoldResult],
) -> tuple[TrainedModel, SignalSet]:
    """The model to export (the folds' ensemble under cross-validation) and the features it
    takes (normalised by its own pipeline)."""
    first = folds[0]
    if len(folds) == 1:
        model, pipeline = first.model, first.pipeline
        ensemble = None
    else:
        normalisers = [f.pipeline.normaliser for f in folds]
        channels = features.n_channels
        model = FoldEnsemble.of([f.model for f in folds], normalisers, channels)
        model.eval()
        pipeline, ensemble = base, len(folds)
    target_windows = TargetWindows.of(features)
    trained = TrainedModel(
        model=model,
        task=first.task,
        features=pipeline,
        arch=model_cfg.arch,
        hparams=dict(model_cfg.hparams),
        dataset={
            "name": config.data.dataset,
            "fs": raw.fs,
            "channels": list(raw.channels),
            "feature_channels": list(features.channels),
            "feature_fs": features.fs,
            "classes": list(raw.classes or ()),
            "target_windows": None if target_windows is None else target_windows.to_dict(),
        },
        recipe=config.model_dump(mode="json"),
        metrics={},
        ensemble=ensemble,
    )
    return trained, features


def _summary(
    model_cfg: ModelConfig,
    folds: list[FoldResult],
    validation: PartEvaluation,
    cross_validation: bool,
) -> dict[str, Any]:
    first = folds[0].summary
    seconds = sum(f.summary["train_seconds"] for f in folds)
    speeds = [f.summary["examples_per_second"] for f in folds]
    summary: dict[str, Any] = {
        "arch": model_cfg.arch,
        "n_params": sum(p.numel() for p in folds[0].model.parameters()),
        "trainable": first["trainable"],
        "best_epoch": None if cross_validation else first["best_epoch"],
        "epochs_trained": max(f.summary["epochs_trained"] for f in folds),
        "train_seconds": seconds,
        "examples_per_second": float(np.mean(speeds)),
        "validation": f"{len(folds)}-fold cross-validation" if cross_validation else "split",
        "task": folds[0].task.to_dict(),
        **validation.levels(),
    }
    if cross_validation:
        summary["folds"] = [f.summary for f in folds]
    return summary


def _task(
    config: RecipeConfig, model_cfg: ModelConfig, raw: SignalSet, train: SignalSet, balance: str
) -> Task:
    options = config.model_task_options(model_cfg)
    point = options.get("criterion", "mse") != "bins"
    if config.task == "regression" and point and options.get("scale_targets", True):
        options |= _target_scaling(train)
    if config.task != "classification":
        return make_task(config.task, **options)
    codes = np.asarray(train.targets)
    n_classes = len(raw.classes or ())
    # the model learns classes as frequent as frequency x loss weight (oversampling: uniform),
    # so the way back to the training frequencies is the frequency, or 1 / loss weight
    priors = np.bincount(codes, minlength=n_classes).astype(np.float64)
    if balance in LOSS_WEIGHT_POWER:
        weights = class_weights(codes, n_classes, power=LOSS_WEIGHT_POWER[balance])
        options["class_weights"] = weights.tolist()
        priors = 1.0 / weights
    if balance != "none" and config.model_evaluation(model_cfg).class_priors == "training":
        options["class_priors"] = (priors / priors.sum()).tolist()
    return make_task("classification", classes=raw.classes, **options)


def _target_scaling(train: SignalSet) -> dict[str, float]:
    """Mean and standard deviation of the training targets (NaN left out; scale 1 if flat)."""
    if train.targets is None or not len(train.targets):
        return {}
    values = np.concatenate([np.ravel(np.asarray(t, dtype=np.float64)) for t in train.targets])
    values = values[np.isfinite(values)]
    if not len(values):
        return {}
    scale = float(values.std())
    return {"target_shift": float(values.mean()), "target_scale": scale if scale > 0 else 1.0}


def _target_stride(train: SignalSet, chunks: ChunkConfig) -> int | None:
    """The window stride of per-window targets (checked against the chunks), else ``None``."""
    target_windows = TargetWindows.of(train)
    if target_windows is None:
        return None
    return check_chunks(target_windows, train.fs, chunks.length, chunks.stride)


def _build(
    model_cfg: ModelConfig, task: Task, in_channels: int, length: int | None, fs: float
) -> nn.Module:
    model = build_model(
        model_cfg.arch,
        in_channels=in_channels,
        out_size=task.out_size,
        input_length=length,
        fs=fs,
        **model_cfg.hparams,
    )
    model_bins = getattr(model, "value_bins", None)
    task_bins = getattr(task, "bins", None) if getattr(task, "criterion", "") == "bins" else None
    if model_bins is not None and model_bins != task_bins:
        raise RecipeError(
            f"models.{model_cfg.name}: the model scores the bins {model_bins} but the task "
            f"{task_bins}; give the same bin_low, bin_high and bin_width in hparams and in "
            "task (criterion = 'bins')"
        )
    return model
