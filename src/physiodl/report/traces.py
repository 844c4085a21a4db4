"""Report sections for per-window value traces (heart rate): errors overall, per subject and
per recording, offline and causal decoding, Bland–Altman plots and traces over time."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps

from physiodl.errors import DataError
from physiodl.report import html, trace_plots
from physiodl.report.html import Section, esc
from physiodl.report.rundir import RunData, read_csv, to_float
from physiodl.report.sections import FigureStore, model_colours

PARTS = {"validation": "predictions.csv", "test": "test_predictions.csv"}
DECODINGS = ("offline", "causal")
#: At most this many recordings in the traces-over-time figure.
MAX_TRACES = 8


@dataclass(frozen=True)
class TraceRows:
    """A model's per-window predictions of one part (``predictions.csv``)."""

    ids: np.ndarray
    groups: np.ndarray
    start_s: np.ndarray
    target: np.ndarray
    offline: np.ndarray
    causal: np.ndarray


def is_trace_run(run: RunData) -> bool:
    """Whether the run's models were scored per window of target traces."""
    return any("offline" in entry for entry in run.models.values())


def trace_sections(run: RunData, store: FigureStore) -> list[Section]:
    rows = {part: _read_rows(run, file) for part, file in PARTS.items()}
    return [
        errors_section(run, store),
        breakdown_section(run),
        bland_altman_section(run, store, rows),
        over_time_section(run, store, rows),
    ]


def errors_section(run: RunData, store: FigureStore) -> Section:
    """Pooled errors of every model on the validation (cross-validation) and test parts."""
    body = [html.paragraph(_parts_note(run))]
    header = ["model", "trained"]
    columns = [("offline", "mae"), ("causal", "mae"), ("offline", "subject_mae")]
    columns += [("offline", "rmse"), ("offline", "within_5"), ("offline", "within_10")]
    parts = [p for p in PARTS if any(_levels(run, m, p) for m in run.models)]
    for part in parts:
        header += [f"{part} {d} {_label(k)}" for d, k in columns]
    cells = []
    for model, entry in run.models.items():
        row = [model, "yes" if entry.get("trainable", True) else "no (baseline)"]
        for part in parts:
            levels = _levels(run, model, part)
            row += [_number((levels.get(d) or {}).get(k)) for d, k in columns]
        cells.append(row)
    body.append(html.table(header, cells, numeric=range(2, len(header))))
    for part in parts:
        errors = {
            m: {d: to_float((_levels(run, m, part).get(d) or {}).get("mae")) for d in DECODINGS}
            for m in run.models
        }
        fig = trace_plots.error_bars(
            list(run.models), errors, model_colours(run), f"Mean absolute error, {part}"
        )
        caption = (
            f"{part.capitalize()} windows pooled: offline decoding of each whole recording "
            "(solid) and causal decoding from past windows only (hatched)."
        )
        body.append(store.embed(f"errors_{part}", fig, f"errors per model, {part}", caption))
    return Section("heart-rate", "Heart rate", "".join(body))


def breakdown_section(run: RunData) -> Section:
    """MAE per subject and per recording, offline and causal, for every model."""
    body = []
    models = list(run.models)
    for part in PARTS:
        for key, what in (("per_group", "subject"), ("per_record", "recording")):
            tables = {m: _levels(run, m, part).get(key) for m in models}
            tables = {m: t for m, t in tables.items() if isinstance(t, dict)}
            if not tables:
                continue
            names = list(dict.fromkeys(n for t in tables.values() for n in t))
            header = [what, "windows"] + [f"{m} {d}" for m in tables for d in DECODINGS]
            cells = []
            for name in names:
                first = next(t[name] for t in tables.values() if name in t)
                row = [name if what == "subject" else f"{name} ({first.get('group', '')})"]
                row.append(str(first.get("n", "")))
                for table in tables.values():
                    entry = table.get(name, {})
                    row += [_number((entry.get(d) or {}).get("mae")) for d in DECODINGS]
                cells.append(row)
            body.append(f"<h3>{esc(part.capitalize())}: MAE (bpm) per {esc(what)}</h3>")
            body.append(html.table(header, cells, numeric=range(1, len(header))))
    if not body:
        body.append(html.notice("metrics.json has no per-subject or per-recording errors."))
    else:
        body.insert(
            0,
            html.paragraph(
                "Offline: the whole recording decoded at once. Causal: each window decoded from "
                "the windows before it only, as a wearable must. A subject's recordings are "
                "pooled; the subject MAE in the overall table averages these subjects."
            ),
        )
    return Section("per-subject", "Per subject and recording", "".join(body))


def bland_altman_section(
    run: RunData, store: FigureStore, rows: Mapping[str, Mapping[str, TraceRows]]
) -> Section:
    """Agreement of each model's offline prediction with the reference, per window."""
    part = "test" if rows["test"] else "validation"
    pairs = {}
    for model, table in rows[part].items():
        known = np.isfinite(table.target)
        pairs[model] = (table.target[known], table.offline[known])
    if not pairs:
        return Section("bland-altman", "Bland–Altman", html.notice("No predictions.csv found."))
    fig = trace_plots.bland_altman(pairs, model_colours(run))
    caption = (
        f"{part.capitalize()} windows, offline decoding: prediction minus reference against "
        "their mean; solid line the bias, dashed the 95 % limits of agreement (bias ± 1.96 SD)."
    )
    body = _lacking(run, rows[part], f"{PARTS[part]}")
    body += store.embed("bland_altman", fig, "Bland–Altman plots per model", caption)
    return Section("bland-altman", "Bland–Altman", body)


