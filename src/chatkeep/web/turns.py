"""Turns taken from the page: send, edit, regenerate, each streamed back as server-sent events.

A turn runs the library's own ``Chat`` (the same durability as everywhere:
the message saved before the call, a cut stream kept as ``incomplete``, a
failure leaving the message saved and marked unanswered) in a worker thread,
and hands its events to the page through a queue:

- ``conversation``: a new conversation was made for the message (its id and address);
- ``prompt``: the messages the turn saved before the reply (HTML), sent with the first text;
- ``delta``: text of the reply as it arrives;
- ``turn``: every message the turn left, as stored (HTML), once it is over;
- ``error``: one line saying what went wrong (the messages stay saved);
- ``end``: nothing more comes.

A Stop button, a closed page or the server shutting down sets the turn's
stop flag: it ends at the next piece of text, which keeps what arrived as an
incomplete reply. The API key is read from the server's environment and
never reaches the page.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ChatkeepError, MessageNotFound
from ..store.base import StoredMessage
from ..store.conversation import Conversation
from .messages import MessageView
from .views import turn_views

__all__ = ["ChatFactory", "MissingKey", "TurnJob", "Turns"]

log = logging.getLogger("chatkeep.web")

Emit = Callable[[str, Any], None]
Action = Literal["send", "new", "edit", "regenerate"]
#: Seconds between keep-alive comments: each is a write that finds out a page has gone.
PING_SECONDS = 1.0


class MissingKey(ChatkeepError):
    """No API key in the server's environment for api.openai.com."""

    def __init__(self) -> None:
        super().__init__("no API key: set OPENAI_API_KEY in the environment of chatkeep serve "
                         "(or --base-url for a server that needs none)")


class ChatFactory:
    """Makes the ``Chat`` for a conversation and model, with one SDK client for the whole server."""

    def __init__(self, *, base_url: str | None, context: str = "all", context_window: int | None = None) -> None:
        self.base_url = base_url
        self.context = context
        self.context_window = context_window
        self._client: Any = None
        self._chats: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def client(self) -> Any:
        """The ``openai.OpenAI`` client (the SDK is imported on the first turn, not before)."""
        with self._lock:
            if self._client is None:
                key = os.environ.get("OPENAI_API_KEY")
                if not key and self.base_url is None:
                    raise MissingKey()
                from openai import OpenAI

                self._client = OpenAI(api_key=key or "no-key", base_url=self.base_url)
            return self._client

    def chat(self, conversation: Conversation, model: str) -> Any:
        """The conversation's ``Chat`` for ``model``, kept between turns so a turn need not re-read the branch."""
        from .. import Chat, KeepAll, Summarize, TrimToBudget

        client = self.client()
        key = (conversation.id, model)
        with self._lock:
            chat = self._chats.pop(key, None)
            if chat is None:
                policy = {"all": KeepAll, "trim": TrimToBudget, "summarize": Summarize}[self.context]()
                chat = Chat(conversation, client, model=model, context=policy, context_window=self.context_window)
            self._chats[key] = chat
            while len(self._chats) > 64:
                self._chats.popitem(last=False)
            return chat

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()


@dataclass(frozen=True)
class TurnJob:
    """What the page asked for: ``action`` on a conversation (``target``: the message to edit or regenerate)."""

    action: Action
    conversation_id: str | None
    model: str
    text: str | None = None
    target: str | None = None


def _edited(original: Mapping[str, Any], text: str) -> dict[str, Any]:
    """The edited user message: the new text, with the original's images and files kept."""
    content = original.get("content")
    if not isinstance(content, list):
        return {"role": "user", "content": text}
    kept = [part for part in content if not (isinstance(part, Mapping) and part.get("type") == "text")]
    return {"role": "user", "content": [{"type": "text", "text": text}, *kept]}


def error_line(exc: BaseException) -> str:
    """One line for the page, keys redacted; a bug is logged on the server with its traceback."""
    from ..cli.errors import api_error_text, unexpected_text
    from ..redact import redact

    if isinstance(exc, ChatkeepError):
        return redact(str(exc))
    text = api_error_text(exc)
    if text is not None:
        return text
    line = redact(unexpected_text(exc))
    log.debug("unexpected error in a turn", exc_info=exc)
    print(f"chatkeep serve: {line}", file=sys.stderr)
    return line


