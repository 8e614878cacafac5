"""Search, written once for every database: the words of a text, how a query is read, and snippets.

Both databases index the words :func:`search_words` finds and are asked for
the phrases :func:`read_query` reads, so they find the same messages whatever
their own tokenizers or locale would do (SQLite hands FTS5 the words ready-made,
PostgreSQL gets them as a tsvector). A word is

- a run of letters and digits, folded: lower case, compatibility forms unified
  (fullwidth ``Ａ`` is ``a``, ``ﬁ`` is ``fi``), diacritics dropped (``cafe``
  finds ``Café``);
- one character of a script written without spaces (Chinese, Japanese,
  Korean, Thai, ...); a query's characters must then follow each other, so a
  word is found in the middle of a sentence;
- one symbol: an emoji, ``€``, ``+``, ``☕`` (variation selectors and joiners
  are ignored, so ``☕️`` is ``☕``).

Punctuation and spaces separate words and are never searched for.

The cost of a search is bounded whatever is stored or typed: a query keeps at
most :data:`MAX_QUERY_WORDS` words, at most :data:`MAX_RANKED` matches are
ranked, and a snippet reads at most :data:`SNIPPET_SCAN_CHARS` characters of
its message.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Literal, NamedTuple

from ..errors import ChatkeepError
from .base import StoredMessage

__all__ = [
    "MARK_CLOSE",
    "MARK_OPEN",
    "MAX_QUERY_WORDS",
    "MAX_RANKED",
    "SNIPPET_SCAN_CHARS",
    "Phrase",
    "Query",
    "SearchHit",
    "SearchOrder",
    "SearchTerms",
    "parse_query",
    "read_query",
    "newest_first",
    "search_words",
    "snippet",
]

# Snippet highlight markers: characters no message text uses, replaced when shown.
MARK_OPEN, MARK_CLOSE = "\x02", "\x03"

#: A query is read up to this many words in what it looks for (and as many again in
#: what it excludes); the rest is ignored, so pasting a page costs what a sentence does.
MAX_QUERY_WORDS = 32
#: A search ranks at most this many matching messages, the latest stored: when more
#: match (a word in nearly every message), the best are chosen among the latest.
MAX_RANKED = 10_000
#: How a search orders its hits. ``"relevance"``: best first (bm25 on SQLite, ts_rank on
#: PostgreSQL), among the latest MAX_RANKED matches. ``"newest"``: the latest saved first, from
#: every match, no ranking (a history imported at once counts as saved then).
SearchOrder = Literal["relevance", "newest"]
#: A snippet is drawn from this many characters at the start of its message, however
#: long the message (a match further on is found, but not shown).
SNIPPET_SCAN_CHARS = 20_000
#: The words a snippet shows.
SNIPPET_WORDS = 16
#: A longer run of letters is cut into words this long: PostgreSQL refuses a lexeme
#: over 2,047 bytes, and a character takes at most 4.
MAX_WORD_CHARS = 500
# The matches a snippet weighs when it chooses where to look.
_SNIPPET_MATCHES = 500

# Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, Hangul,
# the kana, Bopomofo, and the CJK ideographs (iteration marks included).
_SPACELESS = (
    "\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3005-\u3007\u3041-\u309f\u30a1-\u30fa\u30fc-\u30ff"
    "\u3105-\u312f\u3131-\u318f\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
# Any other character that is no letter, digit or space, and not ASCII: a word if Unicode
# calls it a symbol (see _kept), else a separator (punctuation).
_OTHER = "[^\\w\\s\\x00-\\x7f]"
# As typed, before folding: whole runs of letters (so the JSON file store can look for them as they are).
_TYPED = re.compile(r"[^\W_]+|[^\w\s]")
# Dropped before words are found: diacritics (after decomposition), and the invisible
# joiners and selectors inside words and emoji (soft hyphen, ZWJ, ZWNJ, variation selectors, tags).
_DROPPED_CHARS = (
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
    "\u00ad\u200c\u200d\u2060\ufe00-\ufe0f\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)


def newest_first(order: str) -> bool:
    """Whether ``order`` (a :data:`SearchOrder`) asks for the newest first; any other value is an error."""
    if order not in ("relevance", "newest"):
        raise ChatkeepError(f"order: expected 'relevance' or 'newest', got {order!r}")
    return order == "newest"


class _Patterns(NamedTuple):
    spaceless: re.Pattern[str]  # one character of a spaceless script
    candidate: re.Pattern[str]  # a non-ASCII character that is no letter, digit or space
    word: re.Pattern[str]  # one alternative for each kind of word; the last are the ASCII symbols
    dropped: re.Pattern[str]


@cache
def _patterns() -> _Patterns:
    """The large character-class patterns, compiled on first use: a command that never
    meets non-ASCII text (``chatkeep list``) does not pay the ~10 ms they take to compile."""
    return _Patterns(
        spaceless=re.compile(f"[{_SPACELESS}]"),
        candidate=re.compile(_OTHER),
        word=re.compile(f"[{_SPACELESS}]|[^\\W_{_SPACELESS}]{{1,{MAX_WORD_CHARS}}}|{_OTHER}|[$+<=>^`|~]"),
        dropped=re.compile(_DROPPED_CHARS),
    )


def fold(text: str) -> str:
    """``text`` as words are compared: case-folded, compatibility-decomposed, without diacritics."""
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKD", text).casefold()
    return unicodedata.normalize("NFC", _patterns().dropped.sub("", folded))


@lru_cache(maxsize=65_536)
def _kept(char: str) -> bool:
    """Whether a one-character match is a word: a letter or digit, a spaceless script's, or a symbol."""
    if char.isalnum() or _patterns().spaceless.match(char):
        return True
    category = unicodedata.category(char)
    # Unassigned code points count as symbols: new emoji are the characters Unicode adds most.
    return category[0] == "S" or category in ("Co", "Cn")


