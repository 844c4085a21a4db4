"""`run_recipe`: a validated recipe in, a complete run directory out.

Stages, in one direction: load (cached) -> split(s) -> per model (`physiodl.fold_runs`), per
split: features (cached) -> fit the normaliser on the training records -> train -> evaluate on
the validation records; then pooled cross-validation scores, the test part, export. Then
ensembles (the members' validation probabilities averaged), metrics, comparison table,
metadata and the report. Models whose results are already in an
interrupted run directory are not trained again by ``--resume``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from physiodl.cache import cached_signalset
from physiodl.checkpoint import save_ensemble
from physiodl.datasets import dataset_info, dataset_path, load_dataset
from physiodl.errors import PhysioDLError, RecipeError
from physiodl.evaluation import Evaluation, score
from physiodl.features import FeaturePipeline
from physiodl.fold_runs import headline, train_and_evaluate
from physiodl.outputs import (
    comparison_rows,
    read_record_probabilities,
    run_metadata,
    write_examples,
    write_predictions,
    write_table,
)
from physiodl.recipes import EnsembleConfig, ModelConfig, RecipeConfig, recipe_to_toml
from physiodl.report import write_report
from physiodl.rundir import RunDirectory, open_run_directory, write_json
from physiodl.signalset import SignalSet
from physiodl.splits import Split, make_splits
from physiodl.tasks import check_task_options, make_task

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
    callbacks: tuple[Any, ...] = ()
    """Extra Lightning callbacks for every model's training (e.g. a tuning trial's pruner)."""
    write_report: bool = True


@dataclass
class _Data:
    raw: SignalSet
    key: dict[str, Any]
    features: dict[str, SignalSet] = field(default_factory=dict)


def run_recipe(config: RecipeConfig, options: RunOptions) -> Path:
    """Run every model of ``config``; returns the finished run directory."""
    started = time.time()
    for model_cfg in _selected_models(config, options):
        check_task_options(config.task, config.model_task_options(model_cfg))
    data = _load(config, options)
    splits = _splits(config, data.raw)
    run = open_run_directory(
        options.runs_dir, config.name, recipe_to_toml(config), resume=options.resume
    )
    try:
        return _run(config, options, run, data, splits, started)
    finally:
        run.release()


def _splits(config: RecipeConfig, raw: SignalSet) -> list[Split]:
    splits = make_splits(
        config.split.kind,
        n=len(raw),
        targets=raw.targets if config.task == "classification" else None,
        groups=raw.groups,
        validation=config.split.validation,
        test=config.split.test,
        test_groups=config.split.test_groups,
        seed=config.seed,
        k=config.split.k,
        fold=config.split.fold,
    )
    size = config.split.train_size
    if size is None:
        return splits
    for split in splits:
        if size > len(split.train):
            raise RecipeError(
                f"split.train_size = {size} exceeds the {len(split.train)} training records; "
                "use more data or a smaller train_size"
            )
    return [replace(split, train=split.train[:size]) for split in splits]


def _run(
    config: RecipeConfig,
    options: RunOptions,
    run: RunDirectory,
    data: _Data,
    splits: list[Split],
    started: float,
) -> Path:
    first = splits[0]
    parts = f"{len(first.train)} training, {len(first.validation)} validation"
    if len(splits) > 1:
        parts = f"{len(splits)}-fold cross-validation"
    log.info(
        "%s: %d records (%s, %d test) -> %s",
        config.name,
        len(data.raw),
        parts,
        len(first.test),
        run.path,
    )
    results: dict[str, dict[str, Any]] = {}
    selected = _selected_models(config, options)
    for number, model_cfg in enumerate(selected, 1):
        log.info("[%d/%d] %s (%s)", number, len(selected), model_cfg.name, model_cfg.arch)
        results[model_cfg.name] = train_and_evaluate(
            config,
            model_cfg,
            data.raw,
            lambda pipeline: _features(data, pipeline, options.use_cache),
            splits,
            run,
            resume=run.resumed,
            callbacks=options.callbacks,
        )
        if run.is_main_process:
            log.info("      %s", headline(results[model_cfg.name]))
    if not run.is_main_process:
        return run.path
    for ensemble in config.ensembles:
        if not set(ensemble.members) <= set(results):
            log.info("ensemble %s: not all its members ran, left out", ensemble.name)
            continue
        log.info("[ensemble] %s: mean of %s", ensemble.name, ", ".join(ensemble.members))
        results[ensemble.name] = _ensemble(config, ensemble, data.raw, run, results)
        log.info("      %s", headline(results[ensemble.name]))
    _write_summary(config, data, splits, results, run, options, started)
    final = run.finalise()
    log.info("run complete: %s", final)
    return final


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
    if not pipeline.changes(data.raw.fs):
        return data.raw  # no step to cache (e.g. peak events used as they are)
    key = {**data.key, "features": pipeline.cache_key()}
    name = repr(sorted(key["features"].items()))
    if name not in data.features:
        data.features[name] = cached_signalset(
            key, lambda: pipeline.transform(data.raw), enabled=use_cache
        )
    return data.features[name]


def _ensemble(
    config: RecipeConfig,
    ensemble: EnsembleConfig,
    raw: SignalSet,
    run: RunDirectory,
    results: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Average the members' record probabilities (validation, and test where there is one);
    bundle their checkpoints."""
    classes = tuple(raw.classes or ())
    task = make_task("classification", classes=classes)
    members = [run.model_dir(name) for name in ensemble.members]
    out = run.model_dir(ensemble.name)
    out.mkdir(parents=True, exist_ok=True)
    levels: dict[str, dict[str, Any]] = {}
    for part in ("predictions.csv", "test_predictions.csv"):
        if not all((m / part).is_file() for m in members):
            continue
        ids, targets, proba = _mean_probabilities([m / part for m in members], classes)
        metrics = score(task, targets, proba)
        levels[part] = metrics
        evaluation = Evaluation({}, metrics, proba, proba, ids=ids, record_targets=targets)
        write_predictions(out / part, evaluation, task)
    save_ensemble(
        out / "best.ckpt",
        [m / "best.ckpt" for m in members],
        recipe=config.model_dump(mode="json"),
        metrics={"record": levels["predictions.csv"]},
    )
    member_results = [results[name] for name in ensemble.members]
    summary: dict[str, Any] = {
        "arch": f"Ensemble({', '.join(ensemble.members)})",
        "n_params": sum(r["n_params"] for r in member_results),
        "best_epoch": None,
        "epochs_trained": None,
        "train_seconds": sum(r["train_seconds"] for r in member_results),
        "examples_per_second": None,
        "chunk": {},
        "record": levels["predictions.csv"],
        "members": list(ensemble.members),
    }
    if "test_predictions.csv" in levels:
        summary["test"] = {"record": levels["test_predictions.csv"]}
    return summary


