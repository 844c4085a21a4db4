"""Figures of per-window value traces (heart rate): errors per model, Bland–Altman, traces."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from physiodl.report.plots import Colour

#: The decodings of a trace evaluation and how their bars are drawn.
_DECODING_STYLE = {"offline": {}, "causal": {"alpha": 0.45, "hatch": "//"}}


def error_bars(
    models: Sequence[str],
    errors: Mapping[str, Mapping[str, float]],
    colours: Mapping[str, Colour],
    title: str,
    unit: str = "bpm",
) -> Figure:
    """Grouped bars per model: MAE of the offline (solid) and causal (hatched) decoding."""
    fig = Figure(figsize=(max(5.5, 0.9 * len(models) + 3.0), 3.8), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(models))
    width = 0.38
    style = {"edgecolor": "black", "linewidth": 0.5}
    offsets = (-width / 2, width / 2)
    for offset, (decoding, extra) in zip(offsets, _DECODING_STYLE.items(), strict=True):
        values = [errors[m].get(decoding, math.nan) for m in models]
        bars = ax.bar(
            x + offset, values, width, color=[colours[m] for m in models], **style, **extra
        )
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=7, padding=2)
    ax.set_xticks(x, models, rotation=30 if len(models) > 3 else 0, ha="right")
    ax.set_ylabel(f"MAE ({unit})")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        handles=[
            Patch(facecolor="0.55", **style, label="offline (whole recording)"),
            Patch(facecolor="0.55", **style, **_DECODING_STYLE["causal"], label="causal"),
        ],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    return fig


def bland_altman(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    colours: Mapping[str, Colour],
    unit: str = "bpm",
) -> Figure:
    """One panel per model: difference (prediction - reference) against their mean, with the
    bias and the 95 % limits of agreement (bias ± 1.96 SD)."""
    ncols = min(len(pairs), 3)
    nrows = math.ceil(len(pairs) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (model, (reference, predicted)) in zip(axes.flat, pairs.items(), strict=False):
        mean = (reference + predicted) / 2
        difference = predicted - reference
        bias, spread = float(difference.mean()), float(1.96 * difference.std())
        ax.scatter(mean, difference, s=4, alpha=0.35, color=colours[model], linewidths=0)
        ax.axhline(bias, color="black", linewidth=1, label=f"bias {bias:+.2f}")
        for limit in (bias - spread, bias + spread):
            ax.axhline(limit, color="black", linestyle="--", linewidth=0.8)
        ax.set_title(f"{model}: limits {bias - spread:+.1f} … {bias + spread:+.1f}", fontsize=9)
        ax.set_xlabel(f"mean of prediction and reference ({unit})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"prediction - reference ({unit})")
    # each panel on its own scale: one poor model must not flatten the others
    for ax in list(axes.flat)[len(pairs) :]:
        ax.set_axis_off()
    return fig


def traces_over_time(
    recordings: Mapping[str, tuple[np.ndarray, np.ndarray, Mapping[str, np.ndarray]]],
    colours: Mapping[str, Colour],
    unit: str = "bpm",
) -> Figure:
    """One panel per recording: the reference (black) and each model's prediction over time.

    ``recordings`` maps a title to ``(time_s, reference, {model: prediction})``.
    """
    nrows = len(recordings)
    fig = Figure(figsize=(10.0, 2.5 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, 1, squeeze=False)[:, 0]
    for ax, (title, (time_s, reference, predictions)) in zip(axes, recordings.items(), strict=True):
        ax.plot(time_s, reference, color="black", linewidth=2.0, label="reference")
        for model, values in predictions.items():
            ax.plot(time_s, values, color=colours[model], linewidth=1.0, label=model)
        known = reference[np.isfinite(reference)]
        if len(known):  # a model far off must not flatten the reference
            ax.set_ylim(known.min() - 30, known.max() + 30)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig
