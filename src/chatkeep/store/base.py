"""What every store holds and does: the records and the ``Store`` protocol."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ulid import ULID

from ..errors import StoreError
from ..items import item_role, response_item_text
from ..messages import MessageDict, message_text

if TYPE_CHECKING:
    from .bulk import ImportConversation, ImportSummary
    from .search import SearchHit

__all__ = [
    "ConversationRecord",
    "MessageKind",
    "MessageStatus",
    "Store",
    "StoredMessage",
    "new_id",
    "utcnow",
]

MessageStatus = Literal["complete", "incomplete", "error"]
STATUSES: frozenset[str] = frozenset(("complete", "incomplete", "error"))

#: A Chat Completions message, a summary standing for older messages (kept off
#: the branch), or (later) a Responses API item.
MessageKind = Literal["chat", "summary", "response_item"]

#: Sentinel meaning "append after the conversation's current head".
HEAD = "@head"


def new_id() -> str:
    """Return a new time-sortable id (a lower-case ULID)."""
    return str(ULID()).lower()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds: sorts as text, reads well in any SQL shell."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def dumps(value: Any) -> str:
    """Compact JSON that keeps text readable, escaping only when it must.

    A lone surrogate (legal in a Python str and in JSON, not in UTF-8) cannot be
    stored as raw text, so such values are written with ASCII escapes instead.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
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

    @property
    def role(self) -> str:
        """The message's role, such as ``"user"`` or ``"assistant"`` (``"tool"`` for a function call's output)."""
        return role_and_text(self.message, self.kind)[0] or ""

    @property
    def text(self) -> str:
        """The message's plain text (what search sees)."""
        return role_and_text(self.message, self.kind)[1]


def role_and_text(body: Mapping[str, Any], kind: str) -> tuple[str | None, str]:
    """A stored body's role column and searchable text: Responses API items have their own shapes."""
    if kind == "response_item":
        return item_role(body), response_item_text(body)
    role = body.get("role")
    return (role if isinstance(role, str) else None), message_text(body)


@runtime_checkable
class Store(Protocol):
    """The operations every backend provides; a ``Conversation`` is a view over them.

    Every method that changes data is one transaction: when it raises, nothing changed.
    """

    url: str

    def create_conversation(
        self,
        conversation_id: str | None = None,
        *,
        title: str | None = None,
        owner: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ConversationRecord:
        """Create a conversation; a generated time-sortable id is used when none is given."""
        ...

    def get_conversation(self, conversation_id: str) -> ConversationRecord:
        """Return a conversation or raise ``ConversationNotFound``."""
        ...

    def list_conversations(
        self,
        *,
        limit: int | None = 50,
        offset: int = 0,
        title_contains: str | None = None,
        owner: str | None = None,
    ) -> list[ConversationRecord]:
        """Conversations, most recently updated first."""
        ...

    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ConversationRecord:
        """Change a conversation's title or metadata (``None`` leaves a field as it is)."""
        ...

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation and all its messages."""
        ...

    def append(
        self,
        conversation_id: str,
        message: Mapping[str, Any],
        *,
        parent_id: str | None = HEAD,
        move_head: bool = True,
        kind: MessageKind = "chat",
        status: MessageStatus = "complete",
        model: str | None = None,
        usage: Mapping[str, Any] | None = None,
        latency_ms: float | None = None,
        finish_reason: str | None = None,
        error: str | None = None,
        token_counts: Mapping[str, int] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> StoredMessage:
        """Add a message after ``parent_id`` (the head by default) and return it stored."""
        ...

    def update_message(
        self,
        message_id: str,
        *,
        status: MessageStatus | None = None,
        error: str | None = None,
        token_counts: Mapping[str, int] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> StoredMessage:
        """Change a message's bookkeeping; its OpenAI content never changes."""
        ...

    def get_message(self, message_id: str) -> StoredMessage:
        """Return a message or raise ``MessageNotFound``."""
        ...

    def path(
        self, conversation_id: str, *, last: int | None = None, head_id: str | None = None
    ) -> list[StoredMessage]:
        """The messages from the root to the head (or ``head_id``), oldest first.

        With ``last=K`` only the final K, read in O(K).
        """
        ...

    def find_messages(self, conversation_id: str, *, kind: MessageKind) -> list[StoredMessage]:
        """Every message of one kind in a conversation, oldest first (summaries, say)."""
        ...

    def save_token_counts(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Store token counts for many messages at once: ``{message_id: {encoding: n}}``."""
        ...

    def import_conversations(
        self, conversations: Iterable[ImportConversation], *, progress: Callable[[ImportSummary], None] | None = None
    ) -> ImportSummary:
        """Import whole conversations in one transaction (all or nothing), skipping known source keys."""
        ...

    def search(
        self,
        query: str,
        *,
        conversation_id: str | None = None,
        role: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        owner: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[SearchHit]:
        """Messages matching ``query``, best first, filtered by conversation, role, model prefix, dates, owner."""
        ...

    def set_head(self, conversation_id: str, message_id: str | None) -> None:
        """Move the conversation's head to one of its messages (``None``: empty)."""
        ...

    def children(self, message_id: str) -> list[StoredMessage]:
        """The messages whose parent is this one, oldest first."""
        ...

    def count_conversations(self) -> int:
        """How many conversations the store holds."""
        ...

    def count_messages(self, conversation_id: str | None = None) -> int:
        """How many messages one conversation (or the whole store) holds."""
        ...

    def close(self) -> None:
        """Release the store's files or connections."""
        ...


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
