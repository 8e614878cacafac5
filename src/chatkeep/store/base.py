"""What every store holds and does: the records and the ``Store`` protocol."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .._display import DERIVED_TITLE_CHARS, UNTITLED, derive_title
from .._display import parse_time as parse_time  # re-exported: the stores read their times with it
from ..errors import StoreError
from ..items import item_role, response_item_text
from ..messages import MessageDict, message_text

__all__ = [
    "ANY",
    "HEAD",
    "PARENT",
    "ConversationRecord",
    "DERIVED_TITLE_CHARS",
    "Draft",
    "MessageKind",
    "MessageStatus",
    "StoredMessage",
    "UNTITLED",
    "derive_title",
    "new_id",
    "utcnow",
]

MessageStatus = Literal["complete", "incomplete", "error"]
STATUSES: frozenset[str] = frozenset(("complete", "incomplete", "error"))

#: A Chat Completions message, a summary standing for older messages (kept off
#: the branch), or (later) a Responses API item.
MessageKind = Literal["chat", "summary", "response_item"]

#: ``parent_id``: append after the conversation's head as it is when the write commits.
HEAD = "@head"
#: ``expect_head``: move the head only if it is still the new message's parent (the default).
PARENT = "@parent"
#: ``expect_head``: move the head wherever it is (an explicit switch, such as an edit).
ANY = "@any"


#: Crockford's base32, as ULIDs are written (lower case here), and each 10-bit value's two digits.
ULID_DIGITS = "0123456789abcdefghjkmnpqrstvwxyz"
ULID_PAIRS = [first + second for first in ULID_DIGITS for second in ULID_DIGITS]
_PAIR_SHIFTS = range(120, -1, -10)  # a ULID's 26 digits are 13 pairs: 130 bits, the top two zero


def new_id() -> str:
    """Return a new time-sortable id: a lower-case ULID (48 bits of Unix milliseconds, then 80 random bits)."""
    value = time.time_ns() // 1_000_000 << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join([ULID_PAIRS[value >> shift & 1023] for shift in _PAIR_SHIFTS])


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds: sorts as text, reads well in any SQL shell.

    The year is always four digits (``strftime("%Y")`` writes year 68 as ``68``,
    which no ISO parser reads back).
    """
    utc = moment if moment.tzinfo is timezone.utc else moment.astimezone(timezone.utc)
    # isoformat is several times faster than strftime, and its year has four digits too.
    return utc.isoformat(timespec="microseconds")[:-len("+00:00")] + "Z"


# One encoder for every call: json.dumps builds a new one per call when given options.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Compact JSON that keeps text readable, escaping only when it must.

    A lone surrogate (legal in a Python str and in JSON, not in UTF-8) cannot be
    stored as raw text, so such values are written with ASCII escapes instead.
    """
    text = _COMPACT.encode(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text


def storable_text(text: str) -> str:
    """Replace lone surrogates so the text can be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


@dataclass(frozen=True)
class ConversationRecord:
    """A conversation's own fields; its messages live in the store."""

    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    head_id: str | None = None
    owner: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    message_count: int | None = None
    #: When it was pinned (``None``: it is not); pinned conversations come first in ``chatkeep list``.
    pinned_at: datetime | None = None
    #: When it was archived (``None``: it is not); ``chatkeep list`` hides archived conversations.
    archived_at: datetime | None = None
    #: Its tags, sorted.
    tags: tuple[str, ...] = ()
    #: The start of its first user message (the first 1,000 characters), for ``display_title``.
    first_prompt: str | None = None

    @property
    def pinned(self) -> bool:
        """Whether the conversation is pinned."""
        return self.pinned_at is not None

    @property
    def archived(self) -> bool:
        """Whether the conversation is archived."""
        return self.archived_at is not None

    @property
    def display_title(self) -> str:
        """Its own title, else one made from its first user message, else ``"Untitled"``."""
        return self.title or derive_title(self.first_prompt or "") or UNTITLED


@dataclass(frozen=True)
class StoredMessage:
    """One stored message: the OpenAI message dict plus what chatkeep knows about it."""

    id: str
    conversation_id: str
    parent_id: str | None
    message: MessageDict
    created_at: datetime
    kind: MessageKind = "chat"
    status: MessageStatus = "complete"
    model: str | None = None
    usage: dict[str, Any] | None = None
    latency_ms: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    token_counts: dict[str, int] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Set by the write that stored it: whether that write moved the head onto it (to it, or
    #: for a chain, to its last message). ``False`` means the head had moved on meanwhile, so
    #: the message waits on its own branch (``conversation.branches()`` lists it). ``None``
    #: when read back later.
    head_moved: bool | None = field(default=None, compare=False, repr=False)

    @property
    def branched(self) -> bool:
        """True when the write that stored this message left it off the head, on a branch of its own."""
        return self.head_moved is False

    @property
    def role(self) -> str:
        """The message's role, such as ``"user"`` or ``"assistant"`` (``"tool"`` for a function call's output)."""
        # Not through role_and_text: a context reads the role of every message it weighs, never its text.
        if self.kind == "response_item":
            return item_role(self.message) or ""
        role = self.message.get("role")
        return role if isinstance(role, str) else ""

    @property
    def text(self) -> str:
        """The message's plain text (what search sees)."""
        return role_and_text(self.message, self.kind)[1]


@dataclass(frozen=True)
class Draft:
    """A message to store with its bookkeeping, for ``Store.append_many``."""

    message: Mapping[str, Any]
    kind: MessageKind = "chat"
    status: MessageStatus = "complete"
    model: str | None = None
    usage: Mapping[str, Any] | None = None
    latency_ms: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    token_counts: Mapping[str, int] | None = None
    metadata: Mapping[str, Any] | None = None
    #: Lookup keys that find this message later (``Store.find_keys``): a chained hash of the
    #: path to it, a response id. A key given again points to the newer message.
    keys: tuple[str, ...] = ()


def role_and_text(body: Mapping[str, Any], kind: str) -> tuple[str | None, str]:
    """A stored body's role column and searchable text: Responses API items have their own shapes."""
    if kind == "response_item":
        return item_role(body), response_item_text(body)
    role = body.get("role")
    return (role if isinstance(role, str) else None), message_text(body)


def check_status(status: str) -> None:
    if status not in STATUSES:
        raise StoreError(f"status: expected one of {', '.join(sorted(STATUSES))}, got {status!r}")



def check_conversation_id(conversation_id: str | None) -> str:
    """Return the id to use: the given one once checked, or a new one."""
    if conversation_id is None:
        return new_id()
    if not isinstance(conversation_id, str) or not conversation_id.strip():
        raise StoreError("conversation id: expected a non-empty string")
    if conversation_id != conversation_id.strip() or any(ord(c) < 32 for c in conversation_id):
        raise StoreError(
            f"conversation id {conversation_id!r}: no surrounding spaces or control characters"
        )
    return conversation_id


def path_order(rows: Sequence[StoredMessage]) -> list[StoredMessage]:
    """Reverse a head-first walk into oldest-first order."""
    return list(reversed(rows))
