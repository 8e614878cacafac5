"""Reading stored rows back into records: the column lists and converters both databases share."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from .attachments import Ref, restore
from .base import ConversationRecord, StoredMessage

__all__ = ["CONVERSATION_COLUMNS", "ID_SEPARATOR", "MESSAGE_COLUMNS", "PREFIXED_MESSAGE_COLUMNS", "BlobReader",
           "body_from", "branch_of", "branch_positions",
           "conversation_from_row", "loads", "message_from_row", "parse_json"]

MESSAGE_COLUMNS = (
    "id, conversation_id, parent_id, kind, body, created_at, status, model, usage, "
    "latency_ms, finish_reason, error, token_counts, metadata, attachments"
)
CONVERSATION_COLUMNS = "id, title, created_at, updated_at, head_id, owner, metadata, pinned_at, archived_at"
PREFIXED_MESSAGE_COLUMNS = ", ".join(f"m.{column.strip()}" for column in MESSAGE_COLUMNS.split(","))

#: How a backend turns its stored time into an aware UTC datetime.
TimeReader = Callable[[Any], datetime]
#: How a backend reads attachments' bytes by SHA-256.
BlobReader = Callable[[list[str]], Mapping[str, bytes]]
#: A row as the database driver returns it.
Row = Sequence[Any]


# msgspec reads JSON several times faster than json, to the same value: integers of any
# size stay exact, floats round alike, a repeated key keeps its last value. What it refuses
# (NaN, Infinity and escaped lone surrogates, which json.dumps writes) goes to json.
@cache
def _decode() -> Callable[[str], Any]:
    import msgspec  # here, not at the top: a command that reads no message does not load it

    return msgspec.json.Decoder().decode


def parse_json(text: str) -> Any:
    """``json.loads(text)``, read faster (msgspec); the same value for every text."""
    try:
        return _decode()(text)
    except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
        return json.loads(text)


def loads(text: str | None) -> Any:
    """A JSON column's value (None stays None)."""
    if text is None:
        return None
    return {} if text == "{}" else parse_json(text)  # most metadata is empty: skip the parser


def body_from(text: str, refs: str | None, blobs: BlobReader | None) -> Any:
    """A stored body, with its attachments put back (they are read only for a body that has some)."""
    body = parse_json(text)
    if refs and blobs is not None:
        body = restore(body, [Ref.from_json(ref) for ref in json.loads(refs)], blobs)
    return body


def branch_of(rows: Sequence[Row], head: str | None) -> list[Row]:
    """The rows on the path from the root to ``head``, oldest first.

    ``rows`` are one conversation's, each starting ``(id, parent_id, ...)``, in
    the order they were stored. A conversation that never branched is all of
    them, which one comparison of two lists confirms; otherwise the parent
    links are followed back from the head (at most once round all the rows).
    """
    if head is None or not rows:
        return []
    if rows[-1][0] == head and rows[0][1] is None and [row[1] for row in rows[1:]] == [row[0] for row in rows[:-1]]:
        return list(rows)
    return [rows[at] for at in _path_to(head, [row[0] for row in rows], [row[1] for row in rows])]


def _path_to(head: str, ids: Sequence[str], parents: Sequence[str | None]) -> list[int]:
    """The positions of the rows from the root to ``head``, oldest first, following the parent links back.

    Goes at most once round all the rows, so a damaged cycle ends the walk.
    """
    position = {row_id: at for at, row_id in enumerate(ids)}
    path: list[int] = []
    cursor = position.get(head)
    while cursor is not None and len(path) < len(ids):
        path.append(cursor)
        parent = parents[cursor]
        cursor = position.get(parent) if parent is not None else None
    path.reverse()
    return path


#: Joins a conversation's ids into one string for :func:`branch_positions`. A control
#: character: generated ids never hold one, and lists where some id does fail its count check.
ID_SEPARATOR = "\x1f"


def branch_positions(ids: str, parents: str, count: int, head: str) -> Sequence[int] | None:
    """Where the rows on the path from the root to ``head`` stand among ``count`` rows, oldest first.

    ``ids`` and ``parents`` are the rows' ids and parent ids (``""`` for a root),
    each list joined by :data:`ID_SEPARATOR`, in the same order. A conversation
    that never branched is every row, stored in order, which two string
    comparisons confirm without splitting either list. ``None`` when the lists
    do not hold ``count`` ids each.
    """
    if count < 1 or ids.count(ID_SEPARATOR) != count - 1 or parents.count(ID_SEPARATOR) != count - 1:
        return None
    if count == 1 and ids == head and not parents:
        return range(1)
    if ids.endswith(ID_SEPARATOR + head) and parents == ID_SEPARATOR + ids[:len(ids) - len(head) - 1]:
        return range(count)  # each row's parent is the row before, the first is a root, the head is last
    return _path_to(head, ids.split(ID_SEPARATOR), parents.split(ID_SEPARATOR))


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
    """A ``ConversationRecord`` from a row of ``CONVERSATION_COLUMNS``.

    Two more columns may follow (see :mod:`.organize`): the tags (a JSON array
    from SQLite, a list from PostgreSQL, ``NULL`` for none) and the start of
    the first user message.
    """
    tags = row[9] if len(row) > 9 else None
    return ConversationRecord(
        id=row[0],
        title=row[1],
        created_at=time(row[2]),
        updated_at=time(row[3]),
        head_id=row[4],
        owner=row[5],
        metadata=loads(row[6]) or {},
        pinned_at=None if row[7] is None else time(row[7]),
        archived_at=None if row[8] is None else time(row[8]),
        tags=tuple(sorted(json.loads(tags) if isinstance(tags, str) else tags or ())),
        first_prompt=row[10] if len(row) > 10 else None,
    )
