"""``Chat``: turns over ``openai.OpenAI``, each saved the moment it happens."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..redact import client_secrets
from ..store.base import StoredMessage
from .base import ChatBase
from .effects import run, stream
from .streams import TextStream
from .titles import TITLE_TIMEOUT, report, title_request, title_text, wants_title
from .turn import Reply, tool_message

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

    def send(self, message: str | Mapping[str, Any] | None = None, /, **overrides: Any) -> Reply:
        """Save ``message``, ask the model, save and return its reply.

        Without a message, the conversation is answered as it stands (after tool
        results, say). When the call fails, the message stays saved and marked
        unanswered, and the SDK's exception is raised unchanged. The reply is
        saved under the message it answers; if the conversation moved on
        meanwhile (another chat, a branch switch), ``reply.branched`` is True.
        """
        return run(self._turn(message, overrides))

    def retry(self, **overrides: Any) -> Reply:
        """Answer the last message again: re-send an unanswered turn, or regenerate the reply.

        A regenerated reply starts a new branch; the old one stays in the store.
        """
        return run(self._turn(None, overrides, regenerate=True))

    def stream(self, message: str | Mapping[str, Any] | None = None, /, **overrides: Any) -> ReplyStream:
        """Yield the reply's text as it arrives; the reply is saved when it ends.

        The message is saved when iteration starts, before the API call. A
        stream cut short (dropped connection, an exception, ``close()``,
        Ctrl-C) saves what arrived, marked ``incomplete``.
        """
        out = ReplyStream()
        out._events = stream(self._turn(message, overrides, streaming=True, slot=out._slot))
        return out

    def retry_stream(self, **overrides: Any) -> ReplyStream:
        """``retry()``, streamed."""
        out = ReplyStream()
        out._events = stream(self._turn(None, overrides, regenerate=True, streaming=True, slot=out._slot))
        return out

    def add_tool_result(self, tool_call_id: str, content: Any) -> StoredMessage:
        """Store a tool's result for one of the last reply's tool calls; the next turn sends it.

        ``content`` is a string, content parts, or anything JSON can write (sent as JSON text).
        """
        return self.conversation.append(tool_message(tool_call_id, content))

    def close(self, timeout: float = TITLE_TIMEOUT) -> None:
        """Wait up to ``timeout`` seconds for a title still being written (``title_model``); the chat stays usable.

        The client is yours: it is not closed.
        """
        pending, self._titles = self._titles, []
        for thread in pending:
            thread.join(timeout)

    def __enter__(self) -> Chat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_title(self, reply: StoredMessage) -> None:
        # A daemon thread: a program that never calls close() is not held up at exit by a slow server.
        thread = threading.Thread(target=self._write_title, args=(reply.text,), daemon=True,
                                  name=f"chatkeep-title:{self.conversation.id}")
        self._titles.append(thread)
        thread.start()

    def _write_title(self, reply_text: str) -> None:
        try:
            prompt = wants_title(self.conversation.record)
            if prompt is None or self.title_model is None:
                return
            completion = self.client.chat.completions.create(**title_request(self.title_model, prompt, reply_text))
            title = title_text(completion)
            if title:
                self.conversation.store.suggest_title(self.conversation.id, title)
        except Exception as exc:
            report(self.conversation.id, exc, client_secrets(self.client))
