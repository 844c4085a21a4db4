"""Report figures. Each function returns a `matplotlib.figure.Figure`; no pyplot, no backend.

Models keep one colour in every figure (`model_colours`); classes keep one in the examples.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from itertools import zip_longest
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import auc, roc_curve

from physiodl.report.rundir import Example

Colour = tuple[float, float, float, float]
DPI = 100
_HZ = re.compile(r"(\d+(?:\.\d+)?)\s*Hz\b")


def model_colours(models: Sequence[str]) -> dict[str, Colour]:
    """One qualitative colour per model, in the given order."""
    cmap = colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {model: cmap(i % cmap.N) for i, model in enumerate(models)}


def png_bytes(fig: Figure) -> bytes:
    """The figure rendered as PNG at `DPI`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def score_bars(
    models: Sequence[str],
    record: Sequence[float],
    chunk: Sequence[float],
    metric: str,
    colours: Mapping[str, Colour],
) -> Figure:
    """Grouped bars: ``metric`` per model at record level (solid) and chunk level (hatched)."""
    fig = Figure(figsize=(max(5.5, 0.9 * len(models) + 3.0), 3.8), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(models))
    width = 0.38
    colour = [colours[m] for m in models]
    style = {"edgecolor": "black", "linewidth": 0.5}
    for offset, values, extra in (
        (-width / 2, record, {}),
        (width / 2, chunk, {"alpha": 0.45, "hatch": "//"}),
    ):
        bars = ax.bar(x + offset, values, width, color=colour, **style, **extra)
        ax.bar_label(bars, labels=[_short(v) for v in values], fontsize=7, padding=2)
    ax.set_xticks(x, models, rotation=30 if len(models) > 4 else 0, ha="right")
    finite = [v for v in (*record, *chunk) if math.isfinite(v)]
    if finite and min(finite) >= 0.0 and max(finite) <= 1.0:
        ax.set_ylim(0.0, 1.1)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: whole recordings vs chunks")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        handles=[
            Patch(facecolor="0.55", **style, label="record level"),
            Patch(facecolor="0.55", alpha=0.45, hatch="//", **style, label="chunk level"),
        ],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    return fig


def throughput_bars(
    models: Sequence[str], examples_per_second: Sequence[float], colours: Mapping[str, Colour]
) -> Figure:
    """Horizontal bars of training throughput on a log scale, one per model."""
    fig = Figure(figsize=(6.4, 0.45 * len(models) + 1.3), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(models))
    bars = ax.barh(y, examples_per_second, color=[colours[m] for m in models])
    ax.bar_label(bars, labels=[_thousands(v) for v in examples_per_second], fontsize=7, padding=3)
    ax.set_yticks(y, models)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.margins(x=0.15)
    ax.set_xlabel("training examples / s (log scale)")
    ax.set_title("Training throughput")
    ax.grid(axis="x", which="both", alpha=0.3)
    return fig


#: history columns that are timings and counts, not learning curves
_BOOKKEEPING = frozenset({"examples", "seconds"})


def history_metrics(history: Mapping[str, np.ndarray]) -> list[str]:
    """Metric names with a ``train_X`` or ``val_X`` column, loss first, else in column order."""
    names: list[str] = []
    for column in history:
        split, _, name = column.partition("_")
        if name in _BOOKKEEPING:
            continue
        if split in ("train", "val") and name and name not in names:
            names.append(name)
    return sorted(names, key=lambda name: name != "loss")


