"""Search queries: any text a user types becomes a valid full-text query, and the hits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .base import StoredMessage

__all__ = ["MARK_CLOSE", "MARK_OPEN", "SearchHit", "SearchTerms", "parse_query"]

# Snippet highlight markers: characters no message text uses, replaced when shown.
MARK_OPEN, MARK_CLOSE = "\x02", "\x03"

_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class SearchTerms:
    """A parsed query: phrases that must appear, prefixes, and words to exclude."""

    required: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.required or self.prefixes)


def _clean(text: str) -> str:
    # Keep letters, digits and marks; everything else separates words, as FTS5's tokenizer does.
    return " ".join(re.findall(r"[^\W_]+", text, flags=re.UNICODE))


def parse_query(query: str) -> SearchTerms:
    """Read a query the way a search box does: words, "quoted phrases", prefix*, -excluded.

    Punctuation never has a meaning of its own, so no input is a syntax error:
    parentheses and unbalanced quotes are plain text, ``AND`` is implied, ``OR``
    is read as ``AND``, and ``NOT word`` excludes like ``-word``.
    """
    required: list[str] = []
    prefixes: list[str] = []
    excluded: list[str] = []
    negate_next = False
    for match in _TOKEN.finditer(query):
        if match.group(2) is not None:  # a "quoted phrase", maybe -"excluded"
            text, exclude, prefix = match.group(2), bool(match.group(1)), False
        else:
            word = match.group(3)
            if word in ("AND", "OR", "NOT"):  # search-box habits: AND is implied, NOT excludes
                negate_next = word == "NOT"
                continue
            exclude = word.startswith("-") and len(word) > 1
            text = word[1:] if exclude else word
            prefix = text.endswith("*")
        cleaned = _clean(text)
        if not cleaned:
            continue
        exclude, negate_next = exclude or negate_next, False
        if exclude:
            excluded.append(cleaned)
        elif prefix and " " not in cleaned:
            prefixes.append(cleaned)
        else:
            required.append(cleaned)
    return SearchTerms(tuple(required), tuple(prefixes), tuple(excluded))


def fts5_query(terms: SearchTerms) -> str:
    """The FTS5 MATCH expression for parsed terms (each phrase quoted, so nothing is an operator)."""
    parts = [f'"{t}"' for t in terms.required] + [f'"{t}" *' for t in terms.prefixes]
    expression = " AND ".join(parts)
    for term in terms.excluded:
        expression += f' NOT "{term}"'
    return expression


@dataclass(frozen=True)
class SearchHit:
    """One message that matched, with its conversation's title and a highlighted snippet."""

    message: StoredMessage
    conversation_title: str | None
    marked_snippet: str
    rank: float

    def snippet(self, open: str = "[", close: str = "]") -> str:
        """The snippet with matches between ``open`` and ``close``."""
        return self.marked_snippet.replace(MARK_OPEN, open).replace(MARK_CLOSE, close)

    @property
    def created_at(self) -> datetime:
        return self.message.created_at
