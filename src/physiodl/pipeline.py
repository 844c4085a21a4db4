"""`run_recipe`: a validated recipe in, a complete run directory out.

Stages, in one direction: load (cached) -> split -> per model: features (cached) -> fit the
normaliser on the training records -> train -> evaluate on the validation records -> export.
Then metrics, comparison table, metadata and the report. Models whose results are already in
an interrupted run directory are not trained again by ``--resume``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physiodl.cache import cached_signalset
from physiodl.checkpoint import TrainedModel, save_checkpoint, save_ensemble
from physiodl.datasets import dataset_info, dataset_path, load_dataset
from physiodl.evaluation import evaluate, score
from physiodl.features import FeaturePipeline
from physiodl.models import build_model
from physiodl.outputs import (
    comparison_rows,
    read_probabilities,
    run_metadata,
    write_comparison,
    write_examples,
    write_predictions,
)
from physiodl.recipes import EnsembleConfig, ModelConfig, RecipeConfig, recipe_to_toml
from physiodl.report import write_report
from physiodl.rundir import RunDirectory, open_run_directory, write_json
from physiodl.signalset import SignalSet
from physiodl.splits import Split, check_no_leakage, make_split
from physiodl.tasks import Task, make_task
from physiodl.training import ChunkDataModule, fit
from physiodl.transforms.augment import Augmentation
from physiodl.transforms.balance import class_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How to run a recipe (not what: that is the recipe)."""

    data_dir: Path
    runs_dir: Path = Path("runs")
    resume: bool = False
    only_models: tuple[str, ...] = ()
    use_cache: bool = True
    command: str = field(default_factory=lambda: " ".join(sys.argv))


@dataclass
class _Data:
    raw: SignalSet
    key: dict[str, Any]
    features: dict[str, SignalSet] = field(default_factory=dict)


def run_recipe(config: RecipeConfig, options: RunOptions) -> Path:
    """Run every model of ``config``; returns the finished run directory."""
    started = time.time()
    data = _load(config, options)
    split = _split(config, data.raw)
    run = open_run_directory(
        options.runs_dir, config.name, recipe_to_toml(config), resume=options.resume
    )
    try:
        return _run(config, options, run, data, split, started)
    finally:
        run.release()


def _split(config: RecipeConfig, raw: SignalSet) -> Split:
    split = make_split(
        config.split.kind,
        n=len(raw),
        targets=raw.targets if config.task == "classification" else None,
        groups=raw.groups,
        validation=config.split.validation,
        test=config.split.test,
        seed=config.seed,
        k=config.split.k,
        fold=config.split.fold,
    )
    if raw.groups is not None:
        check_no_leakage(split, raw.groups)
    return split


def _run(
    config: RecipeConfig,
    options: RunOptions,
    run: RunDirectory,
    data: _Data,
    split: Split,
    started: float,
) -> Path:
    log.info(
        "%s: %d records (%d training, %d validation) -> %s",
        config.name,
        len(data.raw),
        len(split.train),
        len(split.validation),
        run.path,
    )
    results: dict[str, dict[str, Any]] = {}
    selected = _selected_models(config, options)
    for number, model_cfg in enumerate(selected, 1):
        log.info("[%d/%d] %s (%s)", number, len(selected), model_cfg.name, model_cfg.arch)
        results[model_cfg.name] = _train_and_evaluate(config, model_cfg, data, split, run, options)
        if run.is_main_process:
            log.info("      %s", _headline(results[model_cfg.name]))
    if not run.is_main_process:
        return run.path
    for ensemble in config.ensembles:
        if not set(ensemble.members) <= set(results):
            log.info("ensemble %s: not all its members ran, left out", ensemble.name)
            continue
        log.info("[ensemble] %s: mean of %s", ensemble.name, ", ".join(ensemble.members))
        results[ensemble.name] = _ensemble(config, ensemble, data, split, run, results)
        log.info("      %s", _headline(results[ensemble.name]))
    _write_summary(config, data, split, results, run, options, started)
    final = run.finalise()
    log.info("run complete: %s", final)
    return final


