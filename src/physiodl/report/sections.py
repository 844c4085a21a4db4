"""Report sections shared by every task kind: summary, comparison, curves, examples, run, recipe."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from physiodl.report import html, plots
from physiodl.report.comparison import comparison_html
from physiodl.report.html import Section, esc
from physiodl.report.rundir import Example, RunData, to_float

EXAMPLES_PER_CLASS = 2
EXCERPT_SECONDS = 10.0
VERSION_KEYS = ("physiodl", "python", "torch", "lightning", "numpy", "platform")
RUN_KEYS = (*VERSION_KEYS, "command", "seed", "started", "finished")


class FigureStore:
    """Writes each figure to ``folder/<name>.png`` and returns it embedded as HTML."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder

    def embed(self, name: str, fig: Figure, alt: str, caption: str) -> str:
        png = plots.png_bytes(fig)
        (self.folder / f"{name}.png").write_bytes(png)
        return html.figure(png, alt, caption)


def model_colours(run: RunData) -> dict[str, plots.Colour]:
    """Model colours in ``metrics.json`` order, so every figure agrees."""
    return plots.model_colours(list(run.models))


def title(run: RunData) -> str:
    return f"physiodl report: {run.recipe}"


def subtitle(run: RunData) -> str:
    meta = run.metadata or {}
    run_id = run.path.name.removeprefix(".").removesuffix(".partial")  # written before the move
    parts = [f"{run.task} · {len(run.models)} models · run {run_id}"]
    if "started" in meta:
        parts.append(f"started {format_time(meta['started'])}")
    if "duration_s" in meta:
        parts.append(f"took {format_duration(to_float(meta['duration_s']))}")
    return " · ".join(parts)


def summary_section(run: RunData) -> Section:
    """When, on what data, and everything the reader must not miss (skipped records, gaps)."""
    body = []
    skipped = _skipped(run)
    if skipped:
        total = sum(len(ids) for ids in skipped.values())
        reasons = "; ".join(f"{reason}: {len(ids)}" for reason, ids in skipped.items())
        body.append(html.notice(f"{total} records were skipped ({reasons}); see Run.", True))
    if run.missing:
        body.append(
            html.notice(
                "Not in the run directory: "
                + ", ".join(run.missing)
                + ". The sections that need these files say what they cannot show.",
                True,
            )
        )
    if run.metadata is None:
        return Section("summary", "Summary", "".join(body))
    meta = run.metadata
    data = meta.get("data") or {}
    items = [
        ("started", format_time(meta.get("started", "—"))),
        ("duration", format_duration(to_float(meta.get("duration_s")))),
        ("data", f"{data.get('path', '—')}: {data.get('n_records', '?')} records"),
        ("classes", describe(data.get("class_counts", "—"))),
        ("excluded", describe(data.get("excluded") or "none")),
        ("split", describe(meta.get("split", "—"))),
    ]
    items = [(term, esc(text)) for term, text in items]
    return Section("summary", "Summary", "".join(body) + html.definitions(items))


def comparison_section(run: RunData, store: FigureStore) -> Section:
    """The comparison table and the throughput chart."""
    if run.comparison is None:
        body = [html.notice("comparison.csv not found: the comparison table cannot be shown.")]
    else:
        body = [comparison_html(run.comparison)]
    models = list(run.models)
    speeds = [to_float(run.models[m].get("examples_per_second")) for m in models]
    unknown = [m for m, v in zip(models, speeds, strict=True) if not v > 0]
    if len(unknown) == len(models):
        body.append(html.notice("No model in metrics.json reports examples_per_second."))
    else:
        caption = "Training throughput (examples per second, log scale)."
        if unknown:
            caption += f" Not reported for: {', '.join(unknown)}."
        fig = plots.throughput_bars(models, speeds, model_colours(run))
        body.append(store.embed("throughput", fig, "training throughput per model", caption))
    return Section("comparison", "Comparison", "".join(body))


def learning_curves_section(run: RunData, store: FigureStore) -> Section:
    """Train and validation curves of every metric in each model's history."""
    body = []
    untrained = [m for m in run.models if run.models[m].get("trainable") is False]
    lacking = [m for m in run.models if m not in run.histories and m not in untrained]
    if lacking:
        body.append(html.notice(f"No history.csv for: {', '.join(lacking)}."))
    if untrained:
        body.append(html.notice(f"Not trained (no trainable parameters): {', '.join(untrained)}."))
    if run.histories:
        best = {m: run.models[m].get("best_epoch") for m in run.histories}
        fig = plots.learning_curves(run.histories, best, model_colours(run))
        caption = (
            "Per epoch: training (dashed) and validation (solid); "
            "the dotted line marks the best epoch, whose checkpoint is evaluated."
        )
        if any("folds" in run.models[m] for m in run.histories):
            caption += " Cross-validated models: the first fold's curves."
        body.append(store.embed("learning_curves", fig, "learning curves per model", caption))
    return Section("curves", "Learning curves", "".join(body))


