"""The SQLite store's bulk operations: importing whole conversations, and searching."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from ..errors import StoreError
from .attachments import Blob
from .base import (
    StoredMessage,
    check_conversation_id,
    dumps,
    format_time,
    utcnow,
)
from .bulk import ImportConversation, ImportSummary, plan_batches
from .bulk_values import json_text
from .organize import normalize_tags
from .pinned import INHERITED_SQL, inherited_pinned
from .search import MAX_RANKED, SNIPPET_SCAN_CHARS, Phrase, Query, SearchHit, read_query, snippet
from .sqlite_search_backlog import WAITING, index_backlog

__all__ = ["import_into", "search_in"]

#: Rows per INSERT statement (16 values each, under SQLite's 32,766). The search index (FTS5) writes what
#: it holds at every statement's savepoint: one row per statement made a segment per message, and merging
#: them cost more than the rows themselves (measured: 1.9 s against 1.1 s for 11,000 messages).
ROWS_PER_INSERT = 500
_COLUMNS = ("id, conversation_id, parent_id, kind, role, body, text, created_at, status, model, usage, finish_reason,"
            " metadata, source_key, attachments, pinned_ancestor")
_ROW = "(" + ", ".join(["?"] * 16) + ")"

#: The page cache an import uses, in KiB. The messages table, its indexes and the search index grow
#: together, and in SQLite's default 2 MB they evict each other's pages: a third of a large import's time.
IMPORT_CACHE_KIB = 32 * 1024


def _time(moment: datetime | None, default: str) -> str:
    return format_time(moment) if moment is not None else default


def _open_conversation(db: sqlite3.Connection, item: ImportConversation, now: str) -> tuple[str, bool]:
    """The conversation to import into: the one with the same source key, or a new one."""
    if item.key is not None:
        row = db.execute("SELECT id FROM conversations WHERE source_key = ?", (item.key,)).fetchone()
        if row is not None:
            return str(row[0]), False
    conversation_id = check_conversation_id(item.id)
    try:
        db.execute(
            "INSERT INTO conversations (id, title, owner, created_at, updated_at, metadata, source_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, item.title, item.owner, _time(item.created_at, now),
             _time(item.updated_at or item.created_at, now), dumps(item.metadata), item.key),
        )
    except db.IntegrityError as exc:
        raise StoreError(f"a conversation with id {conversation_id!r} already exists") from exc
    return conversation_id, True


class _Waiting:
    """Imported rows not yet written: messages, their attachments, and new conversations' heads.

    An export's conversations are small (tens of messages), and each INSERT
    statement ends with the search index writing a segment: one statement per
    conversation made several times the segments, and merges, of one per
    ROWS_PER_INSERT rows. So rows wait here until that many are ready, across
    conversations; anything that reads messages back (:meth:`flush`) has what
    waits written first, and the rows' attachments and heads (which refer to
    them) go after them.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.rows: list[tuple[Any, ...]] = []
        self.uses: list[tuple[str, tuple[Blob, ...]]] = []
        self.heads: list[tuple[str, str, str]] = []

    def add(self, rows: list[tuple[Any, ...]], uses: list[tuple[str, tuple[Blob, ...]]]) -> None:
        self.rows += rows
        self.uses += uses
        if len(self.rows) >= ROWS_PER_INSERT:
            self._insert(len(self.rows) - len(self.rows) % ROWS_PER_INSERT)

    def _insert(self, count: int) -> None:
        for start in range(0, count, ROWS_PER_INSERT):
            chunk = self.rows[start:min(start + ROWS_PER_INSERT, count)]
            self.db.execute(f"INSERT INTO messages ({_COLUMNS}) VALUES {', '.join([_ROW] * len(chunk))}",
                            list(itertools.chain.from_iterable(chunk)))
            index_backlog(self.db)  # the rows just written, while SQLite's cache holds them
        del self.rows[:count]

    def flush(self) -> None:
        """Write everything waiting."""
        self._insert(len(self.rows))
        keep_attachments(self.db, self.uses)
        self.uses.clear()
        if self.heads:
            self.db.executemany("UPDATE conversations SET head_id = ?, import_head = ? WHERE id = ?", self.heads)
            self.heads.clear()

    def passed_down(self, ids: list[str]) -> dict[str, str | None]:
        """What stored messages pass down to their children as ``pinned_ancestor`` (see :mod:`.pinned`)."""
        self.flush()
        rows = self.db.execute(
            f"SELECT p.id, {INHERITED_SQL} FROM messages p WHERE p.id IN (SELECT value FROM json_each(?))",
            (dumps(ids),)).fetchall()
        return {row[0]: row[1] for row in rows}


