"""The ``Store`` protocol: what every backend does, or refuses up front with ``Unsupported``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..messages import MessageDict
from .base import (
    ANY,
    HEAD,
    PARENT,
    ConversationRecord,
    Draft,
    MessageKind,
    MessageStatus,
    StoredMessage,
)

if TYPE_CHECKING:
    from .bulk import ImportConversation, ImportSummary
    from .calibrations import Calibration
    from .search import SearchHit, SearchOrder

__all__ = ["Feature", "Lease", "OpenLease", "Store"]

#: What a store's format may be unable to hold: several branches, several conversations,
#: stored summaries (kept off the branch), Responses API items, titles, tags (with pins and the archive).
Feature = Literal["branches", "conversations", "summaries", "response_items", "titles", "tags"]


@runtime_checkable
class Store(Protocol):
    """The operations every backend provides; a ``Conversation`` is a view over them.

    Every method that changes data is one transaction: when it raises, nothing
    changed. Writes name their parent, and the head moves only by
    compare-and-set (see :mod:`chatkeep.store.heads`). A backend that cannot
    hold what an operation writes raises ``Unsupported`` before changing anything.
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
        matching: str | None = None,
        tags: Sequence[str] = (),
        pinned: bool | None = None,
        archived: bool | None = None,
        since: datetime | None = None,
        model: str | None = None,
        pinned_first: bool = False,
    ) -> list[ConversationRecord]:
        """Conversations, most recently updated first; with ``pinned_first``, pinned ones before the rest.

        Every filter given must match: ``title_contains`` (any case);
        ``matching``, in the title or in any message (words as ``search``
        reads them); ``owner``; ``tags``, every one of them; ``pinned`` and
        ``archived`` (``True``: only those, ``False``: none of those, ``None``:
        either); ``since``, updated at or after it; ``model``, a reply from a
        model whose name starts with it.
        """
        ...

    def add_tags(self, conversation_id: str, tags: Iterable[str] | str) -> ConversationRecord:
        """Tag a conversation (lower case, spaces collapsed; a tag it has stays once); return it as it is now."""
        ...

    def remove_tags(self, conversation_id: str, tags: Iterable[str] | str) -> ConversationRecord:
        """Take tags off a conversation (one it does not carry is no error); return it as it is now."""
        ...

    def tag_counts(self) -> dict[str, int]:
        """Every tag in the store and how many conversations carry it, sorted by tag."""
        ...

    def set_pinned(self, conversation_id: str, pinned: bool = True) -> ConversationRecord:
        """Pin a conversation, or unpin it; return it as it is now."""
        ...

    def set_archived(self, conversation_id: str, archived: bool = True) -> ConversationRecord:
        """Archive a conversation (hidden from ``chatkeep list``, every message kept), or bring it back."""
        ...

    def suggest_title(self, conversation_id: str, title: str) -> bool:
        """Set the title only if the conversation has none yet, in one step; say whether it did."""
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
        """Add a message under ``parent_id`` and return it stored.

        ``parent_id`` is the head as the write commits (``HEAD``, the default),
        a message id, or ``None`` for a new root. The head moves to the new
        message only if it is still ``expect_head`` (by default the parent;
        ``ANY``: wherever it is); otherwise the message stays on its own branch
        and the returned record's ``head_moved`` is False.
        """
        ...

    def append_many(
        self,
        conversation_id: str,
        drafts: Sequence[Draft],
        *,
        parent_id: str | None = HEAD,
        expect_head: str | None = PARENT,
        move_head: bool = True,
    ) -> list[StoredMessage]:
        """Add a chain of messages in one transaction (each the parent of the next), as ``append`` does one."""
        ...

    def edit(self, conversation_id: str, message_id: str, message: Mapping[str, Any]) -> StoredMessage:
        """Store ``message`` as a sibling of ``message_id`` and move the head to it (a new branch)."""
        ...

    def undo(self, conversation_id: str) -> StoredMessage | None:
        """Move the head to just before the branch's last user message, in one step; return the new head."""
        ...

    def pop(self, conversation_id: str) -> StoredMessage | None:
        """Move the head back one message, in one step, and return the message left behind (``None``: empty)."""
        ...

    def set_head(self, conversation_id: str, message_id: str | None, *, expect_head: str | None = ANY) -> None:
        """Move the head to one of the conversation's messages (``None``: empty).

        With ``expect_head``, only if the head is still that message; otherwise
        ``HeadMoved`` is raised and nothing changes.
        """
        ...

    def fork_conversation(
        self, conversation_id: str, *, at: str | None = None, new_id: str | None = None, title: str | None = None
    ) -> ConversationRecord:
        """Copy the branch from the root to ``at`` (default: the head) into a new conversation, in one step."""
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

    def pinned_path(self, conversation_id: str, message_id: str) -> list[StoredMessage]:
        """The system and developer messages among ``message_id``'s ancestors (itself excluded), oldest first.

        What a context trimmed to a budget keeps of the branch before its newest
        messages; found without walking the branch (see :mod:`.pinned`).
        """
        ...

    def branch_bodies(self, conversation_id: str) -> list[MessageDict]:
        """The message dicts of the current branch, oldest first: new copies the caller may change."""
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
        tags: Sequence[str] = (),
        limit: int = 20,
        offset: int = 0,
        order: SearchOrder = "relevance",
    ) -> list[SearchHit]:
        """Messages matching ``query``, best first (``order="newest"``: the latest saved first), filtered by
        conversation, role, model prefix, dates, owner, and tags (the conversation carries every one)."""
        ...

    def usage_by_model(self, conversation_id: str | None = None) -> dict[str, dict[str, int]]:
        """Replies and prompt/completion tokens by model, over one conversation or the whole store."""
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

    def find_keys(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The messages stored with these lookup keys (``Draft.keys``): ``{key: (conversation_id, message_id)}``."""
        ...

    def attachment_stats(self) -> dict[str, int]:
        """How many attachments the store keeps (``attachments``) and their bytes (``attachment_bytes``)."""
        ...

    def calibration(self, server: str, model: str) -> Calibration:
        """What is known of ``server``'s token counts for ``model`` (no samples yet: a neutral one)."""
        ...

    def record_calibration(
        self, server: str, model: str, counted: int, reported: int, *, window: int | None = None
    ) -> Calibration:
        """Add one observation (chatkeep counted ``counted``, the server ``reported``) in one step; return the result."""
        ...

    def check_integrity(self) -> list[str]:
        """Problems found in the stored data; an empty list means sound."""
        ...

    def require(self, feature: Feature) -> None:
        """Raise ``Unsupported``, saying what the store holds, when it cannot hold ``feature``."""
        ...

    def lease(self, conversation_id: str) -> Lease:
        """Hold a conversation's tip for one turn: what a turn writes goes through ``lease.store``.

        Database stores need no lock (a turn that loses a race keeps its
        messages on a branch); a store that holds one branch keeps other
        writers out until ``release()``, or refuses when it cannot.
        """
        ...

    def close(self) -> None:
        """Release the store's files or connections."""
        ...


class Lease(Protocol):
    """A turn's hold on a conversation's tip: write through ``store``, then ``release()``."""

    @property
    def store(self) -> Store:
        """The store to write through while the lease is held."""
        ...

    def release(self) -> None:
        """Let other writers in again (safe to call more than once)."""
        ...


class OpenLease:
    """The lease of a store that keeps concurrent turns apart with branches: no lock at all."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def release(self) -> None:
        """Nothing to release."""
