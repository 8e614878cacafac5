"""``AsyncChat``: ``Chat`` over ``openai.AsyncOpenAI``, with the same method names.

The turn is the same one ``Chat`` runs (see :mod:`.steps`); here its store
calls run in a worker thread and always finish, even when the task is
cancelled (see :mod:`chatkeep.store.threads`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..store.base import StoredMessage
from ..store.threads import run_blocking
from .base import ChatBase
from .effects import arun, astream
from .streams import AsyncTextStream
from .turn import Reply, tool_message

__all__ = ["AsyncChat", "AsyncReplyStream"]


class AsyncReplyStream(AsyncTextStream[Reply]):
    """The text deltas of a streamed chat reply, for ``async for``; ``reply`` is set once it is saved."""


class AsyncChat(ChatBase):
    """``Chat`` for ``openai.AsyncOpenAI``: ``await chat.send(...)``, ``async for t in chat.stream(...)``."""

    async def send(self, message: str | Mapping[str, Any] | None = None, /, **overrides: Any) -> Reply:
        """Save ``message``, ask the model, save and return its reply (see ``Chat.send``)."""
        return await arun(self._turn(message, overrides))

    async def retry(self, **overrides: Any) -> Reply:
        """Answer the last message again (see ``Chat.retry``)."""
        return await arun(self._turn(None, overrides, regenerate=True))

    def stream(self, message: str | Mapping[str, Any] | None = None, /, **overrides: Any) -> AsyncReplyStream:
        """The reply's text as it arrives, for ``async for`` (see ``Chat.stream``).

        The message is saved when iteration starts, before the API call.
        """
        out = AsyncReplyStream()
        out._events = astream(self._turn(message, overrides, streaming=True, slot=out._slot))
        return out

    def retry_stream(self, **overrides: Any) -> AsyncReplyStream:
        """``retry()``, streamed."""
        out = AsyncReplyStream()
        out._events = astream(self._turn(None, overrides, regenerate=True, streaming=True, slot=out._slot))
        return out

    async def add_tool_result(self, tool_call_id: str, content: Any) -> StoredMessage:
        """Store a tool's result (see ``Chat.add_tool_result``)."""
        return await run_blocking(lambda: self.conversation.append(tool_message(tool_call_id, content)))
