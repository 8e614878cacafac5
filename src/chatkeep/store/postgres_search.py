"""Full-text search on PostgreSQL that matches as SQLite's FTS5 does, whatever the database's locale.

chatkeep finds the words itself, in messages and in queries alike: runs of
letters and digits, lower-cased, without diacritics, as :func:`.search.parse_query`
and FTS5's ``unicode61`` tokenizer read them. It hands PostgreSQL finished
tsvector and tsquery values, which it stores, indexes (GIN) and compares, and
never parses. Left to parse, PostgreSQL would keep ``foo@bar.com`` or
``src/app.py`` as one token (so ``bar`` would not find it), fold case and
accents by the database's locale, and read user text as query syntax.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .base import StoredMessage
from .search import MARK_CLOSE, MARK_OPEN, SearchHit, SearchTerms, parse_query

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["SEARCH_PREFIX_CHARS", "search_in", "search_words", "tsquery_text", "tsvector_text"]

#: How much of each message is indexed, in characters of its words. A tsvector
#: holds at most 1 MB (a longer one would make the append fail), and word
#: positions stop at 16,383 anyway; this many characters stay under the limit
#: whatever they are.
SEARCH_PREFIX_CHARS = 100_000

# PostgreSQL's limits: a lexeme's length, its positions, and the last position.
_MAX_WORD_BYTES, _MAX_POSITIONS, _LAST_POSITION = 2047, 256, 16383

_WORD = re.compile(r"[^\W_]+")
# A headline of about as many words as SQLite's snippet() gives.
_HEADLINE_OPTIONS = f"StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}, MaxWords=16, MinWords=6, ShortWord=0"


def search_words(text: str) -> list[str]:
    """The words search sees in ``text``: letters and digits, lower case, without diacritics."""
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return _WORD.findall(text.lower())


def _indexable(word: str) -> bool:
    return len(word.encode("utf-8")) <= _MAX_WORD_BYTES


def tsvector_text(text: str) -> str:
    """The tsvector, as text, of a message's words (its first :data:`SEARCH_PREFIX_CHARS`)."""
    positions: dict[str, list[int]] = {}
    length = 0
    for position, word in enumerate(search_words(text), start=1):
        length += len(word) + 1
        if length > SEARCH_PREFIX_CHARS:
            break
        if not _indexable(word):  # PostgreSQL's own parser skips these too
            continue
        spots = positions.setdefault(word, [])
        position = min(position, _LAST_POSITION)
        if len(spots) < _MAX_POSITIONS and (not spots or spots[-1] != position):
            spots.append(position)
    # Words are letters and digits only, so quoting them needs no escapes.
    return " ".join(f"'{word}':{','.join(map(str, spots))}" for word, spots in positions.items())


def _phrase(term: str, *, prefix: bool = False) -> str | None:
    """A term's words in a row (the last one as a prefix); None when no message can contain it."""
    words = search_words(term)
    if not words or not all(map(_indexable, words)):
        return None
    quoted = [f"'{word}'" for word in words]
    if prefix:
        quoted[-1] += ":*"
    return "(" + " <-> ".join(quoted) + ")"


def tsquery_text(terms: SearchTerms) -> str | None:
    """The tsquery, as text, for parsed terms; None when nothing can match."""
    positive = [_phrase(term) for term in terms.required]
    positive += [_phrase(term, prefix=True) for term in terms.prefixes]
    if not positive or None in positive:
        return None  # every required word must be findable (an empty term was dropped by parse_query)
    negative = [f"!{phrase}" for phrase in map(_phrase, terms.excluded) if phrase is not None]
    return " & ".join([p for p in positive if p is not None] + negative)


def search_in(
    conn: Connection[Any],
    query: str,
    *,
    columns: str,
    to_message: Callable[[tuple[Any, ...]], StoredMessage],
    conversation_id: str | None = None,
    role: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    owner: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[SearchHit]:
    """Ranked full-text matches with highlighted headlines; never a query syntax error.

    ``rank`` is the negated ``ts_rank``, so that lower is better, as with SQLite's bm25.
    """
    tsquery = tsquery_text(parse_query(query))
    if tsquery is None:
        return []
    params: dict[str, Any] = {"query": tsquery}
    where = ["m.search @@ q.query", "m.kind <> 'summary'"]
    for name, clause, value in (
        ("conversation_id", "m.conversation_id = %(conversation_id)s", conversation_id),
        ("role", "m.role = %(role)s", role),
        ("model", "starts_with(m.model, %(model)s)", model),
        ("since", "m.created_at >= %(since)s", since and since.astimezone(timezone.utc)),
        ("until", "m.created_at < %(until)s", until and until.astimezone(timezone.utc)),
        ("owner", "c.owner = %(owner)s", owner),
    ):
        if value is not None:
            where.append(clause)
            params[name] = value
    # Rank and cut first, then build headlines (the costly part) for that page only.
    sql = f"""
        WITH q AS MATERIALIZED (SELECT %(query)s::tsquery AS query),
        hits AS (
            SELECT m.id, ts_rank(m.search, q.query) AS score, m.seq
            FROM q, messages m JOIN conversations c ON c.id = m.conversation_id
            WHERE {' AND '.join(where)}
            ORDER BY score DESC, m.seq DESC
            LIMIT %(limit)s OFFSET %(offset)s
        )
        SELECT {columns}, c.title, ts_headline('simple', m.text, q.query, %(headline)s), hits.score
        FROM q, hits JOIN messages m ON m.id = hits.id JOIN conversations c ON c.id = m.conversation_id
        ORDER BY hits.score DESC, hits.seq DESC
    """
    params.update(limit=limit, offset=offset, headline=_HEADLINE_OPTIONS)
    rows = conn.execute(sql, params).fetchall()
    return [SearchHit(to_message(row[:-3]), row[-3], row[-2], -float(row[-1])) for row in rows]
