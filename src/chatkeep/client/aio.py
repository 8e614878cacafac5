"""``AsyncChat``: ``Chat`` over ``openai.AsyncOpenAI``, with the same method names.

The turn is the same one ``Chat`` runs (see :mod:`.steps`); here its store
calls run in a worker thread and always finish, even when the task is
cancelled (see :mod:`chatkeep.store.threads`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..redact import client_secrets
from ..store.base import StoredMessage
from ..store.threads import run_blocking
from .base import ChatBase
from .effects import arun, astream
from .streams import AsyncTextStream
from .titles import TITLE_TIMEOUT, report, title_request, title_text, wants_title
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

    async def close(self, timeout: float = TITLE_TIMEOUT) -> None:
        """Wait up to ``timeout`` seconds for a title still being written, then cancel it; the chat stays usable.

        The client is yours: it is not closed.
        """
        import asyncio

        pending, self._titles = [task for task in self._titles if not task.done()], []
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def __aenter__(self) -> AsyncChat:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _start_title(self, reply: StoredMessage) -> None:
        import asyncio

        # The turn runs on the event loop (see .effects), so the task joins the caller's loop.
        task = asyncio.get_running_loop().create_task(self._write_title(reply.text),
                                                      name=f"chatkeep-title:{self.conversation.id}")
        self._titles.append(task)

    async def _write_title(self, reply_text: str) -> None:
        conversation = self.conversation
        try:
            prompt = wants_title(await run_blocking(lambda: conversation.record))
            if prompt is None or self.title_model is None:
                return
            completion = await self.client.chat.completions.create(**title_request(self.title_model, prompt, reply_text))
            title = title_text(completion)
            if title:
                await run_blocking(lambda: conversation.store.suggest_title(conversation.id, title))
        except Exception as exc:
            report(conversation.id, exc, client_secrets(self.client))
