"""``History``: a branch with its token counts, kept so each turn's context costs the same.

Counts are computed once per message and stored with it. Prefix sums over
the counts make finding where a window starts a binary search, and appending
a message O(1), so building the next turn's context does not grow with the
conversation.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..messages import MessageDict
from ..store.base import StoredMessage

__all__ = ["History", "PINNED_ROLES"]

#: Roles a trimmed context always keeps.
PINNED_ROLES = frozenset({"system", "developer"})


class History:
    """The messages of one branch, oldest first, with a token count for each."""

    def __init__(self, count: Callable[[Mapping[str, Any]], int] | None = None, key: str | None = None) -> None:
        self.count = count
        self.key = key
        # Counts computed here for messages the store has none for, to save in one batch.
        self.unsaved: dict[str, int] = {}
        self.items: list[StoredMessage] = []
        self.sendable: list[MessageDict] = []
        self.tokens: list[int] = []
        # Prefix sums over the messages a trim may drop (pinned ones add 0).
        self.free_sums: list[int] = [0]
        self.pinned: list[int] = []
        self.pinned_tokens = 0
        self.index: dict[str, int] = {}

    @classmethod
    def of(
        cls, items: Iterable[StoredMessage], count: Callable[[Mapping[str, Any]], int] | None = None,
        *, key: str | None = None,
    ) -> History:
        """A history of stored messages, taking each one's stored count under ``key`` when it has one."""
        history = cls(count, key)
        for stored in items:
            tokens = stored_count(stored, key)
            if tokens is None and count is not None:
                tokens = history.unsaved[stored.id] = count(stored.message)
            history.append(stored, tokens)
        return history

    def __len__(self) -> int:
        return len(self.items)

    @property
    def head_id(self) -> str | None:
        return self.items[-1].id if self.items else None

    def tokens_of(self, message: Mapping[str, Any]) -> int:
        return self.count(message) if self.count is not None else 0

    def append(self, stored: StoredMessage, tokens: int | None = None) -> None:
        """Add the next message of the branch (its count is computed when not given)."""
        if tokens is None:
            tokens = self.tokens_of(stored.message)
        index = len(self.items)
        self.items.append(stored)
        self.index[stored.id] = index
        self.sendable.append(stored.message)
        self.tokens.append(tokens)
        if stored.role in PINNED_ROLES:
            self.pinned.append(index)
            self.pinned_tokens += tokens
            self.free_sums.append(self.free_sums[-1])
        else:
            self.free_sums.append(self.free_sums[-1] + tokens)

    def pop(self) -> StoredMessage:
        """Remove the newest message (a regeneration answers its parent again)."""
        stored = self.items.pop()
        del self.index[stored.id]
        self.sendable.pop()
        tokens = self.tokens.pop()
        self.free_sums.pop()
        if self.pinned and self.pinned[-1] == len(self.items):
            self.pinned.pop()
            self.pinned_tokens -= tokens
        return stored

    def copy(self) -> History:
        twin = History(self.count, self.key)
        twin.items, twin.sendable, twin.tokens = list(self.items), list(self.sendable), list(self.tokens)
        twin.free_sums, twin.pinned, twin.pinned_tokens = list(self.free_sums), list(self.pinned), self.pinned_tokens
        twin.index = dict(self.index)
        return twin

    @property
    def total(self) -> int:
        """Tokens of every message in the branch."""
        return self.free_sums[-1] + self.pinned_tokens

    def free_tokens(self, start: int, end: int | None = None) -> int:
        """Tokens of the droppable messages from ``start`` up to ``end``."""
        return self.free_sums[len(self.items) if end is None else end] - self.free_sums[start]

    def start_for(self, room: int, *, floor: int = 0) -> int:
        """The earliest index from which the droppable messages fit in ``room`` tokens."""
        need = self.free_sums[-1] - room
        return max(bisect_left(self.free_sums, need, lo=floor), floor)

    def pinned_before(self, start: int) -> list[int]:
        return [i for i in self.pinned if i < start]


def stored_count(stored: StoredMessage, key: str | None) -> int | None:
    if key is None or not stored.token_counts:
        return None
    value = stored.token_counts.get(key)
    return value if isinstance(value, int) else None
