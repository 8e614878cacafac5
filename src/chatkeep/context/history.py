"""``History``: a branch with its token counts, kept so each turn's context costs the same.

Counts are computed once per message and stored with it. Prefix sums over
the counts make finding where a window starts a binary search, and appending
a message O(1), so building the next turn's context does not grow with the
conversation.

A history may hold only the newest part of a branch (``skipped``): the
system and developer messages from before it, then the messages from
``loaded_from`` on, read by :mod:`.loading` so a new process's first turn
costs what its window costs, not what the conversation does.

A branch written by ``ResponsesChat`` or an Agents SDK session holds Responses
API items; a chat turn sends each as the chat message it stands for (a model
turn's parallel calls joined into one assistant message), leaves out reasoning
items (chat has no place for them; they stay stored), and refuses, before
anything is sent, an item chat cannot carry.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ChatkeepError
from ..items import ITEM_KIND, NoChatShape, item_type, response_item_to_chat
from ..messages import MessageDict
from ..store.base import StoredMessage
from ..store.pinned import PINNED_ROLES

__all__ = ["History", "PINNED_ROLES"]

class History:
    """The messages of one branch, oldest first, with a token count for each."""

    def __init__(self, count: Callable[[Mapping[str, Any]], int] | None = None, key: str | None = None) -> None:
        self.count = count
        self.key = key
        # Counts computed here for messages the store has none for, to save in one batch.
        self.unsaved: dict[str, int] = {}
        self._clear()

    def _clear(self) -> None:
        self.items: list[StoredMessage] = []
        # What each stored message is sent as (None: nothing, a reasoning item), and whether it was an item.
        self.sendable: list[MessageDict | None] = []
        self.from_item: list[bool] = []
        self.tokens: list[int] = []
        # Prefix sums over the messages a trim may drop (pinned ones add 0).
        self.free_sums: list[int] = [0]
        self.pinned: list[int] = []
        self.pinned_tokens = 0
        self.index: dict[str, int] = {}
        #: Whether messages before ``items[loaded_from]`` were left unread; only the pinned ones among
        #: them (system, developer) are here, at ``items[:loaded_from]``.
        self.skipped = False
        self.loaded_from = 0

    @classmethod
    def of(
        cls, items: Iterable[StoredMessage], count: Callable[[Mapping[str, Any]], int] | None = None,
        *, key: str | None = None,
    ) -> History:
        """A history of stored messages, taking each one's stored count under ``key`` when it has one."""
        history = cls(count, key)
        for stored in items:
            tokens = stored_count(stored, key) if stored.kind != ITEM_KIND else None
            if tokens is None and count is not None and stored.kind != ITEM_KIND:
                tokens = history.unsaved[stored.id] = count(stored.message)
            history.append(stored, tokens)
        return history

    def __len__(self) -> int:
        return len(self.items)

    @property
    def head_id(self) -> str | None:
        return self.items[-1].id if self.items else None

    def tokens_of(self, message: Mapping[str, Any] | None) -> int:
        return self.count(message) if self.count is not None and message is not None else 0

    def measure(self, stored: StoredMessage) -> int:
        """A stored message's tokens as sent: its stored count, else counted now (and kept in ``unsaved``)."""
        if stored.kind == ITEM_KIND:
            return self.tokens_of(chat_view(stored))
        tokens = stored_count(stored, self.key)
        if tokens is None:
            tokens = self.tokens_of(stored.message)
            if self.count is not None:
                self.unsaved[stored.id] = tokens
        return tokens

    def rebuild(self, entries: Iterable[tuple[StoredMessage, int]], *, loaded_from: int = 0,
                skipped: bool = False) -> None:
        """Hold exactly ``entries`` (messages with their tokens, oldest first), in place.

        With ``skipped``, the messages before ``entries[loaded_from]`` on the branch
        were not read, and ``entries[:loaded_from]`` are the pinned ones among them.
        """
        self._clear()
        for stored, tokens in entries:
            self.append(stored, tokens)
        self.skipped, self.loaded_from = skipped, loaded_from if skipped else 0

    def loaded(self) -> list[tuple[StoredMessage, int]]:
        """The messages read as one stretch of the branch (all of them unless ``skipped``), with their tokens."""
        return list(zip(self.items[self.loaded_from:], self.tokens[self.loaded_from:]))

    def append(self, stored: StoredMessage, tokens: int | None = None) -> None:
        """Add the next message of the branch (its count is computed when not given)."""
        sent = chat_view(stored)
        if tokens is None:
            tokens = self.tokens_of(sent)
        index = len(self.items)
        self.items.append(stored)
        self.index[stored.id] = index
        self.sendable.append(sent)
        self.from_item.append(stored.kind == ITEM_KIND)
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
        self.from_item.pop()
        tokens = self.tokens.pop()
        self.free_sums.pop()
        if self.pinned and self.pinned[-1] == len(self.items):
            self.pinned.pop()
            self.pinned_tokens -= tokens
        return stored

    def copy(self) -> History:
        twin = History(self.count, self.key)
        twin.items, twin.sendable, twin.tokens = list(self.items), list(self.sendable), list(self.tokens)
        twin.from_item = list(self.from_item)
        twin.free_sums, twin.pinned, twin.pinned_tokens = list(self.free_sums), list(self.pinned), self.pinned_tokens
        twin.index = dict(self.index)
        twin.skipped, twin.loaded_from = self.skipped, self.loaded_from
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

    def messages(self, indices: Iterable[int]) -> list[MessageDict]:
        """What these stored messages are sent as, in order: items as chat messages, a turn's calls joined."""
        out: list[MessageDict] = []
        joining = False
        for i in indices:
            message = self.sendable[i]
            if message is None:
                continue
            if joining and self.from_item[i] and message.get("tool_calls") and out[-1].get("role") == "assistant":
                out[-1] = {**out[-1], "tool_calls": [*(out[-1].get("tool_calls") or []), *message["tool_calls"]]}
                continue
            out.append(message)
            joining = self.from_item[i] and message.get("role") == "assistant"
        return out

    def last_turn(self) -> list[MessageDict]:
        """The newest messages back to the last model turn, as sent: enough to see its unanswered calls."""
        start = len(self.items)
        while start > 0:
            start -= 1
            message = self.sendable[start]
            if message is None or message.get("role") == "tool":
                continue
            if message.get("role") != "assistant":
                break
            earlier = self.sendable[start - 1] if start > 0 else None
            if not (self.from_item[start] and start > 0 and self.from_item[start - 1]
                    and (earlier is None or earlier.get("role") == "assistant")):
                break
        return self.messages(range(start, len(self.items)))


