"""`write_report`: a run directory in, one self-contained ``report.html`` out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from physiodl.report import html, sections
from physiodl.report.classification import classification_sections
from physiodl.report.detection import detection_sections
from physiodl.report.html import Section
from physiodl.report.rundir import RunData, read_run_dir
from physiodl.report.sections import FigureStore
from physiodl.report.traces import is_trace_run, trace_sections

TaskSections = Callable[[RunData, FigureStore], list[Section]]


def regression_sections(run: RunData, store: FigureStore) -> list[Section]:
    """Per-window traces (heart rate): `trace_sections`; else the metrics as a table."""
    if is_trace_run(run):
        return trace_sections(run, store)
    return [Section("scores", "Scores", sections.metrics_table(run))]


TASK_SECTIONS: dict[str, TaskSections] = {
    "classification": classification_sections,
    "regression": regression_sections,
    "detection": detection_sections,
}


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` (figures also in ``run_dir/figures/``); return its path.

    Reads only the files of the run directory. A missing ``metrics.json`` raises
    `physiodl.errors.DataError`; other missing files are named in the report.
    """
    run = read_run_dir(Path(run_dir))
    store = FigureStore(run.path / "figures")
    task_sections = TASK_SECTIONS.get(run.task)
    if task_sections is None:
        known = ", ".join(TASK_SECTIONS)
        note = html.notice(f"No report sections for task {run.task!r} (known: {known}).", True)
        task_part = [Section("scores", "Scores", note + sections.metrics_table(run))]
    else:
        task_part = task_sections(run, store)
    page = html.page(
        sections.title(run),
        sections.subtitle(run),
        [
            sections.summary_section(run),
            sections.comparison_section(run, store),
            *task_part,
            sections.learning_curves_section(run, store),
            sections.examples_section(run, store),
            sections.run_section(run),
            sections.recipe_section(run),
        ],
    )
    out = run.path / "report.html"
    partial = run.path / ".report.html.partial"
    partial.write_text(page, encoding="utf-8")
    partial.replace(out)
    return out
