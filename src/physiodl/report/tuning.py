"""The report of a hyperparameter search: trials, best values, parameter importances."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from physiodl.report import html
from physiodl.report.html import Section
from physiodl.report.sections import FigureStore


def write_tuning_report(folder: Path, summary: dict[str, Any]) -> Path:
    """Write ``folder/report.html`` for a `physiodl.tuning.study_summary`; return its path."""
    store = FigureStore(folder / "figures")
    trials = summary["trials"]
    sections = [
        _summary_section(summary),
        _history_section(summary, store),
        _importance_section(summary, store),
        _trials_section(trials),
    ]
    states = {}
    for trial in trials:
        states[trial["state"]] = states.get(trial["state"], 0) + 1
    subtitle = f"study {summary['study']} · " + ", ".join(f"{n} {s}" for s, n in states.items())
    page = html.page(f"physiodl tuning report: {summary.get('recipe')}", subtitle, sections)
    out = folder / "report.html"
    partial = folder / ".report.html.partial"
    partial.write_text(page, encoding="utf-8")
    partial.replace(out)
    return out


def _summary_section(summary: dict[str, Any]) -> Section:
    best = summary.get("best")
    items = [
        ("study", html.esc(summary["study"])),
        ("storage", html.esc(summary["storage"])),
        ("objective", html.esc(f"{summary['direction']} {summary.get('metric')}")),
        ("trials", html.esc(len(summary["trials"]))),
    ]
    if best is None:
        body = html.notice("No trial has completed yet.", True)
    else:
        params = html.bullet_list([html.esc(f"{k} = {v!r}") for k, v in best["params"].items()])
        items += [
            ("best trial", html.esc(f"#{best['number']}: {best['value']:.4f}")),
            ("best parameters", params),
            ("best run", html.esc(best.get("run_dir", "—"))),
        ]
        body = ""
    return Section("summary", "Summary", body + html.definitions(items))


def _history_section(summary: dict[str, Any], store: FigureStore) -> Section:
    done = [t for t in summary["trials"] if t["value"] is not None]
    if not done:
        return Section("history", "Trials over time", html.notice("No completed trial."))
    fig = history_figure(summary)
    caption = (
        "Objective per completed trial (dots) and the best so far (line); pruned trials, "
        "stopped early by the pruner, are marked on the axis."
    )
    return Section("history", "Trials over time", store.embed("history", fig, "history", caption))


def _importance_section(summary: dict[str, Any], store: FigureStore) -> Section:
    importances = summary.get("importances") or {}
    if not importances:
        note = summary.get("importance_note") or "not available"
        return Section("importances", "Parameter importances", html.notice(f"Importances: {note}."))
    fig = Figure(figsize=(6.4, 0.45 * len(importances) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    names = list(importances)
    ax.barh(np.arange(len(names)), [importances[n] for n in names], color="tab:blue")
    ax.set_yticks(np.arange(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("importance (fANOVA, share of the objective's variance)")
    caption = (
        "How much of the objective's variation over the completed trials each parameter explains."
    )
    return Section(
        "importances",
        "Parameter importances",
        store.embed("importances", fig, "importances", caption),
    )


def _trials_section(trials: list[dict[str, Any]]) -> Section:
    columns: list[str] = []
    for trial in trials:
        columns += [c for c in trial if c not in columns]
    rows = [[_cell(trial.get(c)) for c in columns] for trial in trials]
    numeric = [
        j for j, c in enumerate(columns) if c in ("number", "value", "epochs_reported", "seconds")
    ]
    return Section("trials", "All trials", html.table(columns, rows, numeric=numeric))


def history_figure(summary: dict[str, Any]) -> Figure:
    """Objective per trial and the running best, in the study's direction."""
    trials = summary["trials"]
    done = [t for t in trials if t["value"] is not None]
    numbers = np.array([t["number"] for t in done])
    values = np.array([t["value"] for t in done], dtype=float)
    best = (
        np.maximum.accumulate(values)
        if summary["direction"] == "maximize"
        else (np.minimum.accumulate(values))
    )
    fig = Figure(figsize=(6.8, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(numbers, values, "o", color="tab:blue", label="trial")
    ax.step(numbers, best, where="post", color="tab:orange", label="best so far")
    pruned = [t["number"] for t in trials if t["state"] == "pruned"]
    if pruned:
        ax.plot(pruned, [ax.get_ylim()[0]] * len(pruned), "x", color="0.4", label="pruned")
    ax.set_xlabel("trial")
    ax.set_ylabel(str(summary.get("metric")))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