def _import_one(waiting: _Waiting, item: ImportConversation, now: str) -> ImportSummary:
    db = waiting.db
    conversation_id, created = _open_conversation(db, item, now)
    known: dict[str, str] = {}  # a conversation made just now has no messages yet
    if not created:
        waiting.flush()  # it may have been imported earlier in this import
        known = dict(db.execute(
            "SELECT source_key, id FROM messages WHERE conversation_id = ? AND source_key IS NOT NULL",
            (conversation_id,),
        ).fetchall())
    summary = ImportSummary(conversation_ids=[conversation_id])
    for plan in plan_batches(item, conversation_id, known):  # a batch at a time: a huge conversation streams
        pinned = inherited_pinned(((m.id, m.parent_id, m.role) for m in plan.new), waiting.passed_down)
        waiting.add([(m.id, conversation_id, m.parent_id, m.source.kind, m.role, json_text(m.body), m.text,
                      _time(m.source.created_at, now), m.source.status, m.source.model,
                      None if m.source.usage is None else json_text(m.source.usage), m.source.finish_reason,
                      json_text(m.source.metadata), m.source.key, m.refs_json, pinned_ancestor)
                     for m, pinned_ancestor in zip(plan.new, pinned)],
                    [(m.id, m.blobs) for m in plan.new if m.blobs])
        summary.messages_added += len(plan.new)
        summary.messages_skipped += plan.skipped
    if created:
        summary.conversations_created = 1
        head = plan.head_to_set(created=True, current=None, left_by_import=None)
        if head is not None:
            waiting.heads.append((head, head, conversation_id))
        return summary
    waiting.flush()
    current, left_by_import = db.execute(
        "SELECT head_id, import_head FROM conversations WHERE id = ?", (conversation_id,)
    ).fetchone()
    head = plan.head_to_set(created=False, current=current, left_by_import=left_by_import)
    if head is not None:
        db.execute("UPDATE conversations SET head_id = ?, import_head = ? WHERE id = ?", (head, head, conversation_id))
    if summary.messages_added:
        summary.conversations_updated = 1
        db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
    return summary


def keep_attachments(db: sqlite3.Connection, uses: Iterable[tuple[str, Iterable[Blob]]]) -> None:
    """Store each payload once (by SHA-256) and note which messages use it, in the caller's transaction."""
    now = format_time(utcnow())
    for message_id, blobs in uses:
        for blob in blobs:
            db.execute("INSERT INTO attachments (sha256, media_type, size, data, created_at) VALUES (?, ?, ?, ?, ?)"
                       " ON CONFLICT (sha256) DO NOTHING", (blob.sha256, blob.media_type, blob.size, blob.data, now))
            db.execute("INSERT INTO attachment_uses (message_id, sha256) VALUES (?, ?) ON CONFLICT DO NOTHING",
                       (message_id, blob.sha256))


def import_into(
    db: sqlite3.Connection, items: Iterable[ImportConversation], progress: Callable[[ImportSummary], None] | None = None
) -> ImportSummary:
    """Import every conversation inside the caller's transaction; any error undoes them all."""
    now = format_time(utcnow())
    total = ImportSummary()
    cache = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KIB}")
    try:
        waiting = _Waiting(db)
        for item in items:
            total.add(_import_one(waiting, item, now))
            if progress is not None:
                progress(total)
        waiting.flush()
    finally:
        db.execute(f"PRAGMA cache_size = {int(cache)}")
    return total


def _phrase(phrase: Phrase) -> str:
    # Words hold no quote (punctuation is never a word), so quoting needs no escapes.
    return '"' + " ".join(phrase.words) + '"' + (" *" if phrase.prefix else "")


def fts5_query(query: Query) -> str:
    """The FTS5 MATCH expression for a query (each phrase quoted, so nothing is an operator)."""
    expression = " AND ".join(map(_phrase, query.include))
    for phrase in query.exclude:
        expression += f" NOT {_phrase(phrase)}"
    return expression


