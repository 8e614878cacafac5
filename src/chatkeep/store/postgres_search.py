"""Full-text search on PostgreSQL that finds what SQLite finds, whatever the database's locale.

chatkeep finds the words itself, in messages and in queries alike
(:func:`.search.search_words`: letters and digits folded, symbols and emoji,
CJK a character at a time), the same words SQLite's index holds. It hands
PostgreSQL finished tsvector and tsquery values, which it stores, indexes
(GIN) and compares, and never parses. Left to parse, PostgreSQL would keep
``foo@bar.com`` or ``src/app.py`` as one token (so ``bar`` would not find
it), fold case and accents by the database's locale, drop emoji, read a
Chinese sentence as one word, and read user text as query syntax.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .base import StoredMessage
from .organize import normalize_tags
from .search import MAX_RANKED, SNIPPET_SCAN_CHARS, Phrase, Query, SearchHit, read_query, search_words, snippet

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["TSVECTOR_BYTES", "search_in", "search_words", "tsquery_text", "tsvector_text"]

#: How much of a tsvector a message's words may fill: PostgreSQL refuses one over
#: 1 MB (the append would fail), so the words that would not fit are left out.
TSVECTOR_BYTES = 1_000_000

# PostgreSQL's limits: a word's positions, and the last position (later words all stand there).
_MAX_POSITIONS, _LAST_POSITION = 256, 16383


def tsvector_text(text: str) -> str:
    """The tsvector, as text, of a message's words: every word while they fit in :data:`TSVECTOR_BYTES`.

    Past the 16,383rd word every word stands at that last position, so a single
    word is still found anywhere in a long message, as on SQLite, but a phrase
    only among the first 16,383 words.
    """
    words = search_words(text)
    return _few_words(words) if len(words) <= _MAX_POSITIONS else _many_words(words)


def _few_words(words: list[str]) -> str:
    """:func:`_many_words` for at most ``_MAX_POSITIONS`` words, where no limit can bind, in half the time.

    No word can have more positions than there are words, no position reaches
    ``_LAST_POSITION``, and 256 words of ``MAX_WORD_CHARS`` (4 bytes a
    character at most) fill half of ``TSVECTOR_BYTES``.
    """
    positions: dict[str, str] = {}
    for position, word in enumerate(words, start=1):
        spots = positions.get(word)
        positions[word] = str(position) if spots is None else f"{spots},{position}"
    return " ".join([f"'{word}':{spots}" for word, spots in positions.items()])


def _many_words(words: list[str]) -> str:
    """The tsvector text of ``words``, keeping PostgreSQL's limits (see :func:`tsvector_text`)."""
    positions: dict[str, list[int]] = {}
    size = 0
    for position, word in enumerate(words, start=1):
        position = min(position, _LAST_POSITION)
        spots = positions.get(word)
        if spots is None:
            cost = len(word.encode("utf-8")) + 9  # the word, its entry, alignment, its count and a position
            if size + cost > TSVECTOR_BYTES:
                continue
            size += cost
            positions[word] = [position]
        elif len(spots) < _MAX_POSITIONS and spots[-1] != position:
            size += 2
            spots.append(position)
    # A word holds no quote or backslash (those are punctuation), so quoting it needs no escapes.
    return " ".join(f"'{word}':{','.join(map(str, spots))}" for word, spots in positions.items())


def _phrase(phrase: Phrase) -> str:
    """A phrase's words in a row (the last one as a prefix when it is one)."""
    quoted = [f"'{word}'" for word in phrase.words]
    if phrase.prefix:
        quoted[-1] += ":*"
    return "(" + " <-> ".join(quoted) + ")"


def tsquery_text(query: Query) -> str:
    """The tsquery, as text, for a read query."""
    return " & ".join([_phrase(p) for p in query.include] + [f"!{_phrase(p)}" for p in query.exclude])


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
    tags: Sequence[str] = (),
    limit: int = 20,
    offset: int = 0,
    newest: bool = False,
) -> list[SearchHit]:
    """Ranked full-text matches with snippets, the latest MAX_RANKED at most; never a syntax error.

    ``newest``: every match, the latest saved first (no ranking beyond the page's).

    ``rank`` is the negated ``ts_rank``, so that lower is better, as with SQLite's bm25.
    Snippets are cut from the start of each hit's text by :func:`.search.snippet`,
    as on SQLite (ts_headline reads the whole text: a second for 10 MB).
    """
    from psycopg import sql

    parsed = read_query(query)
    if parsed is None:
        return []
    params: dict[str, Any] = {}
    where = ["m.search @@ {query}", "m.kind <> 'summary'"]
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
    for number, tag in enumerate(normalize_tags(tags)):
        where.append(f"EXISTS (SELECT 1 FROM conversation_tags t WHERE t.conversation_id = m.conversation_id"
                     f" AND t.tag = %(tag{number})s)")
        params[f"tag{number}"] = tag
    # The query is a literal, not a parameter, so the planner sees which words it holds: for
    # a word in nearly every message it walks messages_seq backwards and stops at MAX_RANKED
    # matches; for a rarer one it asks the GIN index (a prepared, generic plan could not tell).
    # The latest MAX_RANKED matches are ranked, then only the page's rows are read whole.
    owners = "JOIN conversations c ON c.id = m.conversation_id" if owner is not None else ""
    order, hits_order = ("seq DESC", "hits.seq DESC") if newest else (
        "score DESC, seq DESC", "hits.score DESC, hits.seq DESC")
    template = f"""
        WITH candidates AS MATERIALIZED (
            SELECT m.id, m.seq, ts_rank(m.search, {{query}}) AS score FROM messages m {owners}
            WHERE {' AND '.join(where)}
            ORDER BY m.seq DESC LIMIT %(ranked)s {"OFFSET %(offset)s" if newest else ""}
        ), hits AS (
            SELECT id, seq, score FROM candidates ORDER BY {order} {"" if newest else "LIMIT %(limit)s OFFSET %(offset)s"}
        )
        SELECT {columns}, c.title, left(m.text, %(scan)s), hits.score
        FROM hits JOIN messages m ON m.id = hits.id JOIN conversations c ON c.id = m.conversation_id
        ORDER BY {hits_order}
    """
    statement = sql.SQL(template).format(query=sql.SQL("{}::tsquery").format(sql.Literal(tsquery_text(parsed))))
    params.update(ranked=limit if newest else MAX_RANKED, limit=limit, offset=offset, scan=SNIPPET_SCAN_CHARS + 1)
    rows = conn.execute(statement, params).fetchall()
    return [SearchHit(to_message(row[:-3]), row[-3], snippet(row[-2], parsed), -float(row[-1])) for row in rows]
