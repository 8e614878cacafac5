"""``ResponsesChat`` and ``AsyncResponsesChat``: conversations over the Responses API, every item saved.

The siblings of ``Chat`` and ``AsyncChat`` for ``client.responses.create``.
The new input is saved before the call; each output item (messages, function
calls, reasoning items, kinds newer than chatkeep) is saved as it came, one
stored message per item with ``kind="response_item"``. A failed call leaves
the input marked unanswered and re-raises the SDK's exception; a stream cut
off saves what arrived, marked ``incomplete``.

With ``store_on_server=True`` the server keeps each response and the next
turn names it (``previous_response_id``), sending only the new input; the
local copy stays complete, and chatkeep falls back to sending the whole
branch when the server no longer has the response.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import ResponseError
from ..store.base import StoredMessage
from ..store.conversation import Conversation
from ..items import ITEM_KIND, input_items, item_type
from .responses_turn import (
    OutputRecord,
    ResponseAccumulator,
    ResponsesTurn,
    lost_chain,
    record_from_response,
)
from .streams import AsyncTextStream, Slot, TextStream
from .turn import ms_since

__all__ = ["AsyncResponsesChat", "AsyncResponsesStream", "ResponsesChat", "ResponsesReply", "ResponsesStream"]

T = TypeVar("T")
Input = str | Mapping[str, Any] | Sequence[Any] | None


@dataclass(frozen=True)
class ResponsesReply:
    """A finished turn's output: ``str(reply)`` is its text, ``items`` the stored output items."""

    items: list[StoredMessage]
    text: str
    response_id: str | None
    model: str | None
    usage: dict[str, Any] | None
    finish_reason: str | None

    @property
    def output(self) -> list[dict[str, Any]]:
        """The output items as the server sent them."""
        return [stored.message for stored in self.items]

    @property
    def function_calls(self) -> list[dict[str, Any]]:
        """The function calls the model asked for (answer them with ``add_tool_result``)."""
        return [item for item in self.output if item_type(item) == "function_call"]

    @property
    def status(self) -> str:
        return self.items[-1].status if self.items else "error"

    def __str__(self) -> str:
        return self.text


def _reply(stored: list[StoredMessage]) -> ResponsesReply:
    texts = [
        part["text"]
        for item in stored if item_type(item.message) == "message"
        for part in item.message.get("content") or () if isinstance(part, Mapping) and part.get("type") == "output_text"
    ]
    last = stored[-1]
    return ResponsesReply(stored, "".join(texts), last.metadata.get("response_id"), last.model, last.usage,
                          last.finish_reason)


def _tool_output(call_id: str, output: Any) -> dict[str, Any]:
    if not isinstance(output, (str, list)):
        output = json.dumps(output, ensure_ascii=False)
    return {"type": "function_call_output", "call_id": call_id, "output": output}


@dataclass
class _End:
    """How a stream ends: what to save, and the error to raise once saved."""

    save: Callable[[], Any] | None
    error: BaseException | None
    failed: bool


