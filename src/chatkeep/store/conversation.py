"""``Conversation``: one conversation seen through its store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConversationNotFound
from ..messages import MessageDict
from .base import ANY, HEAD, PARENT, ConversationRecord, Draft, MessageKind, MessageStatus, StoredMessage
from .protocol import Store

__all__ = ["Branch", "Conversation", "ConversationAccess"]


@dataclass(frozen=True)
class Branch:
    """One branch of a conversation: its newest message, how many messages lead to it, and
    whether the head is on it (``conversation.set_head(branch.tip.id)`` switches to it)."""

    tip: StoredMessage
    length: int
    current: bool


class Conversation:
    """A view over one conversation in a store; it holds no messages itself.

    Every read goes to the store, so two processes sharing a database see each
    other's turns.
    """

    def __init__(self, store: Store, conversation_id: str) -> None:
        self.store = store
        self.id = conversation_id

    def __repr__(self) -> str:
        return f"Conversation({self.id!r}, store={self.store!r})"

    @property
    def record(self) -> ConversationRecord:
        """The conversation's stored fields (title, times, head, metadata)."""
        return self.store.get_conversation(self.id)

    @property
    def title(self) -> str | None:
        """The conversation's own title (``None``: it has none; ``display_title`` makes one)."""
        return self.record.title

    @property
    def display_title(self) -> str:
        """Its own title, else one made from its first user message (see ``ConversationRecord.display_title``)."""
        return self.record.display_title

    @property
    def tags(self) -> tuple[str, ...]:
        """The conversation's tags, sorted."""
        return self.record.tags

    def add_tags(self, *tags: str) -> tuple[str, ...]:
        """Tag the conversation (lower case, spaces collapsed); return all its tags."""
        return self.store.add_tags(self.id, tags).tags

    def remove_tags(self, *tags: str) -> tuple[str, ...]:
        """Take tags off the conversation; return the tags it still has."""
        return self.store.remove_tags(self.id, tags).tags

    @property
    def pinned(self) -> bool:
        """Whether the conversation is pinned (listed first by ``chatkeep list``)."""
        return self.record.pinned

    def pin(self) -> None:
        """Pin the conversation."""
        self.store.set_pinned(self.id, True)

    def unpin(self) -> None:
        """Unpin the conversation."""
        self.store.set_pinned(self.id, False)

    @property
    def archived(self) -> bool:
        """Whether the conversation is archived (hidden from ``chatkeep list``; nothing is deleted)."""
        return self.record.archived

    def archive(self) -> None:
        """Archive the conversation: ``chatkeep list`` hides it; its messages stay, and search finds them."""
        self.store.set_archived(self.id, True)

    def unarchive(self) -> None:
        """Bring the conversation back from the archive."""
        self.store.set_archived(self.id, False)

    @property
    def messages(self) -> list[MessageDict]:
        """The current branch as the list to pass as ``messages=`` to the API."""
        return self.store.branch_bodies(self.id)

    def history(self, *, last: int | None = None) -> list[StoredMessage]:
        """The stored messages of the current branch, oldest first (or the final ``last``)."""
        return self.store.path(self.id, last=last)

    @property
    def head(self) -> StoredMessage | None:
        """The message at the tip of the current branch, or ``None`` when empty."""
        tail = self.store.path(self.id, last=1)
        return tail[0] if tail else None

    def append(self, message: Mapping[str, Any], **bookkeeping: Any) -> StoredMessage:
        """Store a message after the head, in one transaction, and return it stored.

        ``bookkeeping`` takes the keyword arguments of ``Store.append``
        (``model``, ``usage``, ``status``, ``parent_id``, ...).
        """
        return self.store.append(self.id, message, **bookkeeping)

    def rename(self, title: str) -> None:
        """Set the conversation's title."""
        self.store.update_conversation(self.id, title=title)

    def set_head(self, message_id: str | None, *, expect_head: str | None = ANY) -> None:
        """Move the head to one of this conversation's messages (a branch switch).

        With ``expect_head``, only if the head is still that message (else ``HeadMoved``).
        """
        self.store.set_head(self.id, message_id, expect_head=expect_head)

    def undo(self) -> StoredMessage | None:
        """Step the head back one turn, to just before the last user message; return the new head.

        One store operation: a message appended meanwhile cannot slip between
        reading the tail and moving the head. Nothing is deleted: the undone
        turn stays in the store as a branch.
        """
        return self.store.undo(self.id)

    def edit(self, message_id: str, message: Mapping[str, Any]) -> StoredMessage:
        """Replace an earlier message on a new branch: a sibling of it, which becomes the head.

        The original message and everything after it stay in the store, on their branch.
        """
        return self.store.edit(self.id, message_id, message)

    def branches(self) -> list[Branch]:
        """Every branch of the conversation (one per leaf message), the current one marked, oldest first."""
        messages = self.store.find_messages(self.id, kind="chat")
        messages += self.store.find_messages(self.id, kind="response_item")
        by_id = {m.id: m for m in messages}
        parents = {m.parent_id for m in messages}

        def lineage(message: StoredMessage | None) -> Iterator[StoredMessage]:
            while message is not None:
                yield message
                message = by_id.get(message.parent_id) if message.parent_id else None

        on_head = {m.id for m in lineage(by_id.get(self.record.head_id or ""))}
        tips = sorted((m for m in messages if m.id not in parents), key=lambda m: m.created_at)
        return [Branch(tip=tip, length=sum(1 for _ in lineage(tip)), current=tip.id in on_head) for tip in tips]

    def delete(self) -> None:
        """Delete the conversation and all its messages."""
        self.store.delete_conversation(self.id)

    def __len__(self) -> int:
        """How many messages the conversation holds, on every branch."""
        return self.store.count_messages(self.id)


