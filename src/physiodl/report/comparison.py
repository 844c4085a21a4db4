"""The comparison table (``comparison.csv``): cell formatting and the best value per metric."""

from __future__ import annotations

import math

from physiodl.report import html
from physiodl.report.rundir import Table, to_float

INFO_COLUMNS = ("model", "arch", "n_params", "best_epoch", "train_seconds", "examples_per_second")
LOWER_IS_BETTER = frozenset({"mae", "rmse", "loss"})
CLOSEST_TO_ZERO = frozenset({"bias"})


def format_value(column: str, raw: str) -> str:
    """A cell as shown: counts with thousands separators, seconds to 0.1, metrics to 0.001."""
    try:
        value = to_float(raw)
    except ValueError:
        return raw
    if math.isnan(value):
        return "—"
    if column in ("n_params", "best_epoch"):
        return f"{round(value):,}"
    if column == "train_seconds":
        return f"{value:,.1f}"
    if column == "examples_per_second":
        return f"{value:,.0f}"
    return f"{value:.3f}"


def best_cells(table: Table) -> set[tuple[int, int]]:
    """``(row, column)`` of the best value in each metric column (ties all count)."""
    best: set[tuple[int, int]] = set()
    for j, column in enumerate(table.columns):
        if column in INFO_COLUMNS:
            continue
        scores = {i: _score(column, row[column]) for i, row in enumerate(table.rows)}
        finite = {i: s for i, s in scores.items() if math.isfinite(s)}
        if len(finite) < 2:
            continue
        top = max(finite.values())
        best |= {(i, j) for i, s in finite.items() if s == top}
    return best


def comparison_html(table: Table) -> str:
    """The table in file order, best metric values in bold."""
    rows = [[format_value(c, row[c]) for c in table.columns] for row in table.rows]
    numeric = {j for j, c in enumerate(table.columns) if c not in ("model", "arch")}
    return html.table(table.columns, rows, strong=best_cells(table), numeric=numeric)


def _score(column: str, raw: str) -> float:
    """Larger is better, at the precision shown: the value, its negative or minus its size."""
    try:
        value = to_float(raw)
    except ValueError:
        return math.nan
    value = round(value, 3)
    metric = column.removeprefix("record_").removeprefix("chunk_")
    if metric in LOWER_IS_BETTER:
        return -value
    if metric in CLOSEST_TO_ZERO:
        return -abs(value)
    return value
