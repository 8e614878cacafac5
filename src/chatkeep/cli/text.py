"""Text as the CLI prints it: control characters shown, times to the minute, a piped table's rows.

Standard library only, and ``re`` only for text that needs it: ``chatkeep
list``'s fast path (``quick.py``) prints through these without importing click.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the fast path
if TYPE_CHECKING:
    import re
    from collections.abc import Iterable

__all__ = ["listed_title", "plain_row", "short_time", "terminal_text"]


@cache
def _controls() -> re.Pattern[str]:
    import re

    # Control characters other than newline and tab: ESC starts the sequences that move the
    # cursor, clear the screen, retitle the window or write the clipboard (OSC 52).
    return re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␛, ␍, ␀ ...
    return "\u2421" if code == 0x7F else "\ufffd"


def terminal_text(text: str) -> str:
    """Text from a store or a model made safe to print: control characters shown, never obeyed."""
    if text.isprintable():  # no control character in it (most titles and ids): nothing to replace
        return text
    return _controls().sub(_picture, text)


def short_time(moment: datetime) -> str:
    """A timestamp in local time, to the minute."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def plain_row(cells: Iterable[str]) -> str:
    """A table row as printed to a pipe: tab-separated cells, each on one line (for cut and awk)."""
    return "\t".join(terminal_text(cell).replace("\t", " ").replace("\n", " ") for cell in cells)


def listed_title(title: str, *, pinned: bool, archived: bool, source: object) -> str:
    """A conversation's title as ``chatkeep list`` shows it, with its marks: ``[pinned]``, ``[archived]``, ``[captured]``."""
    marks = [mark for mark, on in (("[pinned]", pinned), ("[archived]", archived), ("[captured]", source == "capture"))
             if on]
    return " ".join([title, *marks])
