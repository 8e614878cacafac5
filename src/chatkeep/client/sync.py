"""``Chat``: turns over ``openai.OpenAI``, each saved the moment it happens."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from ..context.policies import Context
from ..store.base import StoredMessage
from .base import ChatBase
from .plan import Turn
from .streams import Slot, TextStream
from .turn import (
    Reply,
    ReplyAccumulator,
    empty_stream_error,
    ms_since,
    reply_from_completion,
    tool_message,
    unfinished_stream_error,
)

__all__ = ["Chat", "ReplyStream"]


class ReplyStream(TextStream[Reply]):
    """The text deltas of a streamed chat reply; ``reply`` is set once it is saved."""


class Chat(ChatBase):
    """A conversation with a model: ``send`` or ``stream`` a message, get the reply, all saved.

    ``client`` is an ``openai.OpenAI`` (any ``base_url``); ``defaults`` are
    keyword arguments for ``chat.completions.create`` (temperature, tools, ...),
    which each call's own keywords override. See ``ChatBase`` for the context
    settings (``context=``, ``context_window=``, ``budget=``, ``encoding=``).
    """

    def _context(self, turn: Turn, model: str, options: Mapping[str, Any]) -> Context:
        while True:
            choice = self._select(turn.history, model, options)
            if isinstance(choice, Context):
                return choice
            request = self._summary_request(choice, model)
            self._save_summary(choice, reply_from_completion(self.client.chat.completions.create(**request)))()

    def _fail(self, turn: Turn, exc: BaseException) -> None:
        mark = turn.save_failure(exc)
        if mark is not None:
            mark()

    def send(self, message: str | Mapping[str, Any] | None = None, /, **overrides: Any) -> Reply:
        """Save ``message``, ask the model, save and return its reply.

        Without a message, the conversation is answered as it stands (after tool
        results, say). When the call fails, the message stays saved and marked
        unanswered, and the SDK's exception is raised unchanged.
        """
        return self._send(self._prepare(message), overrides)

    def retry(self, **overrides: Any) -> Reply:
        """Answer the last message again: re-send an unanswered turn, or regenerate the reply.

        A regenerated reply starts a new branch; the old one stays in the store.
        """
        return self._send(self._prepare(None, regenerate=True), overrides)

    def _send(self, turn: Turn, overrides: Mapping[str, Any]) -> Reply:
        model, options = self._options(overrides)
        try:
            context = self._context(turn, model, options)
            sent = context.describe(turn.history)
            request = self._request(context, model, options, stream=False)
            started = time.perf_counter()
            record = reply_from_completion(self.client.chat.completions.create(**request))
        except BaseException as exc:
            self._fail(turn, exc)
            raise
        reply = self._settle(turn.save_reply(record, latency_ms=ms_since(started), sent=sent)())
        if record.status == "incomplete":
            raise unfinished_stream_error(reply.message.id)  # saved, but the server never said it finished
        return reply

    def stream(self, message: str | Mapping[str, Any] | None = None, /, **overrides: Any) -> ReplyStream:
        """Save ``message`` now, then yield the reply's text as it arrives; the reply is saved when it ends.

        A stream cut short (dropped connection, an exception, ``close()``,
        Ctrl-C) saves what arrived, marked ``incomplete``.
        """
        return self._stream(self._prepare(message), overrides)

    def retry_stream(self, **overrides: Any) -> ReplyStream:
        """``retry()``, streamed."""
        return self._stream(self._prepare(None, regenerate=True), overrides)

    def _stream(self, turn: Turn, overrides: Mapping[str, Any]) -> ReplyStream:
        model, options = self._options(overrides)
        try:
            context = self._context(turn, model, options)
        except BaseException as exc:
            self._fail(turn, exc)
            raise
        out = ReplyStream()
        request = self._request(context, model, options, stream=True)
        out._events = self._events(turn, request, context.describe(turn.history), out._slot)
        return out

    def _events(self, turn: Turn, request: dict[str, Any], sent: dict[str, Any], out: Slot[Reply]) -> Iterator[str]:
        acc, started = ReplyAccumulator(), time.perf_counter()
        try:
            with self.client.chat.completions.create(**request) as chunks:
                for chunk in chunks:
                    text = acc.feed(chunk)
                    if text:
                        acc.metadata.setdefault("first_token_ms", round(ms_since(started), 3))
                        yield text
        except BaseException as exc:
            self._finish_stream(turn, acc, started, sent, out, exc)
            raise
        self._finish_stream(turn, acc, started, sent, out, None)

    def _finish_stream(
        self, turn: Turn, acc: ReplyAccumulator, started: float, sent: dict[str, Any], out: Slot[Reply],
        exc: BaseException | None,
    ) -> None:
        if not acc.started:
            problem = exc or empty_stream_error(acc)
            self._fail(turn, problem)
            if exc is None:
                raise problem
            return
        out.reply = self._settle(turn.save_reply(acc.finish(), latency_ms=ms_since(started), sent=sent)())
        if exc is None and not acc.done:
            raise unfinished_stream_error(out.reply.message.id)

    def add_tool_result(self, tool_call_id: str, content: Any) -> StoredMessage:
        """Store a tool's result for one of the last reply's tool calls; the next turn sends it.

        ``content`` is a string, content parts, or anything JSON can write (sent as JSON text).
        """
        return self.conversation.append(tool_message(tool_call_id, content))
