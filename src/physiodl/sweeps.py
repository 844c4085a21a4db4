"""Recipe sweeps: one run per value of one setting (``[sweep]``), e.g. training-set sizes.

``physiodl run`` of a recipe with a ``[sweep]`` table writes::

    runs/<recipe>/<run id>/
      config.toml                     the resolved recipe, sweep included
      points/<key>=<value>/<run id>/  one complete run per value (its own report)
      sweep.csv, sweep.json           one row per point and model: the record-level metrics
      report.html                     the metrics against the swept value, per model

Points finished in an interrupted sweep are kept by ``--resume``; a point interrupted half
way is resumed.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from physiodl.outputs import write_table
from physiodl.pipeline import RunOptions, run_recipe
from physiodl.recipes import RecipeConfig, recipe_to_toml, sweep_point
from physiodl.rundir import PARTIAL_SUFFIX, open_run_directory, write_json

log = logging.getLogger(__name__)


def point_label(key: str, value: Any) -> str:
    """A folder name for one point: ``split.train_size=5000``."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{key}={json.dumps(value)}").strip("_")


def run_sweep(config: RecipeConfig, options: RunOptions) -> Path:
    """Run every point of ``config.sweep``; returns the finished sweep directory."""
    if config.sweep is None:
        raise ValueError("run_sweep needs a recipe with a [sweep] table")
    points = [(value, sweep_point(config, value)) for value in config.sweep.values]
    run = open_run_directory(
        options.runs_dir, config.name, recipe_to_toml(config), resume=options.resume
    )
    run.release()  # the points open run directories of their own
    rows: list[dict[str, Any]] = []
    point_dirs: dict[str, str] = {}
    for number, (value, point) in enumerate(points, 1):
        label = point_label(config.sweep.key, value)
        base = run.path / "points"
        done = _finished(base / label)
        log.info("sweep point %d/%d: %s", number, len(points), label)
        if done is None:
            resume = options.resume and any((base / label).glob(f".*{PARTIAL_SUFFIX}"))
            named = point.model_copy(update={"name": label})
            done = run_recipe(named, replace(options, runs_dir=base, resume=resume))
        point_dirs[label] = str(done.relative_to(run.path))
        metrics = json.loads((done / "metrics.json").read_text())
        rows += sweep_rows(config.sweep.key, value, metrics)
    summary = {
        "recipe": config.name,
        "task": config.task,
        "key": config.sweep.key,
        "values": config.sweep.values,
        "points": point_dirs,
        "rows": rows,
    }
    write_json(run.path / "sweep.json", summary)
    write_table(run.path / "sweep.csv", rows)
    from physiodl.report.sweep import write_sweep_report

    write_sweep_report(run.path, summary)
    return run.finalise()


def sweep_rows(key: str, value: Any, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model: the swept value, training facts and scalar record-level metrics."""
    rows = []
    for model, result in metrics.get("models", {}).items():
        record = result.get("record", {})
        row: dict[str, Any] = {key: value, "model": model}
        row |= {k: result.get(k) for k in ("best_epoch", "epochs_trained", "train_seconds")}
        row |= {k: v for k, v in record.items() if isinstance(v, int | float) or v is None}
        rows.append(row)
    return rows


def _finished(folder: Path) -> Path | None:
    """The newest complete run in a point's folder, if any."""
    runs = sorted(p for p in folder.glob("*") if p.is_dir() and not p.name.startswith("."))
    runs = [p for p in runs if (p / "metrics.json").is_file()]
    return runs[-1] if runs else None