def _headline(result: dict[str, Any]) -> str:
    """One line of a model's scores for the console."""
    record, chunk = result["record"], result["chunk"]
    parts = [f"{key} {record[key]:.3f}" for key in ("cinc_score", "af_f1") if key in record]
    parts += [
        f"record balanced acc {record['balanced_accuracy']:.3f}"
        if "balanced_accuracy" in record
        else f"record MAE {record.get('mae', float('nan')):.3f}",
    ]
    if chunk:
        parts.append(f"chunk acc {chunk['accuracy']:.3f}")
    if result["best_epoch"] is not None:
        parts.append(f"best epoch {result['best_epoch']}/{result['epochs_trained']}")
    parts.append(f"{result['train_seconds']:.0f} s")
    if result["examples_per_second"] is not None:
        parts.append(f"{result['examples_per_second']:.0f} examples/s")
    return ", ".join(parts)


def _selected_models(config: RecipeConfig, options: RunOptions) -> list[ModelConfig]:
    if not options.only_models:
        return list(config.models)
    return [config.model(name) for name in options.only_models]


def _load(config: RecipeConfig, options: RunOptions) -> _Data:
    info = dataset_info(config.data.dataset)
    loader_options = dict(config.data.options)
    if config.data.classes is not None:
        loader_options["classes"] = tuple(config.data.classes)
    key: dict[str, Any] = {"dataset": info.name, "options": loader_options, "format": 1}
    path = dataset_path(info.name, config.data.path, options.data_dir)
    if path is not None:
        stat = path.stat()
        key |= {"path": str(path), "size": stat.st_size, "mtime": stat.st_mtime_ns}
    raw = cached_signalset(
        key,
        lambda: load_dataset(info.name, path=path, **loader_options),
        enabled=options.use_cache,
    )
    return _Data(raw=raw, key=key)


def _features(data: _Data, pipeline: FeaturePipeline, use_cache: bool) -> SignalSet:
    key = {**data.key, "features": pipeline.cache_key()}
    name = repr(sorted(key["features"].items()))
    if name not in data.features:
        data.features[name] = cached_signalset(
            key, lambda: pipeline.transform(data.raw), enabled=use_cache
        )
    return data.features[name]


def _task(config: RecipeConfig, raw: SignalSet, train: SignalSet, balance: str) -> Task:
    if config.task != "classification":
        return make_task(config.task)
    codes = np.asarray(train.targets)
    n_classes = len(raw.classes or ())
    weights = class_weights(codes, n_classes).tolist() if balance == "class_weights" else None
    priors = None
    if balance != "none" and config.evaluation.class_priors == "training":
        priors = (np.bincount(codes, minlength=n_classes) / len(codes)).tolist()
    return make_task(
        "classification", classes=raw.classes, class_weights=weights, class_priors=priors
    )


