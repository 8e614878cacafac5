"""One chat turn's logic, without I/O: the request, the reply, the stream fold.

The sync and async chats are thin shells around these functions; they differ
only where they wait. Nothing here imports the ``openai`` SDK: completions and
chunks are read by attribute, so any object of the SDK's shape works.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import PendingToolCalls, ResponseError
from ..messages import MessageDict, message_text
from ..redact import redact
from ..store.base import MessageStatus, StoredMessage

__all__ = [
    "ReplyAccumulator",
    "Reply",
    "ReplyRecord",
    "build_request",
    "check_tool_results",
    "pending_tool_calls",
    "describe_error",
    "empty_stream_error",
    "ms_since",
    "tool_message",
    "unfinished_stream_error",
    "reply_from_completion",
]

# Keys of a returned assistant message that are sent back on the next turn;
# anything else the server adds (annotations, reasoning_content, ...) is kept in
# the message's metadata, because some servers refuse it as input.
_SENDABLE = ("role", "content", "refusal", "tool_calls", "function_call", "audio", "name")
_FINISHED_STATUS: MessageStatus = "complete"


@dataclass
class ReplyRecord:
    """What to store for one assistant reply."""

    message: MessageDict
    model: str | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    status: MessageStatus = "complete"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A finished turn's reply: ``str(reply)`` is its text."""

    message: StoredMessage
    text: str
    model: str | None
    usage: dict[str, Any] | None
    finish_reason: str | None

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls the model asked for (empty when it answered in text)."""
        return list(self.message.message.get("tool_calls") or [])

    @property
    def status(self) -> str:
        return self.message.status

    @property
    def branched(self) -> bool:
        """True when the conversation moved on during the turn, so the reply waits on a branch of its own.

        It is still saved under the message it answers; ``conversation.branches()``
        lists it and ``conversation.set_head(reply.message.id)`` continues from it.
        """
        return self.message.branched

    def __str__(self) -> str:
        return self.text


def build_request(
    model: str, messages: Sequence[MessageDict], options: Mapping[str, Any], *, stream: bool
) -> dict[str, Any]:
    """The keyword arguments for ``chat.completions.create``.

    Streams ask for a final usage chunk unless the caller set ``stream_options``.
    """
    request: dict[str, Any] = {"model": model, **options, "messages": list(messages)}
    if stream:
        request["stream"] = True
        request.setdefault("stream_options", {"include_usage": True})
    else:
        request.pop("stream", None)
    return request


def pending_tool_calls(messages: Sequence[MessageDict]) -> list[str]:
    """Ids of the newest assistant message's tool calls that have no tool result after it.

    Reads back from the end only as far as that assistant message, so the cost
    does not grow with the conversation.
    """
    answered: set[Any] = set()
    for message in reversed(messages):
        role = message.get("role")
        if role == "tool":
            answered.add(message.get("tool_call_id"))
            continue
        if role == "assistant":
            calls = [c.get("id") for c in message.get("tool_calls") or () if isinstance(c, Mapping)]
            return [str(c) for c in calls if c not in answered]
        return []
    return []


def check_tool_results(messages: Sequence[MessageDict], new: MessageDict | None = None) -> None:
    """Raise ``PendingToolCalls`` when sending ``messages`` (and ``new``) would leave a tool call unanswered."""
    pending = pending_tool_calls(messages)
    if new is not None and new.get("role") == "tool" and new.get("tool_call_id") in pending:
        pending.remove(new["tool_call_id"])
    if pending:
        raise PendingToolCalls(pending)


def _dump(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_unset=True, mode="json", warnings=False)  # a parsed field warns
    return value


def _split_message(raw: Mapping[str, Any]) -> tuple[MessageDict, dict[str, Any]]:
    """Separate the sendable message from the extras the server added."""
    message: MessageDict = {"role": raw.get("role") or "assistant", "content": raw.get("content")}
    for key in _SENDABLE[2:]:
        if raw.get(key) is not None and raw.get(key) != []:
            message[key] = raw[key]
    if isinstance(message.get("audio"), Mapping):
        message["audio"] = {"id": message["audio"].get("id")}  # the API takes the id back, not the bytes
    extras = {k: v for k, v in raw.items() if k not in _SENDABLE and v not in (None, [])}
    return said_nothing_as_empty(message), extras


def said_nothing_as_empty(message: MessageDict) -> MessageDict:
    """A reply that carries nothing (``content: null``, no calls: a ``content_filter`` stop) as empty text.

    The API refuses an assistant message with nothing in it, so the reply is
    kept (with its finish reason, which says why) as ``content: ""``.
    """
    if message.get("content") is None and not any(message.get(k) for k in _SENDABLE[2:]):
        message["content"] = ""
    return message


def _response_metadata(response: Any) -> dict[str, Any]:
    metadata = {}
    for key in ("id", "system_fingerprint", "service_tier"):
        value = getattr(response, key, None)
        if value is not None:
            metadata["response_id" if key == "id" else key] = value
    return metadata


def reply_from_completion(completion: Any) -> ReplyRecord:
    """Turn a ``ChatCompletion`` into what is stored; raise ``ResponseError`` when it is unusable."""
    if not hasattr(completion, "choices"):
        preview = str(completion)[:80].replace("\n", " ")
        raise ResponseError(f"the server's answer is not a chat completion: {preview!r}")
    if not completion.choices:
        raise ResponseError("the server's chat completion has no choices")
    choice = completion.choices[0]
    message, extras = _split_message(_dump(choice.message) or {})
    metadata = _response_metadata(completion)
    if extras:
        metadata["response_extra"] = extras
    return ReplyRecord(
        message=message,
        model=getattr(completion, "model", None),
        usage=_dump(getattr(completion, "usage", None)),
        finish_reason=choice.finish_reason,
        status=_FINISHED_STATUS if choice.finish_reason else "incomplete",
        metadata=metadata,
    )


class ReplyAccumulator:
    """Folds streamed chunks (text and tool-call deltas) into one assistant message.

    Unlike the SDK's own accumulator, only ``content``, ``refusal``, tool-call
    ``arguments`` and other text deltas concatenate: role, ids, types and names
    are set once, so servers that repeat them in every delta do not produce
    ``assistantassistant`` or a tool name written nine times.
    """

    def __init__(self) -> None:
        self.role: str | None = None
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, str] | None = None
        self.extras: dict[str, list[str]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.metadata: dict[str, Any] = {}
        self.chunks = 0

    @property
    def done(self) -> bool:
        """True once the server said why the reply ended (its ``finish_reason``)."""
        return self.finish_reason is not None

    @property
    def started(self) -> bool:
        return bool(self.role or self.content or self.refusal or self.tool_calls or self.function_call)

    def feed(self, chunk: Any) -> str | None:
        """Fold one chunk; return the text it adds, if any."""
        self.chunks += 1
        if self.model is None:
            self.model = getattr(chunk, "model", None)
            self.metadata.update(_response_metadata(chunk))
        if getattr(chunk, "usage", None) is not None:
            self.usage = _dump(chunk.usage)
        text = None
        for choice in getattr(chunk, "choices", None) or ():
            if getattr(choice, "index", 0) != 0:
                continue  # only the first choice is kept, as send() does
            text = self._fold_delta(choice.delta)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        return text

    def _fold_delta(self, delta: Any) -> str | None:
        if delta is None:
            return None
        if delta.role and not self.role:
            self.role = delta.role
        if delta.refusal:
            self.refusal.append(delta.refusal)
        for call in delta.tool_calls or ():
            self._fold_tool_call(call)
        if getattr(delta, "function_call", None) is not None:
            self._fold_function_call(delta.function_call)
        for key, value in (getattr(delta, "model_extra", None) or {}).items():
            if isinstance(value, str):
                self.extras.setdefault(key, []).append(value)
        if delta.content:
            self.content.append(delta.content)
            return str(delta.content)
        return None

    def _fold_tool_call(self, delta: Any) -> None:
        index = delta.index if delta.index is not None else len(self.tool_calls)
        call = self.tool_calls.setdefault(index, {"id": None, "type": None, "name": None, "arguments": []})
        for key in ("id", "type"):
            if getattr(delta, key, None) and not call[key]:
                call[key] = getattr(delta, key)
        function = getattr(delta, "function", None)
        if function is not None:
            if function.name and not call["name"]:
                call["name"] = function.name
            if function.arguments:
                call["arguments"].append(function.arguments)

    def _fold_function_call(self, delta: Any) -> None:
        if self.function_call is None:
            self.function_call = {"name": "", "arguments": ""}
        if delta.name and not self.function_call["name"]:
            self.function_call["name"] = delta.name
        if delta.arguments:
            self.function_call["arguments"] += delta.arguments

    def _calls(self) -> list[dict[str, Any]]:
        return [
            {
                "id": call["id"] or f"call_{index}",
                "type": call["type"] or "function",
                "function": {"name": call["name"] or "", "arguments": "".join(call["arguments"])},
            }
            for index, call in sorted(self.tool_calls.items())
        ]

    def message(self) -> MessageDict:
        """The assistant message folded so far, in the shape the API returns.

        Tool calls cut off mid-stream are left out: their arguments may be
        half-written, and a call kept in the message would need a result
        before the conversation could go on. ``finish`` keeps them in the
        metadata instead.
        """
        message: MessageDict = {"role": self.role or "assistant", "content": "".join(self.content) or None}
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        if self.tool_calls and self.done:
            message["tool_calls"] = self._calls()
        if self.function_call is not None and self.done:
            message["function_call"] = self.function_call
        return said_nothing_as_empty(message)

    def finish(self) -> ReplyRecord:
        """What to store: complete once a finish_reason arrived, otherwise incomplete (cut calls in metadata)."""
        metadata = dict(self.metadata)
        if self.extras:
            metadata["response_extra"] = {k: "".join(v) for k, v in self.extras.items()}
        if not self.done and (self.tool_calls or self.function_call is not None):
            metadata["unfinished_calls"] = self._calls() + ([self.function_call] if self.function_call else [])
        return ReplyRecord(
            message=self.message(),
            model=self.model,
            usage=self.usage,
            finish_reason=self.finish_reason,
            status=_FINISHED_STATUS if self.done else "incomplete",
            metadata=metadata,
        )


def tool_message(tool_call_id: str, content: Any) -> MessageDict:
    """A tool result message; ``content`` is text, content parts, or anything JSON can write."""
    if not isinstance(content, str) and not (
        isinstance(content, list) and all(isinstance(p, Mapping) and "type" in p for p in content)
    ):
        content = json.dumps(content, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": tool_call_id, "content": content}


def empty_stream_error(acc: ReplyAccumulator) -> ResponseError:
    """The error for a stream that ended without any part of a reply."""
    if acc.chunks == 0:
        return ResponseError(
            "the server's stream held no chunks (it may not support stream=true, or answered with something else)"
        )
    return ResponseError("the server's stream held no choices")


def unfinished_stream_error(message_id: str) -> ResponseError:
    """The error for a reply that ended without its finish_reason; the partial reply is saved."""
    return ResponseError(
        "the reply ended before the server said it was finished (no finish_reason); "
        "what arrived is saved as incomplete",
        message_id=message_id,
    )


def ms_since(started: float) -> float:
    """Milliseconds since ``time.perf_counter()`` read ``started``."""
    return (time.perf_counter() - started) * 1000


def describe_error(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """One line naming an exception, for a message's ``error`` field (never a secret: ``secrets`` are removed)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = redact(text, secrets)  # servers echo a rejected key back
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def reply_of(stored: StoredMessage) -> Reply:
    """The :class:`Reply` for a stored assistant message."""
    return Reply(
        message=stored,
        text=message_text({"content": stored.message.get("content")}) or stored.message.get("refusal") or "",
        model=stored.model,
        usage=stored.usage,
        finish_reason=stored.finish_reason,
    )