def _mean_probabilities(
    paths: list[Path], classes: tuple[str, ...]
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Record ids, target codes and the mean class probabilities of prediction files that
    must list the same records in the same order."""
    ids, targets, first = read_record_probabilities(paths[0], classes)
    probabilities = [first]
    for path in paths[1:]:
        other_ids, _, proba = read_record_probabilities(path, classes)
        if other_ids != ids:
            raise PhysioDLError(
                f"{path} lists other records than {paths[0]}; re-run the recipe's members"
            )
        probabilities.append(proba)
    return ids, targets, np.mean(probabilities, axis=0)


def _example_pipeline(
    config: RecipeConfig, data: _Data, split: Split, use_cache: bool
) -> FeaturePipeline:
    """The fitted features of the first model with a spectrogram (else the first model)."""
    configs = [config.model_features(m) for m in config.models]
    chosen = next((f for f in configs if f.spectrogram is not None), configs[0])
    pipeline = FeaturePipeline.for_data(chosen, data.raw.fs)
    return pipeline.fit(_features(data, pipeline, use_cache).subset(split.train))


def _write_summary(
    config: RecipeConfig,
    data: _Data,
    splits: list[Split],
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
    write_table(run.path / "comparison.csv", comparison_rows(results))
    write_examples(
        run.path / "examples.npz",
        data.raw,
        splits[0],
        _example_pipeline(config, data, splits[0], options.use_cache),
    )
    write_json(
        run.path / "metadata.json",
        run_metadata(config, data.raw, splits, options.command, started, os.environ),
    )
    if options.write_report:
        write_report(run.path)
