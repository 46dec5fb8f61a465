"""The live progress line on stderr: trials ended, running, failed, pruned, best so far.

A terminal gets one line redrawn in place (rich's ``Live``), a Jupyter notebook one output
line updated in place (an IPython display handle, at most a few times a second); logs and
pipes get one line per ended trial.
"""

from __future__ import annotations

import time
from typing import Any

from sweeper.engine.book import TrialBook
from sweeper.states import TrialState


class Progress:
    def __init__(self, book: TrialBook, name: str, total: int) -> None:
        from rich.console import Console

        self.book = book
        self.name = name
        self.total = total
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.t0 = time.monotonic()
        self._live: Any = None
        self._handle: Any = None  # the notebook's display handle
        self._shown_at = 0.0

    def text(self) -> str:
        c = self.book.counts()
        ended = sum(c[s] for s in TrialState if s.ended)
        best = self.book.best()
        best_txt = f"{best:.4f}" if best is not None else "-"
        return (
            f"{self.name}: {ended}/{self.total} trials done, {c[TrialState.RUNNING]} running, "
            f"{c[TrialState.FAIL]} failed, {c[TrialState.PRUNED]} stopped early, "
            f"best {self.book.metric} {best_txt}  [{time.monotonic() - self.t0:.0f}s]"
        )

    def show(self, ended: bool = False) -> None:
        if self.console.is_jupyter:
            self._show_in_notebook(ended)
            return
        if not self.console.is_terminal:
            if ended:
                self.console.print(self.text())
            return
        if self._live is None:
            from rich.live import Live

            self._live = Live(self.text(), console=self.console, refresh_per_second=4)
            self._live.start()
        self._live.update(self.text())

    def _show_in_notebook(self, ended: bool, force: bool = False) -> None:
        from IPython.display import Pretty, display

        now = time.monotonic()
        if self._handle is None:
            self._handle = display(Pretty(self.text()), display_id=True)
        elif ended or force or now - self._shown_at >= 0.25:
            self._handle.update(Pretty(self.text()))
        else:
            return
        self._shown_at = now

    def warn(self, text: str) -> None:
        self.console.print(f"sweeper: warning: {text}")

    def close(self) -> None:
        if self._handle is not None:
            self._show_in_notebook(ended=True, force=True)
            self._handle = None
        if self._live is not None:
            self._live.update(self.text())
            self._live.stop()
            self._live = None
