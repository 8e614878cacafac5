"""How a stored conversation reads to a person: its display title, and a stored time read back.

Only ``datetime`` is imported (``sqlite3`` loads it anyway): ``chatkeep list``'s
fast path (``cli/quick.py``) uses these without loading the store or ``typing``.
``store/base.py`` re-exports them, where the rest of the library finds them.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["DERIVED_TITLE_CHARS", "UNTITLED", "derive_title", "parse_time"]

#: The display title of a conversation with neither a title nor a user message with text.
UNTITLED = "Untitled"
#: How long a title made from a message may be, in characters (then it is cut at a word, with "…").
DERIVED_TITLE_CHARS = 60


def derive_title(text: str, limit: int = DERIVED_TITLE_CHARS) -> str:
    """A title made from a message: its first line with text, spaces collapsed, cut at a word with ``…``.

    Returns ``""`` when the text has no line with text. A run without spaces
    (a long URL, Chinese) is cut at ``limit`` characters.
    """
    line = next((" ".join(line.split()) for line in text.splitlines() if line.strip()), "")
    if len(line) <= limit:
        return line
    space = line.rfind(" ", 0, limit + 1)
    cut = line[:space] if space >= limit // 2 else line[:limit]  # no space in the second half: cut in the word
    return cut.rstrip(" ,.;:-–—") + "…"


def parse_time(text: str) -> datetime:
    """A time as SQLite stores it (``format_time`` in store/base.py: ISO 8601, UTC, ``Z``) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
