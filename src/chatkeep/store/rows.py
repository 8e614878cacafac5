"""Reading stored rows back into records: the column lists and converters both databases share."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .attachments import Ref, restore
from .base import ConversationRecord, StoredMessage

__all__ = ["CONVERSATION_COLUMNS", "MESSAGE_COLUMNS", "PREFIXED_MESSAGE_COLUMNS", "BlobReader", "body_from",
           "conversation_from_row", "loads", "message_from_row"]

MESSAGE_COLUMNS = (
    "id, conversation_id, parent_id, kind, body, created_at, status, model, usage, "
    "latency_ms, finish_reason, error, token_counts, metadata, attachments"
)
CONVERSATION_COLUMNS = "id, title, created_at, updated_at, head_id, owner, metadata"
PREFIXED_MESSAGE_COLUMNS = ", ".join(f"m.{column.strip()}" for column in MESSAGE_COLUMNS.split(","))

#: How a backend turns its stored time into an aware UTC datetime.
TimeReader = Callable[[Any], datetime]
#: How a backend reads attachments' bytes by SHA-256.
BlobReader = Callable[[list[str]], Mapping[str, bytes]]


def loads(text: str | None) -> Any:
    """A JSON column's value (None stays None)."""
    if text is None:
        return None
    return {} if text == "{}" else json.loads(text)  # most metadata is empty: skip the parser


def body_from(text: str, refs: str | None, blobs: BlobReader | None) -> Any:
    """A stored body, with its attachments put back (they are read only for a body that has some)."""
    body = json.loads(text)
    if refs and blobs is not None:
        body = restore(body, [Ref.from_json(ref) for ref in json.loads(refs)], blobs)
    return body


def message_from_row(row: tuple[Any, ...], time: TimeReader, blobs: BlobReader | None = None) -> StoredMessage:
    """A ``StoredMessage`` from a row of ``MESSAGE_COLUMNS`` (``blobs`` reads its attachments)."""
    return StoredMessage(
        id=row[0],
        conversation_id=row[1],
        parent_id=row[2],
        kind=row[3],
        message=body_from(row[4], row[14] if len(row) > 14 else None, blobs),
        created_at=time(row[5]),
        status=row[6],
        model=row[7],
        usage=loads(row[8]),
        latency_ms=row[9],
        finish_reason=row[10],
        error=row[11],
        token_counts=loads(row[12]),
        metadata=loads(row[13]) or {},
    )


def conversation_from_row(row: tuple[Any, ...], time: TimeReader) -> ConversationRecord:
    """A ``ConversationRecord`` from a row of ``CONVERSATION_COLUMNS``."""
    return ConversationRecord(
        id=row[0],
        title=row[1],
        created_at=time(row[2]),
        updated_at=time(row[3]),
        head_id=row[4],
        owner=row[5],
        metadata=loads(row[6]) or {},
    )
