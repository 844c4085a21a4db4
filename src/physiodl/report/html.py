"""Small HTML builders for a self-contained page. Every text argument is escaped here."""

from __future__ import annotations

import base64
import html
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True)
class Section:
    """A titled part of the page; ``body`` is HTML."""

    anchor: str
    title: str
    body: str


def esc(text: object) -> str:
    """``text`` as escaped HTML."""
    return html.escape(str(text))


def paragraph(text: str) -> str:
    return f"<p>{esc(text)}</p>"


def notice(text: str, warning: bool = False) -> str:
    """A highlighted note; ``warning`` for what the reader must not miss."""
    return f'<div class="notice{" warning" if warning else ""}">{esc(text)}</div>'


def bullet_list(items: Sequence[str]) -> str:
    """A ``<ul>`` of HTML ``items`` (escape text items with `esc` first)."""
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    strong: Collection[tuple[int, int]] = (),
    numeric: Collection[int] = (),
) -> str:
    """A table of text cells; ``(row, column)`` pairs in ``strong`` are bold."""

    def cell(tag: str, text: str, column: int, bold: bool) -> str:
        attr = ' class="num"' if column in numeric else ""
        inner = f"<strong>{esc(text)}</strong>" if bold else esc(text)
        return f"<{tag}{attr}>{inner}</{tag}>"

    head = "".join(cell("th", name, j, False) for j, name in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", v, j, (i, j) in strong) for j, v in enumerate(row)) + "</tr>"
        for i, row in enumerate(rows)
    )
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table_html}</div>'


def definitions(items: Sequence[tuple[str, str]]) -> str:
    """A ``<dl>`` of (term, HTML description) pairs."""
    return (
        "<dl>" + "".join(f"<dt>{esc(term)}</dt><dd>{desc}</dd>" for term, desc in items) + "</dl>"
    )


def figure(png: bytes, alt: str, caption: str) -> str:
    """A PNG embedded as base64 with its caption."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def details(summary: str, body: str) -> str:
    """A collapsed block with an HTML ``body``."""
    return f"<details><summary>{esc(summary)}</summary>{body}</details>"


def preformatted(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document: inline CSS, a table of contents, then the sections."""
    css = files("physiodl.report").joinpath("report.css").read_text(encoding="utf-8")
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{css}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="subtitle">{esc(subtitle)}</p><nav>{nav}</nav>'
        f"{body}</body></html>\n"
    )
