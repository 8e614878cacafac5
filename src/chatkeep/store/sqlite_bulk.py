"""The SQLite store's bulk operations: importing whole conversations, and searching."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from ..errors import StoreError
from ..messages import validate_message
from .base import (
    StoredMessage, check_conversation_id, check_status, dumps, format_time, new_id, role_and_text, storable_text, utcnow,
)
from .bulk import ImportConversation, ImportSummary
from .search import MARK_CLOSE, MARK_OPEN, SearchHit, fts5_query, parse_query

__all__ = ["import_into", "search_in"]


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
    except sqlite3.IntegrityError as exc:
        raise StoreError(f"a conversation with id {conversation_id!r} already exists") from exc
    return conversation_id, True


def _import_one(db: sqlite3.Connection, item: ImportConversation, now: str) -> ImportSummary:
    conversation_id, created = _open_conversation(db, item, now)
    ids: dict[str, str] = dict(db.execute(
        "SELECT source_key, id FROM messages WHERE conversation_id = ? AND source_key IS NOT NULL",
        (conversation_id,),
    ).fetchall())
    summary = ImportSummary(conversation_ids=[conversation_id])
    last: str | None = None
    where = f"conversation {item.key or conversation_id!r}"
    for number, imported in enumerate(item.messages):
        if imported.key is not None and imported.key in ids:
            summary.messages_skipped += 1
            continue
        parent = None
        if imported.parent_key is not None:
            parent = ids.get(imported.parent_key)
            if parent is None:
                raise StoreError(f"{where}, message {imported.key or number}: parent {imported.parent_key!r} not found")
        check_status(imported.status)
        if imported.kind in ("chat", "summary"):
            body = validate_message(imported.message, field=f"{where}, message {imported.key or number}")
        else:
            body = dict(imported.message)
        role, text = role_and_text(body, imported.kind)
        message_id = new_id()
        db.execute(
            "INSERT INTO messages (id, conversation_id, parent_id, kind, role, body, text, created_at, status,"
            " model, usage, finish_reason, metadata, source_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, conversation_id, parent, imported.kind, role, dumps(body), storable_text(text),
             _time(imported.created_at, now), imported.status, imported.model,
             None if imported.usage is None else dumps(imported.usage), imported.finish_reason,
             dumps(imported.metadata), imported.key),
        )
        if imported.key is not None:
            ids[imported.key] = message_id
        last = message_id
        summary.messages_added += 1
    head = ids.get(item.head_key) if item.head_key is not None else None
    if head is None and (created or last is not None):
        head = last
    if head is not None:
        db.execute("UPDATE conversations SET head_id = ? WHERE id = ?", (head, conversation_id))
    if created:
        summary.conversations_created = 1
    elif summary.messages_added:
        summary.conversations_updated = 1
        db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
    return summary


def import_into(
    db: sqlite3.Connection, items: Iterable[ImportConversation], progress: Callable[[ImportSummary], None] | None = None
) -> ImportSummary:
    """Import every conversation inside the caller's transaction; any error undoes them all."""
    now = format_time(utcnow())
    total = ImportSummary()
    for item in items:
        total.add(_import_one(db, item, now))
        if progress is not None:
            progress(total)
    return total


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
    limit: int = 20,
    offset: int = 0,
) -> list[SearchHit]:
    """Ranked full-text matches (bm25), with snippets; never a query syntax error."""
    terms = parse_query(query)
    if not terms:
        return []
    where = ["messages_fts MATCH ?", "m.kind <> 'summary'"]
    params: list[Any] = [fts5_query(terms)]
    for clause, value in (
        ("m.conversation_id = ?", conversation_id), ("m.role = ?", role), ("m.model LIKE ? || '%'", model),
        ("m.created_at >= ?", since and format_time(since)), ("m.created_at < ?", until and format_time(until)),
        ("c.owner = ?", owner),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    rows = db.execute(
        f"SELECT {columns}, c.title, snippet(messages_fts, 0, ?, ?, '…', 16), bm25(messages_fts) AS score"
        " FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid"
        " JOIN conversations c ON c.id = m.conversation_id"
        f" WHERE {' AND '.join(where)} ORDER BY score, m.seq DESC LIMIT ? OFFSET ?",
        (MARK_OPEN, MARK_CLOSE, *params, limit, offset),
    ).fetchall()
    return [SearchHit(to_message(row[:-3]), row[-3], row[-2], float(row[-1])) for row in rows]