# What the word pattern finds in ASCII text: runs of letters and digits, and the ASCII symbols. Most
# messages are ASCII, and every append indexes one, so they skip the large character classes.
_ASCII_WORD = re.compile(f"[a-z0-9]{{1,{MAX_WORD_CHARS}}}|[$+<=>^`|~]")


def search_words(text: str) -> list[str]:
    """The words search sees in ``text``, in order (see the module's docstring)."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    folded = fold(text)
    if not folded.isascii():
        # Punctuation and the like become spaces: a few distinct characters, replaced in one pass.
        dropped = "".join(char for char in set(_patterns().candidate.findall(folded)) if not _kept(char))
        folded = re.sub(f"[{re.escape(dropped)}]", " ", folded) if dropped else folded
    return _patterns().word.findall(folded)


# -- queries ------------------------------------------------------------------------

_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class SearchTerms:
    """A parsed query: phrases that must appear, prefixes, and words to exclude (as typed, less punctuation)."""

    required: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.required or self.prefixes)


def _clean(text: str) -> str:
    # Punctuation separates words, as in an indexed message; a term with no word left is dropped.
    cleaned = " ".join(unit for unit in _TYPED.findall(text) if len(unit) > 1 or _kept(unit))
    return cleaned if search_words(cleaned) else ""


def _terms(query: str) -> Iterator[tuple[str, str]]:
    """Each term of ``query`` in the order typed: ``("required" | "prefix" | "excluded", text)``."""
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
            yield "excluded", cleaned
        elif prefix and " " not in cleaned:
            yield "prefix", cleaned
        else:
            yield "required", cleaned


def parse_query(query: str) -> SearchTerms:
    """Read a query the way a search box does: words, "quoted phrases", prefix*, -excluded.

    Punctuation never has a meaning of its own, so no input is a syntax error:
    parentheses and unbalanced quotes are plain text, ``AND`` is implied, ``OR``
    is read as ``AND``, and ``NOT word`` excludes like ``-word``.
    """
    found: dict[str, list[str]] = {"required": [], "prefix": [], "excluded": []}
    for kind, text in _terms(query):
        found[kind].append(text)
    return SearchTerms(tuple(found["required"]), tuple(found["prefix"]), tuple(found["excluded"]))


@dataclass(frozen=True)
class Phrase:
    """Words that must follow each other in a message; with ``prefix``, the last one need only begin a word."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class Query:
    """What a database looks for: messages with every phrase of ``include`` and none of ``exclude``."""

    include: tuple[Phrase, ...]
    exclude: tuple[Phrase, ...] = ()


def _capped(phrases: Iterator[Phrase]) -> tuple[Phrase, ...]:
    """Distinct phrases, in order, up to :data:`MAX_QUERY_WORDS` words (the phrase at the limit is cut)."""
    kept: list[Phrase] = []
    budget = MAX_QUERY_WORDS
    for phrase in phrases:
        if budget <= 0:
            break
        if len(phrase.words) > budget:
            phrase = Phrase(phrase.words[:budget])  # its last word is now a whole word
        if phrase not in kept:
            kept.append(phrase)
            budget -= len(phrase.words)
    return tuple(kept)


def read_query(query: str) -> Query | None:
    """The phrases a database looks for, from any text; None when there is nothing to look for."""
    terms = list(_terms(query))
    include = _capped(Phrase(tuple(search_words(text)), prefix=kind == "prefix")
                      for kind, text in terms if kind != "excluded")
    exclude = _capped(Phrase(tuple(search_words(text))) for kind, text in terms if kind == "excluded")
    return Query(include, exclude) if include else None