def examples_section(run: RunData, store: FigureStore) -> Section:
    """Raw examples per class and the features the models see."""
    examples = run.examples
    if examples is None or not examples.items:
        what = "examples.npz not found" if examples is None else "examples.npz holds no examples"
        return Section("examples", "Examples", html.notice(f"{what}: no example signals to show."))
    groups = _by_label(examples.items, run.classes)
    raw_caption = (
        f"Up to {EXAMPLES_PER_CLASS} records per class: {EXCERPT_SECONDS:g} s from the middle of "
        f"each recording (sampled at {examples.raw_fs:g} Hz)."
    )
    feature_caption = (
        f"The same excerpts as the models see them: {len(examples.feature_channels)} feature "
        f"channels at {examples.feature_fs:.3g} frames/s."
    )
    raw = plots.example_signals(groups, examples.raw_fs, EXCERPT_SECONDS)
    features = plots.example_spectrograms(
        groups,
        examples.raw_fs,
        examples.feature_fs,
        plots.channel_frequencies(examples.feature_channels),
        EXCERPT_SECONDS,
    )
    body = store.embed("examples_signals", raw, "example recordings per class", raw_caption)
    body += store.embed("examples_features", features, "their model features", feature_caption)
    return Section("examples", "Examples", body)


def run_section(run: RunData) -> Section:
    """Versions, command, seed, data provenance, split and skipped records."""
    if run.metadata is None:
        return Section("run", "Run", html.notice("metadata.json not found: no run details."))
    meta = run.metadata
    data = meta.get("data") or {}
    shown = {**meta, **{k: format_time(meta[k]) for k in ("started", "finished") if k in meta}}
    others = [k for k in shown if k not in (*RUN_KEYS, "duration_s", "data", "split")]
    items = [(key, esc(describe(shown[key]))) for key in (*RUN_KEYS, *others) if key in shown]
    items += [("duration", esc(format_duration(to_float(meta.get("duration_s")))))]
    items += [(f"data {k}", esc(describe(v))) for k, v in data.items() if k != "skipped"]
    items += [("split", esc(describe(meta.get("split", "—"))))]
    skipped = _skipped(run)
    listing = [
        f"<strong>{esc(reason)}</strong>: {len(ids)} records: "
        + (esc(", ".join(ids)) if len(ids) <= 20 else html.details("show ids", esc(", ".join(ids))))
        for reason, ids in skipped.items()
    ]
    items.append(("skipped records", html.bullet_list(listing) if listing else "none"))
    return Section("run", "Run", html.definitions(items))


def recipe_section(run: RunData) -> Section:
    """The resolved recipe, verbatim and collapsed."""
    if run.config_text is None:
        return Section("recipe", "Recipe", html.notice("config.toml not found: no recipe to show."))
    return Section(
        "recipe",
        "Recipe",
        html.details("config.toml (resolved)", html.preformatted(run.config_text)),
    )


def metrics_table(run: RunData, levels: Sequence[str] = ("record", "chunk")) -> str:
    """Every scalar metric per model and level, as in ``metrics.json``."""
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for model, entry in run.models.items():
        for level in levels:
            values = entry.get(level)
            if isinstance(values, dict):
                rows.append((model, level, values))
    names: list[str] = []
    for _, _, values in rows:
        names += [k for k, v in values.items() if _is_number(v) and k not in names]
    cells = [
        [model, level, *(_number(values.get(name)) for name in names)]
        for model, level, values in rows
    ]
    return html.table(["model", "level", *names], cells, numeric=range(2, 2 + len(names)))


def format_time(value: object) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS``; anything else as given."""
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``1 h 02 min``; ``—`` when unknown."""
    if math.isnan(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


#: list items shown in one line before the rest is left to metadata.json
LISTED = 6


def describe(value: object) -> str:
    """A metadata value as one line: mappings as ``key: value, ...``, ``None`` as ``—``."""
    if value is None:
        return "—"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {describe(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        if len(value) > LISTED:  # e.g. excluded record ids: all of them are in metadata.json
            shown = ", ".join(describe(v) for v in value[:LISTED])
            return f"{len(value)} ({shown}, … all in metadata.json)"
        return ", ".join(describe(v) for v in value) or "none"
    return str(value)


def _skipped(run: RunData) -> dict[str, list[str]]:
    skipped = ((run.metadata or {}).get("data") or {}).get("skipped") or {}
    return {str(reason): [str(i) for i in ids] for reason, ids in skipped.items() if ids}


def _by_label(items: Sequence[Example], classes: Sequence[str]) -> dict[str, list[Example]]:
    labels = [c for c in classes if any(e.label == c for e in items)]
    labels += sorted({e.label for e in items} - set(labels))
    return {label: [e for e in items if e.label == label][:EXAMPLES_PER_CLASS] for label in labels}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:.3f}" if isinstance(value, float) else "—"
