"""The report of a recipe sweep: each model's metrics against the swept value."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from physiodl.report import html, plots
from physiodl.report.html import Section
from physiodl.report.sections import FigureStore

#: The metrics plotted per task kind (those present), in this order.
SWEEP_METRICS = {
    "detection": ("efficiency", "fp_per_event", "position_error"),
    "classification": ("cinc_score", "balanced_accuracy", "macro_f1"),
    "regression": ("mae", "rmse"),
}


def write_sweep_report(folder: Path, summary: dict[str, Any]) -> Path:
    """Write ``folder/report.html`` for a sweep summary (`physiodl.sweeps.run_sweep`)."""
    store = FigureStore(folder / "figures")
    key, rows = summary["key"], summary["rows"]
    models = list(dict.fromkeys(row["model"] for row in rows))
    wanted = SWEEP_METRICS.get(summary["task"], ())
    metrics = [m for m in wanted if any(_number(r.get(m)) is not None for r in rows)]
    sections = []
    if metrics:
        fig = sweep_figure(rows, key, models, metrics)
        caption = f"Validation metrics of every model against {key} (one run per value)."
        body = store.embed("sweep", fig, f"metrics against {key}", caption)
    else:
        body = html.notice(f"No metric among {', '.join(wanted) or 'none'} to plot.")
    sections.append(Section("sweep", f"Metrics against {key}", body))
    columns = [key, "model", *metrics, "best_epoch", "epochs_trained", "train_seconds"]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    table = html.table(columns, cells, numeric=range(2, len(columns)))
    sections.append(Section("table", "All points", table))
    links = [
        f'<a href="{html.esc(path)}/report.html">{html.esc(label)}</a>'
        for label, path in summary["points"].items()
    ]
    sections.append(Section("points", "Reports of the points", html.bullet_list(links)))
    subtitle = f"{summary['task']} · sweep over {key}: {summary['values']}"
    page = html.page(f"physiodl sweep report: {summary['recipe']}", subtitle, sections)
    out = folder / "report.html"
    partial = folder / ".report.html.partial"
    partial.write_text(page, encoding="utf-8")
    partial.replace(out)
    return out


def sweep_figure(
    rows: list[dict[str, Any]], key: str, models: list[str], metrics: list[str]
) -> Figure:
    """One panel per metric: its value against the swept value, one line per model."""
    colours = plots.model_colours(models)
    fig = Figure(figsize=(4.2 * len(metrics) + 0.5, 3.6), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    numeric = all(isinstance(r[key], int | float) for r in rows)
    labels = list(dict.fromkeys(str(r[key]) for r in rows))
    for ax, metric in zip(axes, metrics, strict=True):
        for model in models:
            mine = [r for r in rows if r["model"] == model]
            x = [r[key] if numeric else labels.index(str(r[key])) for r in mine]
            y = [_number(r.get(metric)) for r in mine]
            ax.plot(x, np.array(y, dtype=float), "o-", color=colours[model], label=model)
        if not numeric:
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _cell(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "—" if value is None else str(value)
    return f"{number:,.0f}" if float(number).is_integer() else f"{number:.3f}"
