"""``Turn``: what one chat turn saves, and under which parent, decided once for the sync and async chats.

A turn never touches the store itself: it hands the shells callables (store
operations) to run, directly in ``Chat`` and in a worker thread in
``AsyncChat``. The order is fixed by the durability rules: the user's message
is saved before the API call; the reply, complete or not, after it; a failure
marks the unanswered message.

Every write names its parent: the prompt is saved under the tip this turn
read, and the reply under the prompt it answers. The head follows only by
compare-and-set, so when another writer moved it meanwhile (a second chat, a
``chatkeep switch``), the turn's messages stay together on a branch of their
own instead of landing under someone else's prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..context.history import History
from ..errors import ChatkeepError
from ..messages import MessageDict, to_message_dict, user_message, validate_message
from ..store.base import PARENT, StoredMessage
from ..store.conversation import Conversation
from ..store.protocol import Lease
from .effects import StreamClosed
from .turn import ReplyRecord, check_tool_results, describe_error

__all__ = ["Turn", "as_message"]

Operation = Callable[[], Any]

_INTERRUPTIONS = (GeneratorExit, KeyboardInterrupt, StreamClosed)


def as_message(message: str | Mapping[str, Any] | Any) -> MessageDict:
    """A user message from text, or a checked copy of a message dict or SDK object."""
    if isinstance(message, str):
        return user_message(message)
    return validate_message(to_message_dict(message))


def interruption_text(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """What a message's ``error`` says about why its turn ended unanswered (``secrets`` removed)."""
    if isinstance(exc, StreamClosed):
        return "interrupted before the reply started (the stream was closed)"
    if isinstance(exc, _INTERRUPTIONS):
        return f"interrupted before the reply started ({type(exc).__name__})"
    return describe_error(exc, secrets)


class Turn:
    """One turn over a conversation whose current branch is ``history``.

    ``message`` is the new message to send (text or a message dict); ``None``
    sends the conversation as it is, which answers a head that is a user or
    tool message. ``regenerate`` answers the head's parent again when the head
    is an assistant reply, starting a new branch (refused up front by a store
    that cannot hold one). The turn writes through ``lease`` and keeps
    ``history`` in step with what it saves.
    """

    def __init__(
        self,
        conversation: Conversation,
        history: History,
        message: str | Mapping[str, Any] | None = None,
        *,
        regenerate: bool = False,
        lease: Lease | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.conversation = conversation
        self.history = history
        self.lease = lease
        self.secrets = tuple(secrets)
        self.new_message = None if message is None else as_message(message)
        self.prompt: StoredMessage | None = None
        # Where the reply goes, and the head it expects to find there when it is saved.
        self.reply_parent: str | None = None
        self.expected_head: str | None = PARENT
        if self.new_message is None:
            self._answer_existing(regenerate)
        check_tool_results(history.last_turn(), self.new_message)

    def _answer_existing(self, regenerate: bool) -> None:
        items = self.history.items
        head = items[-1] if items else None
        if head is None:
            raise ChatkeepError("the conversation is empty: send a message first")
        if head.role == "assistant":
            if not regenerate:
                raise ChatkeepError(
                    "the last message is already the assistant's: send a new message, or retry() to regenerate it"
                )
            self.conversation.store.require("branches")  # before any model call is paid for
            self.history.pop()
            self.reply_parent, self.expected_head = head.parent_id, head.id
            self.prompt = items[-1] if items else None
        else:
            self.prompt = head
            self.reply_parent = head.id

    def _counts(self, tokens: int) -> dict[str, int] | None:
        return {self.history.key: tokens} if self.history.key else None

    def release(self) -> None:
        """Let other turns in (a store that holds one branch keeps them out until now)."""
        if self.lease is not None:
            self.lease.release()

    # -- store operations, for the shells to run --------------------------------

    def save_prompt(self) -> Operation | None:
        """Save the new message under the tip this turn read, before the call (``None``: nothing to save)."""
        if self.new_message is None or self.prompt is not None:
            return None
        message = self.new_message
        tokens = self.history.tokens_of(message)
        tip = self.history.head_id

        def save() -> StoredMessage:
            stored = self.conversation.append(message, parent_id=tip, token_counts=self._counts(tokens))
            self.prompt, self.reply_parent = stored, stored.id
            self.history.append(stored, tokens)
            return stored

        return save

    def save_reply(self, record: ReplyRecord, *, latency_ms: float, sent: Mapping[str, Any] | None) -> Operation:
        """Save the reply under its prompt (with what was sent for it) and clear an earlier failure mark."""
        prompt, parent, expected = self.prompt, self.reply_parent, self.expected_head
        tokens = self.history.tokens_of(record.message)
        metadata = {**record.metadata, **({"context": dict(sent)} if sent else {})}

        def save() -> StoredMessage:
            stored = self.conversation.append(
                record.message, parent_id=parent, expect_head=expected, model=record.model, usage=record.usage,
                latency_ms=round(latency_ms, 3), finish_reason=record.finish_reason,
                status=record.status, metadata=metadata, token_counts=self._counts(tokens),
            )
            if prompt is not None and prompt.status == "error":
                self.conversation.store.update_message(prompt.id, status="complete", error=None)
            self.history.append(stored, tokens)
            return stored

        return save

    def save_failure(self, exc: BaseException) -> Operation | None:
        """Mark the message this turn answers as unanswered, with the error's one-line summary."""
        if self.prompt is None:
            return None
        prompt_id = self.prompt.id
        error = interruption_text(exc, self.secrets)

        def mark() -> StoredMessage:
            updated = self.conversation.store.update_message(prompt_id, status="error", error=error)
            index = self.history.index.get(prompt_id)
            if index is not None:  # keep the cached branch in step with the store
                self.history.items[index] = updated
            return updated

        return mark