def over_time_section(
    run: RunData, store: FigureStore, rows: Mapping[str, Mapping[str, TraceRows]]
) -> Section:
    """Reference and predictions over time for the test recordings (else validation ones)."""
    part = "test" if rows["test"] else "validation"
    tables = rows[part]
    if not tables:
        return Section("over-time", "Over time", html.notice("No predictions.csv found."))
    colours = model_colours(run)
    first = next(iter(tables.values()))
    recordings = list(dict.fromkeys(first.ids.tolist()))
    shown = recordings[:MAX_TRACES]
    data: dict[str, Any] = {}
    for record in shown:
        mine = first.ids == record
        title = f"{record} (subject {first.groups[mine][0]})"
        predictions = {m: t.offline[t.ids == record] for m, t in tables.items()}
        data[title] = (first.start_s[mine], first.target[mine], predictions)
    fig = trace_plots.traces_over_time(data, colours)
    caption = f"{part.capitalize()} recordings: reference and offline predictions of every model."
    if len(recordings) > len(shown):
        caption += f" The first {len(shown)} of {len(recordings)} recordings."
    body = store.embed("over_time", fig, "predictions over time", caption)
    best = _best_model(run)
    if best is not None and best in tables:
        table = tables[best]
        pair_colours = dict(zip(("offline", "causal"), colormaps["tab10"].colors[:2], strict=True))
        decoded = {}
        for record in shown:
            mine = table.ids == record
            values = {d: getattr(table, d)[mine] for d in DECODINGS}
            decoded[f"{best}: {record}"] = (table.start_s[mine], table.target[mine], values)
        fig = trace_plots.traces_over_time(decoded, pair_colours)
        caption = (
            f"The best model on validation ({best}): offline decoding (whole recording) against "
            "causal decoding (past windows only)."
        )
        body += store.embed("offline_vs_causal", fig, "offline vs causal decoding", caption)
    return Section("over-time", "Over time", body)


def read_trace_rows(path: Path) -> TraceRows:
    """A ``predictions.csv`` of per-window traces."""
    table = read_csv(path)
    needed = ["id", "group", "start_s", "target", *DECODINGS]
    if absent := [c for c in needed if c not in table.columns]:
        raise DataError(f"{path}: the columns {absent} are missing; re-run the recipe")
    try:

        def column(name: str) -> np.ndarray:
            return np.array([to_float(r[name]) for r in table.rows], dtype=float)

        return TraceRows(
            ids=np.array([r["id"] for r in table.rows]),
            groups=np.array([r["group"] for r in table.rows]),
            start_s=column("start_s"),
            target=column("target"),
            offline=column("offline"),
            causal=column("causal"),
        )
    except ValueError as err:
        raise DataError(f"{path}: a value is not a number ({err}); re-run the recipe") from err


def _read_rows(run: RunData, file: str) -> dict[str, TraceRows]:
    rows = {}
    for model in run.models:
        path = run.path / "models" / model / file
        if path.is_file():
            rows[model] = read_trace_rows(path)
    return rows


def _levels(run: RunData, model: str, part: str) -> dict[str, Any]:
    entry = run.models[model]
    levels = entry if part == "validation" else entry.get(part)
    return levels if isinstance(levels, dict) and "offline" in levels else {}


def _best_model(run: RunData) -> str | None:
    scores = {
        m: to_float(_levels(run, m, "validation").get("offline", {}).get("mae")) for m in run.models
    }
    finite = {m: s for m, s in scores.items() if math.isfinite(s)}
    return min(finite, key=finite.__getitem__) if finite else None


def _parts_note(run: RunData) -> str:
    kinds = {str(entry.get("validation", "split")) for entry in run.models.values()}
    validation = f"Validation: {', '.join(sorted(kinds))}"
    if any("cross-validation" in k for k in kinds):
        validation += ": every window predicted by the model of the fold that left its subject out."
    else:
        validation += "."
    return (
        f"{validation} Test: the fixed test subjects, predicted once by the exported model "
        "(the ensemble of the folds' models); nothing was chosen on them. Errors in bpm; "
        "within 5 / 10: the share of windows with an error of at most 5 / 10 bpm."
    )


def _lacking(run: RunData, present: Mapping[str, object], what: str) -> str:
    lacking = [m for m in run.models if m not in present]
    return html.notice(f"No {what} for: {', '.join(lacking)}.") if lacking else ""


def _label(key: str) -> str:
    return {"mae": "MAE", "subject_mae": "subject MAE", "rmse": "RMSE"}.get(
        key, key.replace("_", " ")
    )


def _number(value: object) -> str:
    number = to_float(value) if isinstance(value, int | float | str) else math.nan
    return "—" if math.isnan(number) else f"{number:.2f}"
