"""Records for importing whole conversations in one transaction."""

from __future__ import annotations

import dataclasses
import marshal
import operator
import pickle
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, overload

from ..errors import StoreError
from ..messages import MessageDict, check_json_value, plain_text_message, validate_message
from .attachments import Blob, Ref, extract
from .base import MessageKind, MessageStatus, check_status, role_and_text, storable_text
from .bulk_values import json_text, new_ids

__all__ = ["ImportConversation", "ImportMessage", "ImportPlan", "ImportSummary", "MessageSpool", "NewMessage",
           "checked_first", "plan_batches", "plan_import"]

#: How many messages of one conversation are planned and written at a time.
PLAN_BATCH = 2000
#: How many messages a :class:`MessageSpool` writes at once.
SPOOL_RECORD = 64


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
    ``messages`` is a list, or a :class:`MessageSpool` for a conversation too
    large to hold in memory.
    """

    messages: Sequence[ImportMessage]
    key: str | None = None
    id: str | None = None
    title: str | None = None
    owner: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    head_key: str | None = None
    #: Every message body and status is already validated: set by ``checked_first``, or by an importer that did it.
    checked: bool = False


# An ImportMessage's fields in order, as one tuple: what a spool writes when marshal cannot (see _encode).
_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(ImportMessage)))
_UTC = timezone.utc
_MARSHALLED, _PICKLED = b"m", b"p"


def _pack(messages: Iterable[ImportMessage]) -> list[tuple[Any, ...]]:
    return [_FIELDS(message) for message in messages]


def _unpack(rows: Iterable[tuple[Any, ...]]) -> list[ImportMessage]:
    return [ImportMessage(*row) for row in rows]


def _encode(messages: list[ImportMessage]) -> bytes:
    """Messages as bytes for a spool: by ``marshal`` when it can write them, else by ``pickle``.

    marshal writes and reads plain values (the JSON values a message is made
    of) in about half pickle's time; it takes no datetime, so a UTC time goes
    as its fields. A time in another zone, or a value marshal refuses (it
    takes only the exact built-in types), sends the batch to pickle.
    """
    rows = []
    for m in messages:
        moment, when = m.created_at, None
        if moment is not None:
            if type(moment) is not datetime or moment.tzinfo is not _UTC or moment.fold:
                return _PICKLED + pickle.dumps(_pack(messages), protocol=pickle.HIGHEST_PROTOCOL)
            when = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                    moment.microsecond)
        rows.append((m.message, m.key, m.parent_key, when, m.model, m.status, m.usage, m.finish_reason, m.metadata,
                     m.kind))
    try:
        return _MARSHALLED + marshal.dumps(rows)
    except ValueError:  # a value of a type marshal does not take
        return _PICKLED + pickle.dumps(_pack(messages), protocol=pickle.HIGHEST_PROTOCOL)


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int, microsecond: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, _UTC)


def _decode(data: bytes) -> list[ImportMessage]:
    """The messages :func:`_encode` wrote."""
    if data[:1] == _PICKLED:
        return _unpack(pickle.loads(memoryview(data)[1:]))  # noqa: S301 - our own spool
    return [ImportMessage(message, key, parent, None if when is None else _utc(*when), model, status, usage, finish,
                          metadata, kind)
            for message, key, parent, when, model, status, usage, finish, metadata, kind
            in marshal.loads(memoryview(data)[1:])]


class MessageSpool(Sequence[ImportMessage]):
    """Messages kept in a private temporary file instead of memory, read back in order (or by position).

    An importer fills one for a conversation too large to hold whole (one
    200 MB ChatGPT conversation); the import then reads it a batch at a time.
    Messages are written :data:`SPOOL_RECORD` at a time, as tuples of plain
    values (see :func:`_encode`): one pickle per message spent more on pickle's
    per-call work (each time and its zone, each dataclass's reduction) than on
    the messages.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="chatkeep-import-")
        weakref.finalize(self, self._file.close)  # the file goes with the last reference to the spool
        self._records: list[tuple[int, int]] = []  # each full record's (offset, size); records are only appended
        self._pending: list[ImportMessage] = []  # the last record, not yet written
        self._count = 0
        self._end = 0
        self._read: tuple[int, list[ImportMessage]] | None = None  # the record read last, kept for the next read

    def append(self, message: ImportMessage) -> None:
        self._pending.append(message)
        self._count += 1
        if len(self._pending) >= SPOOL_RECORD:
            data = _encode(self._pending)
            self._file.seek(self._end)
            self._file.write(data)
            self._records.append((self._end, len(data)))
            self._end += len(data)
            self._pending = []

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> ImportMessage: ...

    @overload
    def __getitem__(self, index: slice) -> list[ImportMessage]: ...

    def __getitem__(self, index: int | slice) -> ImportMessage | list[ImportMessage]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return list(self._between(start, stop))
        position = range(self._count)[index]
        return next(self._between(position, position + 1))

    def __iter__(self) -> Iterator[ImportMessage]:
        return self._between(0, self._count)

    def _record(self, number: int) -> list[ImportMessage]:
        if number == len(self._records):
            return self._pending
        if self._read is None or self._read[0] != number:
            offset, size = self._records[number]
            self._file.seek(offset)
            self._read = number, _decode(self._file.read(size))
        return self._read[1]

    def _between(self, start: int, stop: int) -> Iterator[ImportMessage]:
        while start < stop:
            number, first = divmod(start, SPOOL_RECORD)
            taken = self._record(number)[first:first + stop - start]
            yield from taken
            start += len(taken)

    def __getstate__(self) -> Any:
        raise TypeError("a MessageSpool stays in the process that wrote it")


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
        return json_text([ref.to_json() for ref in self.refs]) if self.refs else None


