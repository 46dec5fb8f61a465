"""Lay out report sections as one self-contained HTML page, Markdown, or CSV files."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from sweeper.report._build import Section, Table
from sweeper.store import atomic_write

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222}
header{background:#1f3b57;color:#fff;padding:14px 28px}
header h1{margin:0;font-size:22px} nav a{color:#cfe3f7;margin-right:14px;font-size:14px}
main{padding:8px 28px 40px;max-width:1400px}
section{margin:26px 0;border-top:1px solid #ddd;padding-top:6px}
h2{font-size:19px;margin:10px 0} h3{font-size:15px;margin:14px 0 6px}
p.note{color:#555;font-size:14px;margin:4px 0}
table.tbl{border-collapse:collapse;font-size:13px;margin:6px 0 14px}
table.tbl th,table.tbl td{border:1px solid #ddd;padding:3px 8px;text-align:right}
table.tbl th{background:#f3f5f8} table.tbl td:first-child,table.tbl th:first-child{text-align:left}
table.kv td{text-align:left} .fig{margin:8px 0 18px}
"""


def fmt_cell(value: Any) -> str:
    """A table cell as text: floats to 4 significant decimals, NaN empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e12:
            return str(int(value))
        return f"{value:.4f}" if abs(value) >= 1e-3 else f"{value:.3g}"
    return str(value)


def _text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda c: c.map(fmt_cell)) if not frame.empty else frame


# A page's table shows at most this many rows; the whole table goes to a CSV beside it.
HTML_ROWS = 50


def cut_tables(sections: list[Section]) -> list[Table]:
    """The tables too long for a page (more than :data:`HTML_ROWS` rows)."""
    return [t for sec in sections for t in sec.tables if len(t.shown) > HTML_ROWS]


def render_html(sections: list[Section], title: str, csv_dir: str | None = None) -> str:
    """One page: plotly.js embedded once (no CDN, no network), then every section.

    A table longer than :data:`HTML_ROWS` shows its first rows and says where the whole
    table is (``csv_dir``, written beside the page by :func:`write_csv`)."""
    from plotly.offline import get_plotlyjs

    nav = " ".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections[1:])
    body = [_html_section(s, i, csv_dir) for i, s in enumerate(sections)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<header><h1>{html.escape(title)}</h1><nav>{nav}</nav></header>"
        f"<main>{''.join(body)}</main></body></html>\n"
    )


def render_fragment(sections: list[Section], title: str) -> str:
    """The page's body as one ``<div>`` (plotly.js embedded once, no page-wide CSS): what a
    notebook shows inline."""
    from plotly.offline import get_plotlyjs

    body = "".join(_html_section(s, i) for i, s in enumerate(sections))
    return (
        f'<div class="sweeper-report"><script type="text/javascript">{get_plotlyjs()}</script>'
        f"<h1>{html.escape(title)}</h1>{body}</div>"
    )


def _html_section(sec: Section, index: int, csv_dir: str | None = None) -> str:
    parts = [f'<section id="{sec.key}"><h2>{html.escape(sec.title)}</h2>']
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in sec.notes]
    for j, fig in enumerate(sec.figures):
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"fig-{sec.key}-{j}",
            config={"displaylogo": False, "responsive": True},
        )
        parts.append(f'<div class="fig">{div}</div>')
    for table in sec.tables:
        parts.append(_html_table(table, heading=index > 0, kv=index == 0, csv_dir=csv_dir))
    parts.append("</section>")
    return "".join(parts)


def _html_table(table: Table, heading: bool, kv: bool = False, csv_dir: str | None = None) -> str:
    rows = len(table.shown)
    shown = _text_frame(table.shown.head(HTML_ROWS))
    head = f"<h3>{html.escape(table.title)}</h3>" if heading else ""
    if rows > HTML_ROWS:
        where = f"{csv_dir}/{_safe(table.name)}.csv" if csv_dir else "the CSV report"
        head += (
            f'<p class="note">The first {HTML_ROWS} of {rows:,} rows; every row is in '
            f"{html.escape(where)}.</p>"
        )
    classes = "tbl kv" if kv else "tbl"
    return head + shown.to_html(index=False, classes=classes, border=0, escape=True)


def render_markdown(sections: list[Section], title: str) -> str:
    """Every table (and note) of the report as GitHub-flavoured Markdown."""
    lines = [f"# {title}", ""]
    for sec in sections:
        if not (sec.notes or sec.tables):
            continue  # a section of figures only
        lines += [f"## {sec.title}", ""]
        lines += [f"{n}  " for n in sec.notes] + ([""] if sec.notes else [])
        for table in sec.tables:
            if sec.key != "overview":
                lines += [f"### {table.title}", ""]
            lines += [markdown_table(table.shown), ""]
    return "\n".join(lines)


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a pipe table (numbers right-aligned)."""
    if frame.empty:
        return "_(none)_"
    text = _text_frame(frame)

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    align = ["---:" if frame[c].dtype.kind in "if" else ":---" for c in frame.columns]
    rule = "| " + " | ".join(align) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in text.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def write_csv(
    sections: list[Section], folder: Path, tables: list[Table] | None = None
) -> list[Path]:
    """Each table (or each of ``tables``) as ``<folder>/<name>.csv`` (the numbers, not the
    display text)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables if tables is not None else [t for s in sections for t in s.tables]:
        path = folder / f"{_safe(table.name)}.csv"
        atomic_write(path, table.frame.to_csv(index=False))
        written.append(path)
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
