"""The report as a Python object: its sections' plotly figures and tables, shown inline.

Built by :mod:`sweeper.report` (the same sections as ``sweeper report``'s page). In Jupyter
(``_ipython_display_``) each figure is shown through plotly's own renderer and each table
as a DataFrame; elsewhere ``_repr_html_`` gives one self-contained fragment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class Report:
    """A study's report: ``sections`` (title, notes, figures, tables) and its ``title``."""

    def __init__(self, sections: list[Any], title: str, store: Any) -> None:
        self.sections = sections
        self.title = title
        self._store = store

    @property
    def figures(self) -> list[Any]:
        """Every plotly figure, in the report's order."""
        return [fig for sec in self.sections for fig in sec.figures]

    @property
    def tables(self) -> dict[str, Any]:
        """Every table by name, as a DataFrame of its numbers."""
        return {t.name: t.frame for sec in self.sections for t in sec.tables}

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the HTML page (default ``<study>/report.html``; tables too long for it whole
        in ``<stem>_csv/`` beside it); returns its path."""
        from sweeper.report import write_html

        target = Path(path) if path is not None else self._store.path / "report.html"
        return write_html(self.sections, self.title, target)[0]

    def __repr__(self) -> str:
        return f"<sweeper.Report {self.title!r}: {len(self.figures)} figures>"

    def _repr_html_(self) -> str:
        from sweeper.report import render_fragment

        return render_fragment(self.sections, self.title)

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, Markdown, display

        display(Markdown(f"# {self.title}"))
        for sec in self.sections:
            display(Markdown(f"## {sec.title}"))
            for note in sec.notes:
                display(HTML(f"<p>{_escape(note)}</p>"))
            for fig in sec.figures:
                display(fig)
            for table in sec.tables:
                display(table.shown)


def build_report(store: Any, *, top: int = 10, threshold: float | None = None) -> Report:
    """The report of the study folder ``store`` (no trials yet: a one-line error)."""
    from sweeper.report import study_sections

    sections, title = study_sections(store, top=top, threshold=threshold, figures=True)
    return Report(sections, title, store)


def _escape(text: str) -> str:
    import html

    return html.escape(text)
