"""Records for importing whole conversations in one transaction."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import StoreError
from ..messages import MessageDict, check_json_value, validate_message
from .attachments import Blob, Ref, extract
from .base import MessageKind, MessageStatus, check_status, dumps, new_id, role_and_text, storable_text

__all__ = ["ImportConversation", "ImportMessage", "ImportPlan", "ImportSummary", "NewMessage", "checked_first",
           "plan_import"]


@dataclass
class ImportMessage:
    """One message to import; ``key`` is the source's own id, used to skip it on a second import."""

    message: MessageDict
    key: str | None = None
    parent_key: str | None = None  # the key of its parent in the same conversation; None: a root
    created_at: datetime | None = None
    model: str | None = None
    status: MessageStatus = "complete"
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    kind: MessageKind = "chat"


@dataclass
class ImportConversation:
    """A conversation to import, parents before children.

    ``key`` identifies it at its source (``"chatgpt:<uuid>"``): importing the
    same key again adds only the messages whose keys are new. ``head_key`` names
    the message at the tip of the current branch (default: the last one).
    """

    messages: list[ImportMessage]
    key: str | None = None
    id: str | None = None
    title: str | None = None
    owner: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    head_key: str | None = None
    #: Set by ``checked_first``: every message body is already validated.
    checked: bool = False


@dataclass
class ImportSummary:
    """What an import changed."""

    conversations_created: int = 0
    conversations_updated: int = 0
    messages_added: int = 0
    messages_skipped: int = 0
    conversation_ids: list[str] = field(default_factory=list)

    def add(self, other: ImportSummary) -> None:
        self.conversations_created += other.conversations_created
        self.conversations_updated += other.conversations_updated
        self.messages_added += other.messages_added
        self.messages_skipped += other.messages_skipped
        self.conversation_ids += other.conversation_ids


@dataclass(frozen=True)
class NewMessage:
    """A message an import will insert: checked, with its new id, parent id, role and searchable text."""

    id: str
    parent_id: str | None
    body: MessageDict  # as stored: attachments' payloads taken out (see ``refs``)
    role: str | None
    text: str
    source: ImportMessage
    refs: tuple[Ref, ...] = ()
    blobs: tuple[Blob, ...] = ()

    @property
    def refs_json(self) -> str | None:
        return dumps([ref.to_json() for ref in self.refs]) if self.refs else None


@dataclass
class ImportPlan:
    """What importing one conversation adds: its new messages, how many were known, and the source's head."""

    new: list[NewMessage]
    skipped: int
    head: str | None

    def head_to_set(self, *, created: bool, current: str | None, left_by_import: str | None) -> str | None:
        """Where the import moves the conversation's head, if anywhere (``None``: it stays).

        A re-import never rewinds: it moves the head only when it added the
        source's head (so there is something new on that path; an old message's
        ancestors are all old) and only if the head is still where the previous
        import left it, so turns a user added since stay on the branch they see.
        """
        if self.head is None:
            return None
        if created:
            return self.head
        added = any(message.id == self.head for message in self.new)
        return self.head if added and current == left_by_import else None


def plan_import(item: ImportConversation, conversation_id: str, known: dict[str, str]) -> ImportPlan:
    """Check an import against the message keys ``known`` in its conversation (updated in place).

    The backends differ only in how they write the plan, so the checks, the
    skipping of known keys and the choice of head live here once.
    """
    where = f"conversation {item.key or conversation_id!r}"
    new: list[NewMessage] = []
    skipped = 0
    for number, imported in enumerate(item.messages):
        if imported.key is not None and imported.key in known:
            skipped += 1
            continue
        parent = None
        if imported.parent_key is not None:
            parent = known.get(imported.parent_key)
            if parent is None:
                raise StoreError(f"{where}, message {imported.key or number}: parent {imported.parent_key!r} not found")
        check_status(imported.status)
        if item.checked:
            body = imported.message
        elif imported.kind in ("chat", "summary"):
            body = validate_message(imported.message, field=f"{where}, message {imported.key or number}")
        else:
            body = dict(imported.message)
            check_json_value(body, f"{where}, item {imported.key or number}")
        stored, refs, blobs = extract(body)
        role, text = role_and_text(stored, imported.kind)
        message = NewMessage(new_id(), parent, stored, role, storable_text(text), imported, tuple(refs), tuple(blobs))
        if imported.key is not None:
            known[imported.key] = message.id
        new.append(message)
    head = known.get(item.head_key) if item.head_key is not None else None
    if head is None and new:
        head = new[-1].id
    return ImportPlan(new, skipped, head)


def checked_first(conversations: Iterable[ImportConversation]) -> Iterator[ImportConversation]:
    """Read and check every conversation before any is written, then hand them out again.

    An import parses and validates its whole file first, keeping what it read
    in a private temporary spool file (one conversation in memory at a time),
    so a bad record fails it before the store is touched, and other writers
    wait only for the inserts, not for the parsing.
    """
    with tempfile.TemporaryFile(prefix="chatkeep-import-") as spool:
        for item in conversations:
            for number, imported in enumerate(item.messages):
                where = f"conversation {item.key or item.id or '?'!r}, message {imported.key or number}"
                check_status(imported.status)
                if imported.kind in ("chat", "summary"):
                    imported.message = validate_message(imported.message, field=where)
                else:
                    check_json_value(imported.message, where)
            item.checked = True
            pickle.dump(item, spool, protocol=pickle.HIGHEST_PROTOCOL)
        spool.seek(0)
        while True:
            try:
                yield pickle.load(spool)  # noqa: S301 - our own spool, written just above
            except EOFError:
                return
