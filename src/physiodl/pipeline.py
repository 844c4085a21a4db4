"""`run_recipe`: a validated recipe in, a complete run directory out.

Stages, in one direction: load (cached) -> split(s) -> per model (`physiodl.fold_runs`), per
split: features (cached) -> fit the normaliser on the training records -> train -> evaluate on
the validation records; then pooled cross-validation scores, the test part, export. Then
metrics, comparison table, metadata and the report. Models whose results are already in an
interrupted run directory are not trained again by ``--resume``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physiodl.cache import cached_signalset
from physiodl.datasets import dataset_info, dataset_path, load_dataset
from physiodl.features import FeaturePipeline
from physiodl.fold_runs import headline, train_and_evaluate
from physiodl.outputs import (
    comparison_rows,
    run_metadata,
    write_comparison,
    write_examples,
)
from physiodl.recipes import ModelConfig, RecipeConfig, recipe_to_toml
from physiodl.report import write_report
from physiodl.rundir import RunDirectory, open_run_directory, write_json
from physiodl.signalset import SignalSet
from physiodl.splits import Split, make_splits

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
    splits = _splits(config, data.raw)
    run = open_run_directory(
        options.runs_dir, config.name, recipe_to_toml(config), resume=options.resume
    )
    try:
        return _run(config, options, run, data, splits, started)
    finally:
        run.release()


def _splits(config: RecipeConfig, raw: SignalSet) -> list[Split]:
    return make_splits(
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
        )
        if run.is_main_process:
            log.info("      %s", headline(results[model_cfg.name]))
    if not run.is_main_process:
        return run.path
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
    key = {**data.key, "features": pipeline.cache_key()}
    name = repr(sorted(key["features"].items()))
    if name not in data.features:
        data.features[name] = cached_signalset(
            key, lambda: pipeline.transform(data.raw), enabled=use_cache
        )
    return data.features[name]


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
    write_comparison(run.path / "comparison.csv", comparison_rows(results))
    write_examples(run.path / "examples.npz", config, data.raw, splits[0])
    write_json(
        run.path / "metadata.json",
        run_metadata(config, data.raw, splits, options.command, started, os.environ),
    )
    write_report(run.path)
