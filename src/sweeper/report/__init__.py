"""``sweeper report``: a study folder -> one self-contained HTML page, Markdown or CSV.

The flow is one way and imports no Ray or torch: :func:`collect` reads the study into
frames, the pure functions of ``_summary`` summarise them, ``_figures`` draws plotly
figures, and ``_write`` lays the sections out.
"""

from __future__ import annotations

import os
from pathlib import Path

from sweeper.errors import SweeperError
from sweeper.report._build import Section, Table, build
from sweeper.report._collect import ReportContext, collect, context, history
from sweeper.report._importance import importance
from sweeper.report._summary import trial_table
from sweeper.report._write import (
    cut_tables,
    markdown_table,
    render_fragment,
    render_html,
    render_markdown,
    write_csv,
)
from sweeper.store import Study, atomic_write

FORMATS = ("html", "md", "csv")
DEFAULT_OUTPUT = {"html": "report.html", "md": "report.md", "csv": "report_csv"}


def write_report(
    study: Study,
    fmt: str = "html",
    out: str | os.PathLike[str] | None = None,
    *,
    top: int = 10,
    threshold: float | None = None,
) -> list[Path]:
    """Build the study's report in ``fmt`` and write it; returns the files written.

    ``out`` defaults to ``<study>/report.html``, ``<study>/report.md`` or, for CSV, the
    folder ``<study>/report_csv/`` (one file per table). A page's table too long to show
    whole is cut, and written whole beside the page (``report_csv/<table>.csv``).
    """
    if fmt not in FORMATS:
        raise SweeperError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    sections, title = study_sections(study, top=top, threshold=threshold, figures=fmt == "html")
    target = Path(out) if out else study.path / DEFAULT_OUTPUT[fmt]
    if fmt == "csv":
        return write_csv(sections, target)
    if fmt == "html":
        return write_html(sections, title, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, render_markdown(sections, title))
    return [target]


def write_html(sections: list[Section], title: str, target: Path) -> list[Path]:
    """The page at ``target``, and beside it (``<stem>_csv/``) each table too long for the
    page, whole; returns the files written, the page first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    cut = cut_tables(sections)
    folder = target.with_name(f"{target.stem}_csv")
    written = write_csv(sections, folder, cut) if cut else []
    atomic_write(target, render_html(sections, title, folder.name if cut else None))
    return [target, *written]


def study_sections(
    study: Study, *, top: int = 10, threshold: float | None = None, figures: bool = True
) -> tuple[list[Section], str]:
    """The report's sections for ``study`` and its title (no trials yet: a one-line error)."""
    ctx = context(study)
    df = collect(study)
    if df.empty:
        raise SweeperError(f"{study.path}: study {ctx.name} has no trials yet; nothing to report")
    hist = history(study)
    imp = _importance(study, ctx)
    sections = build(df, hist, ctx, imp, top=top, threshold=threshold, figures=figures)
    return sections, f"sweeper report: {ctx.name}"


def _importance(study: Study, ctx: ReportContext) -> tuple[object, str]:
    """Importance from the study's mirror, wherever its saved spec says it lives."""
    from sweeper.mirror.storage import default_file, study_url

    try:
        url = study_url(ctx.spec.storage, study.path, str(study.path / "spec.yaml"))
    except SweeperError as exc:  # e.g. the password is not in the environment
        return None, f"parameter importance unavailable: {exc}"
    file = default_file(url, study.path)
    return importance(file if file is not None else url, ctx.name)


__all__ = [
    "FORMATS",
    "ReportContext",
    "Section",
    "Table",
    "build",
    "collect",
    "context",
    "history",
    "importance",
    "markdown_table",
    "render_html",
    "render_fragment",
    "render_markdown",
    "study_sections",
    "trial_table",
    "write_csv",
    "write_html",
    "write_report",
]