@dataclass
class ImportPlan:
    """What importing one conversation adds: its new messages, how many were known, and the source's head."""

    new: list[NewMessage]
    skipped: int
    head: str | None
    #: Whether an earlier batch of the same import added the source's head (see :func:`plan_batches`).
    head_added_before: bool = False

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
        added = self.head_added_before or any(message.id == self.head for message in self.new)
        return self.head if added and current == left_by_import else None


def plan_import(item: ImportConversation, conversation_id: str, known: dict[str, str]) -> ImportPlan:
    """Check an import against the message keys ``known`` in its conversation (updated in place).

    The backends differ only in how they write the plan, so the checks, the
    skipping of known keys and the choice of head live here once.
    """
    where = f"conversation {item.key or conversation_id!r}"
    new: list[NewMessage] = []
    skipped = 0
    ids = iter(new_ids(len(item.messages)))
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
        role, text = _plain_text(body, imported.kind)
        if text is not None:  # most messages: nothing to take out, the text is the content
            message = NewMessage(next(ids), parent, body, role, storable_text(text), imported)
        else:
            stored, refs, blobs = extract(body)
            role, text = role_and_text(stored, imported.kind)
            message = NewMessage(next(ids), parent, stored, role, storable_text(text), imported, tuple(refs),
                                 tuple(blobs))
        if imported.key is not None:
            known[imported.key] = message.id
        new.append(message)
    head = known.get(item.head_key) if item.head_key is not None else None
    if head is None and new:
        head = new[-1].id
    return ImportPlan(new, skipped, head)


def _plain_text(body: MessageDict, kind: MessageKind) -> tuple[str | None, str | None]:
    """A plain text message (:func:`.messages.plain_text_message`): its role and text, what
    :func:`.attachments.extract` and :func:`.base.role_and_text` would find (no payload: a data URL is one).
    ``(None, None)`` for others."""
    plain = plain_text_message(body) if kind != "response_item" else None
    if plain is None or plain[1].startswith("data:"):
        return None, None
    return plain


def plan_batches(item: ImportConversation, conversation_id: str, known: dict[str, str],
                 size: int | None = None) -> Iterator[ImportPlan]:
    """:func:`plan_import` for ``size`` messages at a time, so memory holds one batch of a large conversation.

    Write each plan before asking for the next; the last one's ``head`` (and
    ``head_to_set``) speak for the whole conversation.
    """
    size = size or PLAN_BATCH
    messages = item.messages
    if len(messages) <= size:
        yield plan_import(item, conversation_id, known)
        return
    added: set[str] = set()
    last_new: str | None = None
    for start in range(0, len(messages), size):
        plan = plan_import(dataclasses.replace(item, messages=messages[start:start + size], head_key=None),
                           conversation_id, known)
        added.update(message.id for message in plan.new)
        last_new = plan.new[-1].id if plan.new else last_new
        if start + size < len(messages):
            yield dataclasses.replace(plan, head=None)
            continue
        head = known.get(item.head_key) if item.head_key is not None else None
        head = head if head is not None else last_new
        before = head is not None and head in added and all(message.id != head for message in plan.new)
        yield dataclasses.replace(plan, head=head, head_added_before=before)


def checked_first(conversations: Iterable[ImportConversation]) -> Iterator[ImportConversation]:
    """Read and check every conversation before any is written, then hand them out again.

    An import parses and validates its whole file first, keeping what it read
    in a private temporary spool file (one conversation in memory at a time),
    so a bad record fails it before the store is touched, and other writers
    wait only for the inserts, not for the parsing.
    """
    spooled: list[Any] = []  # already on disk: kept as they are, their place noted
    with tempfile.TemporaryFile(prefix="chatkeep-import-") as spool:
        for item in conversations:
            if not item.checked:
                item = _checked(item)
            if isinstance(item.messages, MessageSpool):
                pickle.dump(len(spooled), spool, protocol=pickle.HIGHEST_PROTOCOL)
                spooled.append(item)
            else:
                packed = (dataclasses.replace(item, messages=[]), _encode(list(item.messages)))
                pickle.dump(packed, spool, protocol=pickle.HIGHEST_PROTOCOL)
        spool.seek(0)
        while True:
            try:
                loaded = pickle.load(spool)  # noqa: S301 - our own spool, written just above
            except EOFError:
                return
            if isinstance(loaded, int):
                index, loaded = loaded, spooled[loaded]
                spooled[index] = None  # let it go once handed out
            else:
                loaded, data = loaded
                loaded.messages = _decode(data)
            yield loaded


def _checked(item: ImportConversation) -> ImportConversation:
    """Validate every message of ``item`` (into a new spool when it came in one)."""
    checked: list[ImportMessage] | MessageSpool = MessageSpool() if isinstance(item.messages, MessageSpool) else []
    for number, imported in enumerate(item.messages):
        where = f"conversation {item.key or item.id or '?'!r}, message {imported.key or number}"
        check_status(imported.status)
        if imported.kind in ("chat", "summary"):
            imported.message = validate_message(imported.message, field=where)
        else:
            check_json_value(imported.message, where)
        checked.append(imported)
    item.messages = checked
    item.checked = True
    return item