def search_in(
    db: sqlite3.Connection,
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
    waiting: bool = False,
) -> list[SearchHit]:
    """Ranked full-text matches (bm25) with snippets, the latest MAX_RANKED at most; never a syntax error.

    ``newest``: every match, the latest saved first, read from the index in that order (no ranking).

    ``messages_fts`` holds each message's words as :func:`.search.search_words`
    finds them (see ``m006_search_words``), so FTS5's own tokenizer only splits
    them at spaces. Snippets are cut here from the start of each hit's text,
    not by FTS5's snippet(), whose cost grows with the square of a word's
    occurrences in the message.

    ``waiting``: the connection's temporary index of the search backlog
    (:mod:`.sqlite_search_backlog`) holds messages too; its matches join the
    main index's, ranked by their own bm25 (within the small index).
    """
    parsed = read_query(query)
    if parsed is None:
        return []
    where = ["{index} MATCH ?"]  # summaries are not in the index (m013)
    params: list[Any] = [fts5_query(parsed)]
    for clause, value in (
        # instr() = 1: a literal prefix (LIKE would read % and _ in a model name as wildcards).
        ("m.conversation_id = ?", conversation_id), ("m.role = ?", role), ("instr(m.model, ?) = 1", model),
        ("m.created_at >= ?", since and format_time(since)), ("m.created_at < ?", until and format_time(until)),
        ("c.owner = ?", owner),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    for tag in normalize_tags(tags):
        where.append("EXISTS (SELECT 1 FROM conversation_tags t WHERE t.conversation_id = m.conversation_id AND t.tag = ?)")
        params.append(tag)
    if conversation_id is not None:
        # The conversation's rowids bound the index's scan: the words may be in every other message.
        where.append("{index}.rowid BETWEEN (SELECT min(seq) FROM messages WHERE conversation_id = ?)"
                     " AND (SELECT max(seq) FROM messages WHERE conversation_id = ?)")
        params += [conversation_id, conversation_id]
    # A match's row is read only when a filter asks for one of its columns.
    joins = (" JOIN messages m ON m.seq = {index}.rowid" if len(where) > 1 else "") + (
        " JOIN conversations c ON c.id = m.conversation_id" if owner is not None else "")
    # Newest first, the index's order: the page (newest) or the latest MAX_RANKED (ranked below).
    latest = limit + offset if newest else MAX_RANKED

    def matches_in(index: str) -> str:
        return ("SELECT {index}.rowid AS seq, bm25({index}) AS score FROM {index}" + joins
                + f" WHERE {' AND '.join(where)} ORDER BY {{index}}.rowid DESC LIMIT ?").replace("{index}", index)

    matches, params = matches_in("messages_fts"), [*params, latest]
    if waiting:  # the backlog's matches beside the index's, newest first as one list
        matches = (f"SELECT seq, score FROM ({matches}) UNION ALL SELECT seq, score FROM ({matches_in(WAITING)})"
                   " ORDER BY seq DESC LIMIT ?")
        params = [*params, *params, latest]
    if newest:  # the page, read from the index newest first: it stops after limit + offset matches
        page, order = f"SELECT seq, score FROM ({matches}) LIMIT ? OFFSET ?", "page.seq DESC"
    else:
        # The latest MAX_RANKED matches, read from the index newest first (no sort), are ranked,
        # and the page chosen among them.
        page, order = f"SELECT seq, score FROM ({matches}) ORDER BY score, seq DESC LIMIT ? OFFSET ?", \
            "page.score, page.seq DESC"
    params += [limit, offset]
    # Only then are the page's rows read whole (MATERIALIZED keeps it that way). The snippet's text
    # is cut as bytes (enough for its characters): SQLite's text functions stop at a NUL, which a
    # message may hold.
    rows = db.execute(
        f"WITH page AS MATERIALIZED ({page})"
        f" SELECT {columns}, c.title, substr(CAST(m.text AS BLOB), 1, ?), page.score FROM page"
        f" JOIN messages m ON m.seq = page.seq JOIN conversations c ON c.id = m.conversation_id ORDER BY {order}",
        (*params, 4 * (SNIPPET_SCAN_CHARS + 1)),
    ).fetchall()
    return [SearchHit(to_message(row[:-3]), row[-3], snippet(row[-2].decode("utf-8", "ignore"), parsed),
                      float(row[-1])) for row in rows]
