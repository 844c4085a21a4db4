"""Report sections for detection (peak finding) runs: scores at the operating point, the
efficiency vs false-positive curves and example events."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from physiodl.report import html
from physiodl.report.html import Section
from physiodl.report.rundir import RunData, level_metrics
from physiodl.report.sections import FigureStore, model_colours

SCORE_COLUMNS = (
    ("efficiency", "efficiency"),
    ("fp_per_event", "false positives / event"),
    ("position_error", "position error (bins)"),
    ("threshold", "threshold"),
    ("n_true", "true peaks"),
    ("n_events", "events"),
)


def detection_sections(run: RunData, store: FigureStore) -> list[Section]:
    """Scores at the operating point, efficiency vs false positives, example events."""
    return [scores_section(run), curves_section(run, store), examples_section(run, store)]


def scores_section(run: RunData) -> Section:
    rows = []
    for model in run.models:
        record = level_metrics(run, model, "record") or {}
        loss = (run.models[model].get("task") or {}).get("criterion", "—")
        rows.append([model, loss, *(_cell(record.get(key)) for key, _ in SCORE_COLUMNS)])
    first = level_metrics(run, next(iter(run.models)), "record") or {}
    intro = html.paragraph(
        f"Validation events. A true peak is found when a predicted peak (a local maximum of the "
        f"model's per-bin score above the threshold) lies within {first.get('tolerance', '?')} "
        f"bins; matching is one to one. The threshold of each model is its operating point: the "
        f"highest validation efficiency with at most {first.get('fp_budget', '?')} false "
        "positives per event. Masked (NaN) target bins count neither way."
    )
    headers = ["model", "loss", *(label for _, label in SCORE_COLUMNS)]
    table = html.table(headers, rows, numeric=range(2, len(headers)))
    return Section("scores", "Scores", intro + table)


def curves_section(run: RunData, store: FigureStore) -> Section:
    curves: dict[str, dict[str, Any]] = {}
    for model in run.models:
        record = level_metrics(run, model, "record") or {}
        if isinstance(record.get("curve"), dict):
            curves[model] = record
    if not curves:
        return Section("curves-fp", "Efficiency vs false positives", html.notice("No curves."))
    fig = efficiency_curves(curves, model_colours(run))
    caption = (
        "Efficiency against false positives per event as the threshold varies (validation "
        "events); dots mark each model's operating point, the dashed line the budget."
    )
    body = store.embed("efficiency_fp", fig, "efficiency vs false positives per model", caption)
    return Section("curves-fp", "Efficiency vs false positives", body)


def examples_section(run: RunData, store: FigureStore) -> Section:
    examples = {}
    for model in run.models:
        path = run.path / "models" / model / "examples.npz"
        if path.is_file():
            examples[model] = _read_examples(path)
    if not examples:
        return Section("events", "Example events", html.notice("No models/*/examples.npz."))
    fig = example_events(examples, model_colours(run))
    caption = (
        "The first validation events: the first input channel (grey, scaled to 1), the target "
        "(black) and each model's per-bin score (colour), over the bins where anything happens."
    )
    return Section(
        "events", "Example events", store.embed("events", fig, "example events", caption)
    )


def efficiency_curves(
    curves: Mapping[str, Mapping[str, Any]], colours: Mapping[str, Any]
) -> Figure:
    """Efficiency vs false positives per event, one line per model, operating points marked."""
    fig = Figure(figsize=(6.8, 4.4), layout="constrained")
    ax = fig.add_subplot()
    budget = None
    for model, record in curves.items():
        curve = record["curve"]
        fp, eff = np.asarray(curve["fp_per_event"], float), np.asarray(curve["efficiency"], float)
        ax.plot(fp, eff, "-", color=colours[model], lw=1.4, label=model)
        ax.plot(record["fp_per_event"], record["efficiency"], "o", color=colours[model], ms=6)
        budget = record.get("fp_budget", budget)
    if budget is not None:
        ax.axvline(budget, color="0.4", ls="--", lw=0.8)
    ax.set_xlim(0, 2.0)
    ax.set_ylim(max(0.0, ax.get_ylim()[0]), 1.0)
    ax.set_xlabel("false positives per event")
    ax.set_ylabel("efficiency (found / true peaks)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def example_events(
    examples: Mapping[str, Mapping[str, np.ndarray]], colours: Mapping[str, Any]
) -> Figure:
    """One panel per event: input, target and every model's score."""
    first = next(iter(examples.values()))
    n = len(first["targets"])
    fig = Figure(figsize=(11, 2.3 * n + 0.4), layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for i, ax in enumerate(axes):
        target = first["targets"][i]
        lo, hi = _active_range(first["inputs"][i], target)
        bins = np.arange(lo, hi)
        signal = first["inputs"][i][lo:hi] - np.median(first["inputs"][i])
        scale = np.nanmax(np.abs(signal)) or 1.0
        label = f"{first['channel']} (input, scaled)"
        ax.plot(bins, signal / scale, color="0.6", lw=0.8, label=label)
        ax.plot(bins, target[lo:hi], color="black", lw=1.2, label="target")
        for model, data in examples.items():
            if i < len(data["predictions"]):
                ax.plot(
                    bins, data["predictions"][i][lo:hi], color=colours[model], lw=1, label=model
                )
        ax.set_title(str(first["ids"][i]), fontsize=9, loc="left")
        ax.set_ylabel("score")
    axes[0].legend(fontsize=7, ncol=len(examples) + 2, loc="upper right")
    axes[-1].set_xlabel("bin")
    return fig


def _active_range(inputs: np.ndarray, target: np.ndarray, pad: int = 40) -> tuple[int, int]:
    """Bins where the input leaves its baseline (its median) or the target is positive."""
    deviation = np.abs(inputs - np.median(inputs))
    busy = np.flatnonzero((deviation > 1e-3 * (deviation.max() or 1.0)) | (target > 0))
    if not len(busy):
        return 0, len(target)
    return max(0, int(busy[0]) - pad), min(len(target), int(busy[-1]) + pad)


def _read_examples(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.3f}"