def chat_view(stored: StoredMessage) -> MessageDict | None:
    """What a stored message is sent as in a chat turn (``None``: nothing), or ``ChatkeepError`` up front."""
    if stored.kind != ITEM_KIND:
        message = stored.message
        if "images" in message and message.get("role") == "assistant":
            # Images a model made (an imported ChatGPT export's, OpenRouter's) are kept, not sent:
            # OpenAI's chat API takes no images on an assistant message.
            return {key: value for key, value in message.items() if key != "images"}
        return message
    item = stored.message
    kind = item_type(item)
    if kind == "reasoning" or (stored.status == "incomplete" and kind != "message"):
        return None  # the model's own notes, or a call cut off mid-stream: kept, never sent
    try:
        converted = response_item_to_chat(item, strict=True)
    except NoChatShape as exc:
        converted, why = None, f" (it holds {exc})"
    else:
        why = ""
    if converted is None:
        raise ChatkeepError(
            f"message {stored.id} is a Responses API {kind or 'item'} item{why}, which a chat completion cannot "
            "carry; nothing was sent: continue this conversation with ResponsesChat"
        )
    return converted


def stored_count(stored: StoredMessage, key: str | None) -> int | None:
    if key is None or not stored.token_counts:
        return None
    value = stored.token_counts.get(key)
    return value if isinstance(value, int) else None
