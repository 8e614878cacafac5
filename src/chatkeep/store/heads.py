"""The head's rules, written once for every backend: who may move it, and where undo and pop take it.

Every write names its parent, and the head moves only by compare-and-set: to
the new message if the head is still the message the writer expected (by
default, the new message's parent). A writer that lost a race keeps its
message on a branch of its own, so nothing becomes unreachable and a reply
always hangs under the prompt it answers. The backends run these rules inside
the transaction that inserts or moves, so no other writer can come between
the read and the write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..messages import MessageDict, check_json_value, plain_text_message, validate_message
from .attachments import Blob, Ref, extract
from .base import (
    ANY,
    HEAD,
    PARENT,
    Draft,
    StoredMessage,
    check_status,
    dumps,
    new_id,
    role_and_text,
    storable_text,
)

__all__ = ["ForkedMessage", "NewRow", "expected_head", "fork_plan", "head_moves", "prepare", "stored_rows",
           "undo_plan"]

#: A head the caller expects: a message id, ``None`` (an empty conversation) or ``ANY``.
Expectation = str | None


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__, 1 us a row
class NewRow:
    """A draft checked and ready to insert: its id, body (and the body as stored), role and searchable text.

    ``stored`` is the body with its attachments' payloads taken out (``refs``
    says where they were, ``blobs`` holds their bytes).
    """

    id: str
    body: MessageDict
    role: str | None
    text: str
    draft: Draft
    stored: Any = None
    refs: tuple[Ref, ...] = ()
    blobs: tuple[Blob, ...] = ()

    @property
    def refs_json(self) -> str | None:
        return dumps([ref.to_json() for ref in self.refs]) if self.refs else None


def prepare(drafts: Sequence[Draft]) -> list[NewRow]:
    """Check every draft before any lock is taken; a bad one fails the whole batch."""
    rows = []
    for draft in drafts:
        check_status(draft.status)
        rows.append(_plain_row(draft) or _checked_row(draft))
    return rows


def _checked_row(draft: Draft) -> NewRow:
    """A draft of any shape, validated, with its attachments taken out and its searchable text."""
    if draft.kind in ("chat", "summary"):
        body = validate_message(draft.message)
    else:
        body = dict(draft.message)
        check_json_value(body, "item")
    stored, refs, blobs = extract(body)
    role, text = role_and_text(stored, draft.kind)
    return NewRow(new_id(), body, role, storable_text(text), draft, stored, tuple(refs), tuple(blobs))


def _plain_row(draft: Draft) -> NewRow | None:
    """The commonest message, ``{"role": ..., "content": "text"}``, made ready without the general walks.

    Validating, copying, looking for attachments and extracting the text each walk
    the message in Python; in an append they cost as much as SQLite's insert. For
    this shape each is one check: the row equals ``_checked_row``'s (a test holds
    them together). Any other shape, and a text that may be a data URL (an
    attachment), returns ``None`` and takes the general path.
    """
    plain = plain_text_message(draft.message) if draft.kind in ("chat", "summary") else None
    if plain is None or plain[1].startswith("data:"):
        return None
    role, content = plain
    body = dict(draft.message)  # the copy validate_message makes: the caller's dict stays the caller's, keys in its order
    return NewRow(new_id(), body, role, storable_text(content), draft, body)


def expected_head(expect_head: Expectation, parent: str | None) -> Expectation:
    """The head a write expects: ``PARENT`` stands for the new message's parent."""
    return parent if expect_head == PARENT else expect_head


def head_moves(current: str | None, expected: Expectation, *, move_head: bool = True) -> bool:
    """Whether a write moves the head from ``current``: only when it is still the one expected."""
    return move_head and (expected == ANY or current == expected)


def resolve_parent(parent_id: str | None, head: str | None) -> str | None:
    """The new message's parent: the head read in the transaction for ``HEAD``, else the one named."""
    return head if parent_id == HEAD else parent_id


def stored_rows(
    conversation_id: str, rows: Sequence[NewRow], parent: str | None, times: Sequence[datetime], moved: bool
) -> list[StoredMessage]:
    """The ``StoredMessage`` records of a chain just inserted under ``parent``."""
    stored = []
    for row, created_at in zip(rows, times):
        d = row.draft
        stored.append(StoredMessage(
            id=row.id, conversation_id=conversation_id, parent_id=parent, message=row.body,
            created_at=created_at, kind=d.kind, status=d.status, model=d.model,
            usage=None if d.usage is None else dict(d.usage), latency_ms=d.latency_ms,
            finish_reason=d.finish_reason, error=d.error,
            token_counts=None if d.token_counts is None else dict(d.token_counts),
            metadata=dict(d.metadata or {}), head_moved=moved,
        ))
        parent = row.id
    return stored


def undo_plan(
    read_tail: Callable[[int], list[StoredMessage]], read_message: Callable[[str], StoredMessage]
) -> tuple[bool, StoredMessage | None]:
    """Where undo takes the head: just before the branch's last user message.

    Returns whether the head moves, and the message it ends on (``None``: the
    start). The tail is read in growing steps, so undoing a short turn at the
    end of a long branch reads only that turn.
    """
    size = 16
    while True:
        tail = read_tail(size)
        for index in range(len(tail) - 1, -1, -1):
            if tail[index].role == "user":
                if index > 0:
                    return True, tail[index - 1]
                parent = tail[index].parent_id
                return True, read_message(parent) if parent else None
        if len(tail) < size:  # the whole branch holds no user message: nothing to undo
            return False, tail[-1] if tail else None
        size *= 4


@dataclass(frozen=True)
class ForkedMessage:
    """One message of a fork: a copy of ``source`` under a new id and parent."""

    id: str
    parent_id: str | None
    source: StoredMessage
    metadata: dict[str, Any] = field(default_factory=dict)


def fork_plan(path: Sequence[StoredMessage]) -> list[ForkedMessage]:
    """New ids for a copy of ``path``; each copy remembers the message it came from."""
    copies: list[ForkedMessage] = []
    parent = None
    for stored in path:
        copy = ForkedMessage(new_id(), parent, stored, {**stored.metadata, "forked_from": stored.id})
        copies.append(copy)
        parent = copy.id
    return copies


def fork_details(
    source_title: str | None, source_metadata: Mapping[str, Any], conversation_id: str, at: str | None,
    title: str | None,
) -> tuple[str | None, dict[str, Any]]:
    """A fork's title and metadata: it says where it came from."""
    new_title = title or (f"{source_title} (fork)" if source_title else None)
    return new_title, {**source_metadata, "forked_from": {"conversation": conversation_id, "message": at}}
