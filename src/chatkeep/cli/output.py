"""How the CLI writes: rich tables and Markdown on a terminal, plain text when piped, JSON on request.

rich is imported only when something is drawn for a terminal, so piped
commands start fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from .text import plain_row, short_time, terminal_text

__all__ = ["Output", "short_time", "terminal_text"]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


class Output:
    """The CLI's writer; ``fancy`` when stdout is a terminal (colour unless ``NO_COLOR``)."""

    def __init__(self, *, force_plain: bool = False) -> None:
        self.fancy = not force_plain and sys.stdout.isatty()
        self.color = self.fancy and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(no_color=not self.color, highlight=False, soft_wrap=False)
        return self._console

    def line(self, text: str = "", *, style: str | None = None) -> None:
        """One line of text; ``style`` (rich markup style) only on a colour terminal."""
        text = terminal_text(text)
        if self.fancy:
            from rich.text import Text

            self.console.print(Text(text, style=style or "") if self.color else Text(text))
        else:
            click.echo(text)

    def json(self, value: Any) -> None:
        click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=_json_default))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None) -> None:
        """A table on a terminal; tab-separated lines, no header, when piped (for cut and awk)."""
        if not self.fancy:
            for row in rows:
                click.echo(plain_row(row))
            return
        rows = [[terminal_text(cell) for cell in row] for row in rows]
        from rich.table import Table

        table = Table(title=title, header_style="bold" if self.color else "", box=None, pad_edge=False)
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

    def markdown(self, text: str) -> None:
        """A message's text: rendered Markdown on a terminal, as it is when piped (controls shown, not obeyed)."""
        text = terminal_text(text)
        if self.fancy:
            from rich.markdown import Markdown

            self.console.print(Markdown(text))
        else:
            click.echo(text)

    @contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator[Any]:
        """A progress bar on a terminal (shown after a moment); a no-op updater when piped."""
        if not self.fancy:
            yield lambda **_: None
            return
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                   TimeElapsedColumn()]
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(description, total=total, detail="")
            yield lambda **fields: bar.update(task, **fields)