class _ResponsesBase:
    """Settings and the non-I/O steps shared by ``ResponsesChat`` and ``AsyncResponsesChat``.

    ``defaults`` are keyword arguments for ``responses.create`` (``instructions``,
    ``tools``, ``reasoning``, ``include``...), which each call's own keywords
    override. ``max_items`` sends only about the newest items: the window
    widens back so that no tool output loses its call. The store keeps everything.
    """

    def __init__(self, conversation: Conversation, client: Any, model: str = "gpt-4o", *,
                 store_on_server: bool = False, max_items: int | None = None, **defaults: Any) -> None:
        self.conversation = conversation
        self.client = client
        self.model = model
        self.store_on_server = store_on_server
        self.max_items = max_items
        self.defaults = defaults
        # The branch as last seen, reused while the head has not moved.
        self._cache: tuple[str | None, list[StoredMessage]] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conversation.id!r}, model={self.model!r})"

    def _options(self, overrides: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        options = {**self.defaults, **overrides}
        return str(options.pop("model", self.model)), options

    def _branch(self) -> list[StoredMessage]:
        head = self.conversation.record.head_id
        if self._cache is not None and self._cache[0] == head:
            return list(self._cache[1])
        return self.conversation.history()

    def _prepare(self, message: Input) -> ResponsesTurn:
        """Read the branch, plan the turn, save the new input (blocking: one worker-thread call when async)."""
        new = None if message is None else input_items(message)
        turn = ResponsesTurn(self.conversation, self._branch(), new, chain=self.store_on_server,
                             max_items=self.max_items)
        turn.save_input()
        self._keep(turn)
        return turn

    def _keep(self, turn: ResponsesTurn) -> None:
        self._cache = (turn.branch[-1].id if turn.branch else None, turn.branch)

    def _settle(self, turn: ResponsesTurn, stored: list[StoredMessage]) -> ResponsesReply:
        self._keep(turn)
        return _reply(stored)

    def _failed(self, turn: ResponsesTurn, updated: StoredMessage | None) -> None:
        if updated is not None:  # keep the cached branch in step with the store
            turn.branch[:] = [updated if m.id == updated.id else m for m in turn.branch]
            self._keep(turn)

    def _end(self, turn: ResponsesTurn, acc: ResponseAccumulator, started: float, exc: BaseException | None) -> _End:
        problem = acc.problem()
        if not acc.started:
            cause = exc or problem or ResponseError("the server's response has no output items")
            return _End(turn.save_failure(cause), None if exc else cause, True)
        record: OutputRecord = acc.finish()
        save = turn.save_output(record, latency_ms=ms_since(started), first_token_ms=acc.first_token_ms)
        return _End(save, None if exc else problem, False)

    @staticmethod
    def _first_token(acc: ResponseAccumulator, started: float) -> None:
        if acc.first_token_ms is None:
            acc.first_token_ms = round(ms_since(started), 3)


class ResponsesStream(TextStream["ResponsesReply"]):
    """The text deltas of a streamed response; ``reply`` is set once it is saved."""


class ResponsesChat(_ResponsesBase):
    """A conversation over ``client.responses.create`` (an ``openai.OpenAI``): ``send`` or ``stream``, all saved."""

    def _create(self, turn: ResponsesTurn, model: str, options: Mapping[str, Any], *, stream: bool) -> Any:
        try:
            return self.client.responses.create(**turn.request(model, options, stream=stream))
        except Exception as exc:
            if turn.previous_response_id is None or not lost_chain(exc):
                raise
        turn.unchain()
        return self.client.responses.create(**turn.request(model, options, stream=stream))

    def _fail(self, turn: ResponsesTurn, exc: BaseException) -> None:
        mark = turn.save_failure(exc)
        self._failed(turn, mark() if mark is not None else None)

    def send(self, message: Input = None, /, **overrides: Any) -> ResponsesReply:
        """Save ``message`` (text, an item, or a list of items), ask the model, save and return its output.

        Without a message the branch is answered as it stands (after tool
        outputs, say). When the call fails, the input stays saved and marked
        unanswered, and the SDK's exception is raised unchanged.
        """
        turn = self._prepare(message)
        model, options = self._options(overrides)
        started = time.perf_counter()
        try:
            record = record_from_response(self._create(turn, model, options, stream=False))
        except BaseException as exc:
            self._fail(turn, exc)
            raise
        return self._settle(turn, turn.save_output(record, latency_ms=ms_since(started))())

    def stream(self, message: Input = None, /, **overrides: Any) -> ResponsesStream:
        """Save ``message`` now, then yield the output text as it arrives; the output is saved when it ends."""
        turn = self._prepare(message)
        model, options = self._options(overrides)
        out = ResponsesStream()
        out._events = self._events(turn, model, options, out._slot)
        return out

    def _events(self, turn: ResponsesTurn, model: str, options: dict[str, Any], slot: Slot[ResponsesReply]) -> Iterator[str]:
        acc, started = ResponseAccumulator(), time.perf_counter()
        try:
            with self._create(turn, model, options, stream=True) as events:
                for event in events:
                    text = acc.feed(event)
                    if text:
                        self._first_token(acc, started)
                        yield text
        except BaseException as exc:
            self._finish(turn, acc, started, slot, exc)
            raise
        self._finish(turn, acc, started, slot, None)

    def _finish(self, turn: ResponsesTurn, acc: ResponseAccumulator, started: float, slot: Slot[ResponsesReply],
                exc: BaseException | None) -> None:
        end = self._end(turn, acc, started, exc)
        done = end.save() if end.save is not None else None
        if end.failed:
            self._failed(turn, done)
        elif done is not None:
            slot.reply = self._settle(turn, done)
        if end.error is not None:
            raise end.error

    def add_tool_result(self, call_id: str, output: Any) -> StoredMessage:
        """Store a ``function_call_output`` for one of the model's calls; the next ``send()`` sends it.

        ``output`` is text, content parts, or anything JSON can write (sent as JSON text).
        """
        return self.conversation.append(_tool_output(call_id, output), kind=ITEM_KIND)


async def _write(operation: Callable[[], T]) -> T:
    # Shielded: a cancelled task still finishes saving what it started to save.
    return await asyncio.shield(asyncio.to_thread(operation))


class AsyncResponsesStream(AsyncTextStream["ResponsesReply"]):
    """The text deltas of a streamed response, for ``async for``; ``reply`` is set once it is saved."""


class AsyncResponsesChat(_ResponsesBase):
    """``ResponsesChat`` for ``openai.AsyncOpenAI``: ``await chat.send(...)``, ``async for t in chat.stream(...)``."""

    async def _create(self, turn: ResponsesTurn, model: str, options: Mapping[str, Any], *, stream: bool) -> Any:
        try:
            return await self.client.responses.create(**turn.request(model, options, stream=stream))
        except Exception as exc:
            if turn.previous_response_id is None or not lost_chain(exc):
                raise
        turn.unchain()
        return await self.client.responses.create(**turn.request(model, options, stream=stream))

    async def _fail(self, turn: ResponsesTurn, exc: BaseException) -> None:
        mark = turn.save_failure(exc)
        self._failed(turn, await _write(mark) if mark is not None else None)

    async def send(self, message: Input = None, /, **overrides: Any) -> ResponsesReply:
        """Save ``message``, ask the model, save and return its output (see ``ResponsesChat.send``)."""
        turn = await _write(lambda: self._prepare(message))
        model, options = self._options(overrides)
        started = time.perf_counter()
        try:
            record = record_from_response(await self._create(turn, model, options, stream=False))
        except BaseException as exc:
            await self._fail(turn, exc)
            raise
        return self._settle(turn, await _write(turn.save_output(record, latency_ms=ms_since(started))))

    def stream(self, message: Input = None, /, **overrides: Any) -> AsyncResponsesStream:
        """The output text as it arrives, for ``async for``; the input is saved when iteration starts."""
        out = AsyncResponsesStream()
        out._events = self._events(message, overrides, out._slot)
        return out

    async def _events(self, message: Input, overrides: Mapping[str, Any], slot: Slot[ResponsesReply]) -> AsyncIterator[str]:
        turn = await _write(lambda: self._prepare(message))
        model, options = self._options(overrides)
        acc, started = ResponseAccumulator(), time.perf_counter()
        try:
            async with await self._create(turn, model, options, stream=True) as events:
                async for event in events:
                    text = acc.feed(event)
                    if text:
                        self._first_token(acc, started)
                        yield text
        except BaseException as exc:
            await self._finish(turn, acc, started, slot, exc)
            raise
        await self._finish(turn, acc, started, slot, None)

    async def _finish(self, turn: ResponsesTurn, acc: ResponseAccumulator, started: float, slot: Slot[ResponsesReply],
                      exc: BaseException | None) -> None:
        end = self._end(turn, acc, started, exc)
        done = await _write(end.save) if end.save is not None else None
        if end.failed:
            self._failed(turn, done)
        elif done is not None:
            slot.reply = self._settle(turn, done)
        if end.error is not None:
            raise end.error

    async def add_tool_result(self, call_id: str, output: Any) -> StoredMessage:
        """Store a ``function_call_output`` (see ``ResponsesChat.add_tool_result``)."""
        return await _write(lambda: self.conversation.append(_tool_output(call_id, output), kind=ITEM_KIND))