class TurnRunner:
    """Carries out one job in the calling (worker) thread, emitting its events."""

    def __init__(self, store: Any, chats: ChatFactory, render: Callable[[list[MessageView]], str]) -> None:
        self.store = store
        self.chats = chats
        self.render = render

    def _target(self, conversation: Conversation, message_id: str | None, role: str) -> StoredMessage:
        message: StoredMessage = self.store.get_message(message_id or "")
        if message.conversation_id != conversation.id:
            raise MessageNotFound(str(message_id))
        if message.role != role:
            raise ChatkeepError(f"message {message.id} is a {message.role or message.kind} message, not a {role} one")
        return message

    def _html(self, conversation_id: str, anchor: str | None, tip: str | None) -> str:
        return self.render(turn_views(self.store, conversation_id, anchor, tip)) if tip else ""

    def run(self, job: TurnJob, emit: Emit, stop: threading.Event) -> None:
        progress = _Progress()
        try:
            if job.action == "new":
                progress.conversation = self.store.new_conversation(metadata={"model": job.model})
                emit("conversation", {"id": progress.conversation.id})
            else:
                progress.conversation = self.store.conversation(job.conversation_id)
            self._stream(progress, job, emit, stop)
        except Exception as exc:
            self._failed(progress, exc, emit)

    def _stream(self, progress: _Progress, job: TurnJob, emit: Emit, stop: threading.Event) -> None:
        conversation = progress.conversation
        assert conversation is not None
        record = conversation.record
        progress.anchor = record.head_id
        message: Any = job.text
        if job.action == "edit":
            target = self._target(conversation, job.target, "user")
            progress.anchor = target.parent_id
            chat = self.chats.chat(conversation, job.model)  # without a key nothing is changed
            edited = conversation.edit(target.id, _edited(target.message, job.text or ""))
            emit("prompt", {"html": self._html(conversation.id, progress.anchor, edited.id), "anchor": progress.anchor})
            message = None
        elif job.action == "regenerate":
            target = self._target(conversation, job.target, "assistant")
            progress.anchor = target.parent_id
            chat = self.chats.chat(conversation, job.model)
            if record.head_id != target.id:
                conversation.set_head(target.id, expect_head=record.head_id)
        else:
            try:
                chat = self.chats.chat(conversation, job.model)
            except MissingKey as exc:  # the message is kept all the same, marked unanswered
                stored = conversation.append({"role": "user", "content": job.text or ""})
                self.store.update_message(stored.id, status="error", error=str(exc))
                raise
        stream = chat.retry_stream() if job.action == "regenerate" else chat.stream(message)
        prompted = job.action == "edit"
        with stream:
            for delta in stream:
                if not prompted:
                    prompted = True
                    head = conversation.record.head_id
                    emit("prompt", {"html": self._html(conversation.id, progress.anchor, head),
                                    "anchor": progress.anchor})
                emit("delta", delta)
                if stop.is_set():
                    break  # leaving the with-block closes the stream: what arrived is saved as incomplete
        reply = stream.reply
        tip = reply.message.id if reply is not None else conversation.record.head_id
        emit("turn", {"html": self._html(conversation.id, progress.anchor, tip), "anchor": progress.anchor})

    def _failed(self, progress: _Progress, exc: BaseException, emit: Emit) -> None:
        line = error_line(exc)
        conversation = progress.conversation
        if conversation is not None:
            try:
                head = conversation.record.head_id
                emit("turn", {"html": self._html(conversation.id, progress.anchor, head), "anchor": progress.anchor})
            except Exception as shown:  # the error itself matters more than showing the state
                log.debug("cannot show the conversation after a failed turn", exc_info=shown)
        emit("error", {"message": line})


@dataclass
class _Progress:
    """How far a turn got: its conversation, and the message its new messages hang under."""

    conversation: Conversation | None = None
    anchor: str | None = None


class Turns:
    """The turns running now: each one's stop flag and thread, so Stop, a closed page and shutdown can end them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, tuple[str | None, threading.Event, threading.Thread]] = {}
        self._closing = False

    def stop(self, conversation_id: str) -> int:
        """Ask every turn in a conversation to stop (each keeps what arrived); return how many were asked."""
        with self._lock:
            found = [stop for cid, stop, _ in self._running.values() if cid == conversation_id]
        for stop in found:
            stop.set()
        return len(found)

    def stop_all(self, timeout: float = 30.0) -> None:
        """Stop every turn and wait for each to save what it has (server shutdown)."""
        with self._lock:
            self._closing = True
            running = list(self._running.values())
        for _, stop, _ in running:
            stop.set()
        for _, _, thread in running:
            thread.join(timeout)

    async def events(self, runner: TurnRunner, job: TurnJob) -> AsyncIterator[bytes]:
        """Run ``job`` in a worker thread and yield its events as server-sent events."""
        import asyncio

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        stop = threading.Event()
        key = id(stop)
        conversation = [job.conversation_id]

        def emit(event: str, data: Any) -> None:
            if event == "conversation":
                conversation[0] = data["id"]
                with self._lock:
                    if key in self._running:
                        self._running[key] = (data["id"], *self._running[key][1:])
            loop.call_soon_threadsafe(queue.put_nowait, (event, data))

        def work() -> None:
            try:
                runner.run(job, emit, stop)
            finally:
                with self._lock:
                    self._running.pop(key, None)
                loop.call_soon_threadsafe(queue.put_nowait, None)

        thread = threading.Thread(target=work, name="chatkeep-turn", daemon=True)
        with self._lock:
            if self._closing:
                raise ChatkeepError("the server is shutting down")
            self._running[key] = (job.conversation_id, stop, thread)
        thread.start()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=PING_SECONDS)
                except asyncio.TimeoutError:
                    yield b": ping\n\n"
                    continue
                if item is None:
                    break
                yield _sse(*item)
            yield _sse("end", {})
        finally:
            stop.set()  # the page went away (or the turn is over): end at the next text, keeping what arrived


def _sse(event: str, data: Any) -> bytes:
    # One line of JSON per event: JSON escapes every line break, so no payload can end an event early.
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