# -- snippets -----------------------------------------------------------------------

_fold_char = lru_cache(maxsize=65_536)(fold)


def _spans(text: str) -> list[tuple[str, int, int]]:
    """Each word of ``text`` with where it stands in ``text`` (start, end)."""
    if text.isascii():
        return [(m.group(), m.start(), m.end()) for m in _patterns().word.finditer(text.lower())]
    # Folded a character at a time, so that each folded character knows the one it came from.
    pieces = [_fold_char(char) for char in text]
    origin = [index for index, piece in enumerate(pieces) for _ in piece]
    return [(m.group(), origin[m.start()], origin[m.end() - 1] + 1)
            for m in _patterns().word.finditer("".join(pieces)) if len(m.group()) > 1 or _kept(m.group())]


def _matches(words: Sequence[str], phrases: Sequence[Phrase]) -> list[tuple[int, int, int]]:
    """Where the phrases occur in ``words``: (first word, last word, phrase), at most _SNIPPET_MATCHES."""
    by_first: dict[str, list[int]] = {}
    prefixes: list[int] = []
    for number, phrase in enumerate(phrases):
        if phrase.prefix and len(phrase.words) == 1:
            prefixes.append(number)
        else:
            by_first.setdefault(phrase.words[0], []).append(number)
    found: list[tuple[int, int, int]] = []
    for index, word in enumerate(words):
        candidates = by_first.get(word, [])
        if prefixes:
            candidates = candidates + [n for n in prefixes if word.startswith(phrases[n].words[0])]
        for number in candidates:
            phrase = phrases[number]
            last = index + len(phrase.words) - 1
            if last >= len(words) or tuple(words[index + 1:last]) != phrase.words[1:-1]:
                continue
            if words[last] == phrase.words[-1] or (phrase.prefix and words[last].startswith(phrase.words[-1])):
                found.append((index, last, number))
                if len(found) >= _SNIPPET_MATCHES:
                    return found
    return found


def _window(found: Sequence[tuple[int, int, int]], total: int) -> int:
    """The first word of the window that shows the most different phrases (the earliest such)."""
    if not found:
        return 0
    best, best_count, best_last = 0, 0, 0
    inside: Counter[int] = Counter()
    end = 0
    for begin, (first, _, _) in enumerate(found):
        while end < len(found) and found[end][0] < first + SNIPPET_WORDS:
            inside[found[end][2]] += 1
            end += 1
        if len(inside) > best_count:
            best, best_count = first, len(inside)
            best_last = max(last for _, last, _ in found[begin:end])
        inside[found[begin][2]] -= 1
        if not inside[found[begin][2]]:
            del inside[found[begin][2]]
    # Centre what matched in the window.
    spare = SNIPPET_WORDS - (min(best_last, best + SNIPPET_WORDS - 1) - best + 1)
    return max(0, min(best - spare // 2, total - SNIPPET_WORDS))


def snippet(text: str, query: Query) -> str:
    """About :data:`SNIPPET_WORDS` words of ``text`` around its best match, matches between the marks.

    Only the first :data:`SNIPPET_SCAN_CHARS` characters are read (the caller
    may pass just those and one more, to say there is more), so a snippet
    costs the same for a huge message as for a long one.
    """
    more = len(text) > SNIPPET_SCAN_CHARS
    text = text[:SNIPPET_SCAN_CHARS].replace("\x00", " ")  # as PostgreSQL stores it
    spans = _spans(text)
    if not spans:
        return text[:100] + ("…" if more or len(text) > 100 else "")
    found = _matches([word for word, _, _ in spans], query.include)
    first = _window(found, len(spans))
    last = min(len(spans), first + SNIPPET_WORDS) - 1
    begin = 0 if first == 0 else spans[first][1]
    end = len(text) if last == len(spans) - 1 and not more else spans[last][2]
    marked: list[tuple[int, int]] = []
    for start, stop, _ in sorted(found):
        if stop < first or start > last:
            continue
        region = (spans[max(start, first)][1], spans[min(stop, last)][2])
        if marked and region[0] <= marked[-1][1]:
            marked[-1] = (marked[-1][0], max(marked[-1][1], region[1]))
        else:
            marked.append(region)
    parts = ["…" if begin > 0 else ""]
    cursor = begin
    for start, stop in marked:
        parts += [text[cursor:start], MARK_OPEN, text[start:stop], MARK_CLOSE]
        cursor = stop
    parts += [text[cursor:end], "…" if end < len(text) or more else ""]
    return "".join(parts)


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