def _train_and_evaluate(
    config: RecipeConfig,
    model_cfg: ModelConfig,
    data: _Data,
    split: Split,
    run: RunDirectory,
    options: RunOptions,
) -> dict[str, Any]:
    model_dir = run.model_dir(model_cfg.name)
    done = model_dir / "result.json"
    if done.is_file() and run.is_main_process:
        log.info("%s: already trained in this run, skipping", model_cfg.name)
        return json.loads(done.read_text())
    features_cfg = config.model_features(model_cfg)
    train_cfg = config.model_train(model_cfg)
    pipeline = FeaturePipeline.for_data(features_cfg, data.raw.fs)
    features = _features(data, pipeline, options.use_cache)
    train_raw = features.subset(split.train)
    pipeline = pipeline.fit(train_raw)
    train_set = pipeline.normalise(train_raw)
    val_set = pipeline.normalise(features.subset(split.validation))
    task = _task(config, data.raw, train_set, features_cfg.balance)
    chunks = features_cfg.chunks
    torch.manual_seed(config.seed)  # the same initial weights, whatever ran before
    model = build_model(
        model_cfg.arch,
        in_channels=train_set.n_channels,
        out_size=task.out_size,
        input_length=chunks.length,
        **model_cfg.hparams,
    )
    datamodule = ChunkDataModule(
        train_set,
        val_set,
        length=chunks.length,
        random=chunks.random,
        stride=chunks.stride,
        balance=features_cfg.balance,
        batch_size=train_cfg.batch_size,
        num_workers=train_cfg.num_workers,
        augmentation=Augmentation(**train_cfg.augment.model_dump()),
        seed=config.seed,
    )
    fitted = fit(
        model,
        task,
        datamodule,
        out_dir=model_dir,
        tensorboard_dir=run.tensorboard_dir(model_cfg.name),
        train_cfg=train_cfg,
        seed=config.seed,
        resume=run.resumed,
    )
    if fitted.interrupted:
        raise KeyboardInterrupt  # the run stays a .partial folder that --resume continues
    if not run.is_main_process:
        return {}
    model.load_state_dict(fitted.best_state_dict)
    result = evaluate(model, task, val_set, length=chunks.length, stride=chunks.eval_stride)
    summary = {
        "arch": model_cfg.arch,
        "n_params": sum(p.numel() for p in model.parameters()),
        "best_epoch": fitted.best_epoch,
        "epochs_trained": len(fitted.history),
        "train_seconds": fitted.train_seconds,
        "examples_per_second": fitted.examples_per_second,
        "chunk": result.window_metrics,
        "record": result.record_metrics,
    }
    trained = TrainedModel(
        model=model,
        task=task,
        features=pipeline,
        arch=model_cfg.arch,
        hparams=dict(model_cfg.hparams),
        dataset={
            "name": config.data.dataset,
            "fs": data.raw.fs,
            "channels": list(data.raw.channels),
            "feature_channels": list(train_set.channels),
            "classes": list(data.raw.classes or ()),
        },
        recipe=config.model_dump(mode="json"),
        metrics={"chunk": result.window_metrics, "record": result.record_metrics},
    )
    save_checkpoint(model_dir / "best.ckpt", trained)
    write_predictions(model_dir / "predictions.csv", val_set, task, result.record_predictions)
    write_json(done, summary)
    return summary


def _ensemble(
    config: RecipeConfig,
    ensemble: EnsembleConfig,
    data: _Data,
    split: Split,
    run: RunDirectory,
    results: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Average the members' validation probabilities; bundle their checkpoints."""
    val = data.raw.subset(split.validation)
    classes = tuple(data.raw.classes or ())
    members = [run.model_dir(name) for name in ensemble.members]
    proba = np.mean(
        [read_probabilities(m / "predictions.csv", classes, val.ids) for m in members], axis=0
    )
    task = make_task("classification", classes=classes)
    metrics = score(task, np.asarray(val.targets), proba)
    out = run.model_dir(ensemble.name)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "predictions.csv", val, task, proba)
    save_ensemble(
        out / "best.ckpt",
        [m / "best.ckpt" for m in members],
        recipe=config.model_dump(mode="json"),
        metrics={"record": metrics},
    )
    member_results = [results[name] for name in ensemble.members]
    return {
        "arch": f"Ensemble({', '.join(ensemble.members)})",
        "n_params": sum(r["n_params"] for r in member_results),
        "best_epoch": None,
        "epochs_trained": None,
        "train_seconds": sum(r["train_seconds"] for r in member_results),
        "examples_per_second": None,
        "chunk": {},
        "record": metrics,
        "members": list(ensemble.members),
    }


def _example_pipeline(
    config: RecipeConfig, data: _Data, split: Split, options: RunOptions
) -> FeaturePipeline:
    """The fitted features of the first model with a spectrogram (else the first model)."""
    configs = [config.model_features(m) for m in config.models]
    chosen = next((f for f in configs if f.spectrogram is not None), configs[0])
    pipeline = FeaturePipeline.for_data(chosen, data.raw.fs)
    return pipeline.fit(_features(data, pipeline, options.use_cache).subset(split.train))


def _write_summary(
    config: RecipeConfig,
    data: _Data,
    split: Split,
    results: dict[str, dict[str, Any]],
    run: RunDirectory,
    options: RunOptions,
    started: float,
) -> None:
    metrics = {
        "recipe": config.name,
        "task": config.task,
        "classes": list(data.raw.classes or ()),
        "models": results,
    }
    write_json(run.path / "metrics.json", metrics)
    write_comparison(run.path / "comparison.csv", comparison_rows(results))
    write_examples(
        run.path / "examples.npz", data.raw, split, _example_pipeline(config, data, split, options)
    )
    write_json(
        run.path / "metadata.json",
        run_metadata(config, data.raw, split, options.command, started, os.environ),
    )
    write_report(run.path)