def learning_curves(
    histories: Mapping[str, Mapping[str, np.ndarray]],
    best_epochs: Mapping[str, int | None],
    colours: Mapping[str, Colour],
) -> Figure:
    """A grid, one row per model and one column per metric: train (dashed) and validation."""
    metrics: list[str] = []
    for history in histories.values():
        metrics += [m for m in history_metrics(history) if m not in metrics]
    metrics.sort(key=lambda name: name != "loss")
    nrows, ncols = len(histories), max(len(metrics), 1)
    fig = Figure(figsize=(3.4 * ncols + 0.4, 2.4 * nrows + 0.3), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for row, (model, history) in zip(axes, histories.items(), strict=True):
        for ax, metric in zip(row, metrics, strict=False):
            _curve_panel(ax, model, metric, history, best_epochs.get(model), colours[model])
        row[0].legend(fontsize=7)
    return fig


def _curve_panel(
    ax: Axes,
    model: str,
    metric: str,
    history: Mapping[str, np.ndarray],
    best_epoch: int | None,
    colour: Colour,
) -> None:
    label = metric.replace("_", " ")
    curves = [
        (s, name)
        for s, name in (("train", "train"), ("val", "validation"))
        if f"{s}_{metric}" in history
    ]
    if not curves:
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"{model}: no {label} recorded", ha="center", transform=ax.transAxes)
        return
    for split, name in curves:
        style = "--" if split == "train" else "-"
        ax.plot(
            history["epoch"],
            history[f"{split}_{metric}"],
            style,
            marker="o",
            markersize=2.5,
            color=colour,
            label=name,
        )
    if best_epoch is not None:
        ax.axvline(
            best_epoch,
            color="0.35",
            linestyle=":",
            linewidth=1.2,
            label=f"best epoch ({best_epoch})",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{model}: {label}", fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)


def confusion_matrices(matrices: Mapping[str, np.ndarray], classes: Sequence[str]) -> Figure:
    """One panel per model: counts and row percentages, coloured by the fraction of the row."""
    k = len(classes)
    ncols = min(len(matrices), 4)
    nrows = math.ceil(len(matrices) / ncols)
    size = 1.3 + 0.4 * k
    fig = Figure(figsize=(ncols * size + 1.0, nrows * size + 0.2), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for ax, (model, counts) in zip(axes.flat, matrices.items(), strict=False):
        totals = counts.sum(axis=1, keepdims=True)
        fractions = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
        for (i, j), count in np.ndenumerate(counts):
            colour = "white" if fractions[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{count}\n{fractions[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
            )
        ax.set_xticks(range(k), classes)
        ax.set_yticks(range(k), classes)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(model, fontsize=9)
    for ax in axes.flat[len(matrices) :]:
        ax.set_axis_off()
    fig.colorbar(image, ax=axes, shrink=0.8, label="fraction of the true class")
    return fig


def reliability_diagram(
    calibrations: Mapping[str, Mapping[str, Any]], colours: Mapping[str, Colour]
) -> Figure:
    """Observed accuracy against mean confidence per bin, one line per model, ECE in legend."""
    fig = Figure(figsize=(5.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ":", color="0.5", label="perfect calibration")
    for model, calibration in calibrations.items():
        confidence = _floats(calibration["confidence"])
        accuracy = _floats(calibration["accuracy"])
        keep = (_floats(calibration["counts"]) > 0) & np.isfinite(confidence + accuracy)
        ece = float(calibration["ece"])
        ax.plot(
            confidence[keep],
            accuracy[keep],
            "-o",
            markersize=4,
            color=colours[model],
            label=f"{model} (ECE {ece:.3f})",
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("mean confidence in the predicted class")
    ax.set_ylabel("observed accuracy")
    ax.set_title("Reliability diagram (record level)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return fig


def roc_curves(
    scores: Mapping[str, tuple[np.ndarray, np.ndarray]],
    positive: str,
    colours: Mapping[str, Colour],
) -> Figure:
    """ROC curves from ``(is_positive, score)`` per model, AUC in the legend."""
    fig = Figure(figsize=(5.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ":", color="0.5", label="chance")
    for model, (is_positive, score) in scores.items():
        fpr, tpr, _ = roc_curve(is_positive, score)
        ax.plot(fpr, tpr, color=colours[model], label=f"{model} (AUC {auc(fpr, tpr):.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(f"false positive rate (1 - specificity, positive class {positive})")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("ROC curves (record level)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def excerpt(n_samples: int, fs: float, seconds: float) -> tuple[float, float]:
    """Start and end (s) of a ``seconds`` excerpt in the middle of a recording."""
    duration = n_samples / fs
    start = float(max(0, math.floor((duration - seconds) / 2)))
    return start, min(duration, start + seconds)


def channel_frequencies(names: Sequence[str]) -> np.ndarray | None:
    """Frequencies (Hz) parsed from names such as ``"ECG 9.4Hz"``; ``None`` unless all parse."""
    found = [_HZ.search(name) for name in names]
    if not found or not all(found):
        return None
    frequencies = np.array([float(m.group(1)) for m in found if m])
    return frequencies if np.all(np.diff(frequencies) > 0) else None


def example_signals(
    groups: Mapping[str, Sequence[Example]], fs: float, seconds: float = 10.0
) -> Figure:
    """Raw signals, one row per class: a ``seconds`` excerpt, time in s, amplitude in mV."""
    fig, axes = _example_grid(groups)
    for row, (label, items) in zip(axes, groups.items(), strict=True):
        for ax, example in zip_longest(row, items):
            if example is None:
                ax.set_axis_off()
                continue
            start, stop = excerpt(example.raw.size, fs, seconds)
            index = np.arange(int(start * fs), int(stop * fs))
            ax.plot(
                index / fs, example.raw[index], linewidth=0.6, color=_class_colour(groups, label)
            )
            ax.set_title(f"class {label}: record {example.id}", fontsize=9)
            ax.set_xlabel("time (s)")
            ax.set_ylabel("amplitude (mV)")
            ax.grid(alpha=0.3)
    return fig


def example_spectrograms(
    groups: Mapping[str, Sequence[Example]],
    raw_fs: float,
    feature_fs: float,
    frequencies: np.ndarray | None,
    seconds: float = 10.0,
) -> Figure:
    """Model features of the same excerpts; frequency in Hz when ``frequencies`` is known."""
    fig, axes = _example_grid(groups)
    shown = np.concatenate([e.features.ravel() for items in groups.values() for e in items])
    vmin, vmax = np.nanpercentile(shown, [2, 98])
    mesh = None
    for row, items in zip(axes, groups.values(), strict=True):
        for ax, example in zip_longest(row, items):
            if example is None:
                ax.set_axis_off()
                continue
            channels, frames = example.features.shape
            time_edges = np.arange(frames + 1) / feature_fs
            mesh = ax.pcolormesh(
                time_edges,
                _edges(frequencies, channels),
                example.features,
                cmap="magma",
                vmin=vmin,
                vmax=vmax,
                shading="flat",
            )
            ax.set_xlim(*excerpt(example.raw.size, raw_fs, seconds))
            ax.set_title(f"class {example.label}: record {example.id}", fontsize=9)
            ax.set_xlabel("time (s)")
            ax.set_ylabel("frequency (Hz)" if frequencies is not None else "feature channel")
    fig.colorbar(mesh, ax=axes, shrink=0.8, label="normalised feature value")
    return fig


def _example_grid(groups: Mapping[str, Sequence[Example]]) -> tuple[Figure, np.ndarray]:
    ncols = max(len(items) for items in groups.values())
    fig = Figure(figsize=(5.2 * ncols + 0.6, 2.1 * len(groups) + 0.3), layout="constrained")
    return fig, fig.subplots(len(groups), ncols, squeeze=False)


def _class_colour(groups: Mapping[str, object], label: str) -> Colour:
    return colormaps["Dark2"](list(groups).index(label) % 8)


def _edges(centres: np.ndarray | None, count: int) -> np.ndarray:
    if centres is None:
        return np.arange(count + 1) - 0.5
    if count == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middles = (centres[1:] + centres[:-1]) / 2
    return np.concatenate(
        [
            [centres[0] - (middles[0] - centres[0])],
            middles,
            [centres[-1] + (centres[-1] - middles[-1])],
        ]
    )


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)


def _short(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else ""


def _thousands(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(value) else ""
