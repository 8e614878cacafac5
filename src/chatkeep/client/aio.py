"""``AsyncChat``: ``Chat`` over ``openai.AsyncOpenAI``, with the same method names.

The store is blocking, so its calls run in a worker thread, and writes are
shielded: a cancelled task still finishes saving what it started to save.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from ..context.policies import Context
from ..store.base import StoredMessage
from .base import ChatBase
from .plan import Turn
from .streams import AsyncTextStream, Slot
from .turn import (
    Reply,
    ReplyAccumulator,
    empty_stream_error,
    ms_since,
    reply_from_completion,
    tool_message,
    unfinished_stream_error,
)

__all__ = ["AsyncChat", "AsyncReplyStream"]

T = TypeVar("T")


async def _read(operation: Callable[[], T]) -> T:
    return await asyncio.to_thread(operation)


async def _write(operation: Callable[[], T]) -> T:
    return await asyncio.shield(asyncio.to_thread(operation))


class AsyncReplyStream(AsyncTextStream[Reply]):
    """The text deltas of a streamed chat reply, for ``async for``; ``reply`` is set once it is saved."""


class AsyncChat(ChatBase):
    """``Chat`` for ``openai.AsyncOpenAI``: ``await chat.send(...)``, ``async for t in chat.stream(...)``."""

    async def _turn(self, message: Any, *, regenerate: bool = False) -> Turn:
        # One worker-thread hop for the read and the save: each hop costs about 0.1 ms.
        return await _write(lambda: self._prepare(message, regenerate=regenerate))

    async def _context(self, turn: Turn, model: str, options: Mapping[str, Any]) -> Context:
        while True:
            choice = self._select(turn.history, model, options)
            if isinstance(choice, Context):
                return choice
            request = self._summary_request(choice, model)
            record = reply_from_completion(await self.client.chat.completions.create(**request))
            await _write(self._save_summary(choice, record))

    async def _fail(self, turn: Turn, exc: BaseException) -> None:
        mark = turn.save_failure(exc)
        if mark is not None:
            await _write(mark)

    async def send(self, message: str | Mapping[str, Any] | None = None, /, **overrides: Any) -> Reply:
        """Save ``message``, ask the model, save and return its reply (see ``Chat.send``)."""
        return await self._send(await self._turn(message), overrides)

    async def retry(self, **overrides: Any) -> Reply:
        """Answer the last message again (see ``Chat.retry``)."""
        return await self._send(await self._turn(None, regenerate=True), overrides)

    async def _send(self, turn: Turn, overrides: Mapping[str, Any]) -> Reply:
        model, options = self._options(overrides)
        try:
            context = await self._context(turn, model, options)
            sent = context.describe(turn.history)
            request = self._request(context, model, options, stream=False)
            started = time.perf_counter()
            record = reply_from_completion(await self.client.chat.completions.create(**request))
        except BaseException as exc:
            await self._fail(turn, exc)
            raise
        reply = self._settle(await _write(turn.save_reply(record, latency_ms=ms_since(started), sent=sent)))
        if record.status == "incomplete":
            raise unfinished_stream_error(reply.message.id)
        return reply

    def stream(self, message: str | Mapping[str, Any] | None = None, /, **overrides: Any) -> AsyncReplyStream:
        """The reply's text as it arrives, for ``async for`` (see ``Chat.stream``).

        The message is saved when iteration starts, before the API call.
        """
        out = AsyncReplyStream()
        out._events = self._events(message, False, overrides, out._slot)
        return out

    def retry_stream(self, **overrides: Any) -> AsyncReplyStream:
        """``retry()``, streamed."""
        out = AsyncReplyStream()
        out._events = self._events(None, True, overrides, out._slot)
        return out

    async def _events(
        self, message: Any, regenerate: bool, overrides: Mapping[str, Any], out: Slot[Reply]
    ) -> AsyncIterator[str]:
        turn = await self._turn(message, regenerate=regenerate)
        model, options = self._options(overrides)
        acc, started = ReplyAccumulator(), time.perf_counter()
        sent: dict[str, Any] = {}
        try:
            context = await self._context(turn, model, options)
            sent = context.describe(turn.history)
            request = self._request(context, model, options, stream=True)
            started = time.perf_counter()
            async with await self.client.chat.completions.create(**request) as chunks:
                async for chunk in chunks:
                    text = acc.feed(chunk)
                    if text:
                        acc.metadata.setdefault("first_token_ms", round(ms_since(started), 3))
                        yield text
        except BaseException as exc:
            await self._finish_stream(turn, acc, started, sent, out, exc)
            raise
        await self._finish_stream(turn, acc, started, sent, out, None)

    async def _finish_stream(
        self, turn: Turn, acc: ReplyAccumulator, started: float, sent: dict[str, Any], out: Slot[Reply],
        exc: BaseException | None,
    ) -> None:
        if not acc.started:
            problem = exc or empty_stream_error(acc)
            await self._fail(turn, problem)
            if exc is None:
                raise problem
            return
        record = acc.finish()
        out.reply = self._settle(await _write(turn.save_reply(record, latency_ms=ms_since(started), sent=sent)))
        if exc is None and not acc.done:
            raise unfinished_stream_error(out.reply.message.id)

    async def add_tool_result(self, tool_call_id: str, content: Any) -> StoredMessage:
        """Store a tool's result (see ``Chat.add_tool_result``)."""
        return await _write(lambda: self.conversation.append(tool_message(tool_call_id, content)))
