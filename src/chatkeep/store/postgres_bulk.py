"""The PostgreSQL store's bulk operation: importing whole conversations in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .base import check_conversation_id, dumps, role_and_text, storable_text
from .bulk import ImportConversation, ImportSummary, plan_batches
from .pinned import INHERITED_SQL, inherited_pinned
from .postgres_search import tsvector_text

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["blobs_on", "import_into", "keep_attachments", "searchable_text", "utc"]

_COPY_IMPORTED = (
    "COPY messages (id, conversation_id, parent_id, kind, role, body, text, search, created_at, status,"
    " model, usage, finish_reason, metadata, source_key, attachments, pinned_ancestor) FROM STDIN"
)


def searchable_text(body: dict[str, Any], kind: str = "chat") -> str:
    """A message's plain text as PostgreSQL can store it.

    PostgreSQL text cannot hold NUL; a space stands in for it, separating words
    as SQLite's tokenizer does. The exact message stays in ``body``.
    """
    return without_nul(storable_text(role_and_text(body, kind)[1]))


def without_nul(text: str) -> str:
    """``text`` with each NUL, which PostgreSQL text cannot hold, replaced by a space."""
    return text.replace("\x00", " ")


def utc(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC; a naive one is taken as local time, as ``format_time`` does for SQLite."""
    return None if moment is None else moment.astimezone(timezone.utc)


def blobs_on(conn: Connection[Any], shas: list[str]) -> dict[str, bytes]:
    """Attachments' bytes by SHA-256, read on ``conn``."""
    rows = conn.execute("SELECT sha256, data FROM attachments WHERE sha256 = ANY(%s)", (shas,)).fetchall()
    return {row[0]: bytes(row[1]) for row in rows}


def keep_attachments(conn: Connection[Any], uses: list[tuple[str, Any]]) -> None:
    """Store each payload once (by SHA-256) and note which messages use it, in the caller's transaction."""
    blobs = {blob.sha256: blob for _, message_blobs in uses for blob in message_blobs}
    cursor = conn.cursor()
    cursor.executemany("INSERT INTO attachments (sha256, media_type, size, data) VALUES (%s, %s, %s, %s)"
                       " ON CONFLICT (sha256) DO NOTHING",
                       [(b.sha256, b.media_type, b.size, b.data) for b in blobs.values()])
    cursor.executemany("INSERT INTO attachment_uses (message_id, sha256) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                       [(message_id, blob.sha256) for message_id, message_blobs in uses for blob in message_blobs])


def _passed_down(conn: Connection[Any], ids: list[str]) -> dict[str, str | None]:
    """What stored messages pass down to their children as ``pinned_ancestor`` (see :mod:`.pinned`)."""
    rows = conn.execute(f"SELECT p.id, {INHERITED_SQL} FROM messages p WHERE p.id = ANY(%s)", (ids,)).fetchall()
    return {row[0]: row[1] for row in rows}


def _open_conversation(conn: Connection[Any], item: ImportConversation, now: datetime) -> tuple[str, bool]:
    """The conversation to import into, locked: the one with the same source key, or a new one."""
    from psycopg import errors

    if item.key is not None:
        row = conn.execute("SELECT id FROM conversations WHERE source_key = %s FOR UPDATE", (item.key,)).fetchone()
        if row is not None:
            return str(row[0]), False
    conversation_id = check_conversation_id(item.id)
    try:
        row = conn.execute(
            "INSERT INTO conversations (id, title, owner, created_at, updated_at, metadata, source_key)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (source_key) WHERE source_key IS NOT NULL DO NOTHING RETURNING id",
            (conversation_id, item.title, item.owner, utc(item.created_at) or now,
             utc(item.updated_at or item.created_at) or now, dumps(item.metadata), item.key),
        ).fetchone()
    except errors.UniqueViolation as exc:
        raise StoreError(f"a conversation with id {conversation_id!r} already exists") from exc
    if row is None:  # another import of the same source committed first: add to it
        row = conn.execute("SELECT id FROM conversations WHERE source_key = %s FOR UPDATE", (item.key,)).fetchone()
        assert row is not None
        return str(row[0]), False
    return conversation_id, True


def _import_one(conn: Connection[Any], item: ImportConversation, now: datetime) -> ImportSummary:
    conversation_id, created = _open_conversation(conn, item, now)
    known: dict[str, str] = dict(conn.execute(
        "SELECT source_key, id FROM messages WHERE conversation_id = %s AND source_key IS NOT NULL",
        (conversation_id,),
    ).fetchall())
    summary = ImportSummary(conversation_ids=[conversation_id])
    for plan in plan_batches(item, conversation_id, known):  # a batch at a time: a huge conversation streams
        summary.messages_added += len(plan.new)
        summary.messages_skipped += plan.skipped
        if not plan.new:
            continue
        # One COPY for the batch; parents precede children, and the foreign
        # keys are checked when it ends. COPY takes no subquery: the pinned ancestors are worked out here.
        pinned = inherited_pinned(((m.id, m.parent_id, m.role) for m in plan.new), lambda ids: _passed_down(conn, ids))
        with conn.cursor().copy(_COPY_IMPORTED) as copy:
            for m, pinned_ancestor in zip(plan.new, pinned):
                text = without_nul(m.text)
                copy.write_row((
                    m.id, conversation_id, m.parent_id, m.source.kind, m.role, dumps(m.body), text,
                    tsvector_text(text), utc(m.source.created_at) or now, m.source.status, m.source.model,
                    None if m.source.usage is None else dumps(m.source.usage), m.source.finish_reason,
                    dumps(m.source.metadata), m.source.key, m.refs_json, pinned_ancestor,
                ))
        if any(m.blobs for m in plan.new):
            keep_attachments(conn, [(m.id, m.blobs) for m in plan.new if m.blobs])
    found = conn.execute("SELECT head_id, import_head FROM conversations WHERE id = %s", (conversation_id,)).fetchone()
    assert found is not None
    head = plan.head_to_set(created=created, current=found[0], left_by_import=found[1])
    if head is not None:
        conn.execute("UPDATE conversations SET head_id = %s, import_head = %s WHERE id = %s",
                     (head, head, conversation_id))
    if created:
        summary.conversations_created = 1
    elif summary.messages_added:
        summary.conversations_updated = 1
        conn.execute("UPDATE conversations SET updated_at = %s WHERE id = %s", (now, conversation_id))
    return summary


def import_into(
    conn: Connection[Any], items: Iterable[ImportConversation], progress: Callable[[ImportSummary], None] | None = None
) -> ImportSummary:
    """Import every conversation inside the caller's transaction; any error undoes them all."""
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    now: datetime = row[0]
    total = ImportSummary()
    for item in items:
        total.add(_import_one(conn, item, now))
        if progress is not None:
            progress(total)
    return total