class ConversationAccess:
    """What every backend shares, written once over its own operations: ``append``, ``conversation``, ``fork``..."""

    def append(
        self: Store,
        conversation_id: str,
        message: Mapping[str, Any],
        *,
        parent_id: str | None = HEAD,
        expect_head: str | None = PARENT,
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
        keys: Sequence[str] = (),
    ) -> StoredMessage:
        """Validate and store one message in its own transaction, then return it (see ``Store.append``)."""
        draft = Draft(message, kind, status, model, usage, latency_ms, finish_reason, error, token_counts, metadata,
                      tuple(keys))
        return self.append_many(
            conversation_id, [draft], parent_id=parent_id, expect_head=expect_head, move_head=move_head
        )[0]

    def conversation(
        self: Store, conversation_id: str, *, create: bool = False, title: str | None = None
    ) -> Conversation:
        """Open a conversation by id; with ``create=True`` make it when it is missing."""
        try:
            self.get_conversation(conversation_id)
        except ConversationNotFound:
            if not create:
                raise
            try:
                self.create_conversation(conversation_id, title=title)
            except Exception:
                # Another process may have created it between the two calls.
                self.get_conversation(conversation_id)
        return Conversation(self, conversation_id)

    def new_conversation(
        self: Store,
        conversation_id: str | None = None,
        *,
        title: str | None = None,
        owner: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Conversation:
        """Create a conversation (with a generated id unless one is given) and open it."""
        record = self.create_conversation(conversation_id, title=title, owner=owner, metadata=metadata)
        return Conversation(self, record.id)

    def fork(
        self: Store,
        conversation_id: str,
        *,
        at: str | None = None,
        new_id: str | None = None,
        title: str | None = None,
    ) -> Conversation:
        """Copy the branch from the root to ``at`` (default: the head) into a new conversation.

        One store operation: the copy shares nothing with the original, which
        later turns on either leave alone.
        """
        record = self.fork_conversation(conversation_id, at=at, new_id=new_id, title=title)
        return Conversation(self, record.id)
