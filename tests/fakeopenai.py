"""Loopback OpenAI-compatible HTTP server for tests.

`FakeOpenAI` serves real HTTP/1.1 on 127.0.0.1 (ephemeral port) from a
background thread, so the real `openai` SDK is exercised end to end without
monkeypatching. Replies are scripted per request with `server.script(...)`;
each reply answers a plain or a streamed request, depending on the request's
`"stream": true`.

Streams use `Transfer-Encoding: chunked` on a keep-alive connection: a
truncated chunked body is an unambiguous error for the client, whereas with
`Connection: close` an abrupt close would look like a normal end of stream.

Reply kinds, and what the real SDK (openai 3.54, httpx2 transport) does with
them, as observed by tests/test_fakeopenai.py:

- `text(...)`: a normal answer. Streamed: a role chunk, content chunks, a
  chunk with an empty delta and the `finish_reason`, an optional usage chunk,
  then `data: [DONE]`.
- `tool_calls([...])`: finish_reason "tool_calls"; streamed arguments are
  split into fragments, only the first delta of each index has id/type/name.
- `error(status)`: OpenAI-shaped error body. Retryable statuses (408, 409,
  429, >=500) carry `retry-after-ms: 1`, so the SDK retries at once; when the
  retries run out it raises `openai.RateLimitError` (429),
  `openai.InternalServerError` (>=500), `openai.BadRequestError` (400) etc.
- `drop_after(n)`: streamed: n chunks, then the socket is closed mid-body.
  Iterating raises `openai.APIConnectionError` (cause:
  `httpx2.RemoteProtocolError`, incomplete chunked read) after the first n
  chunks were yielded; it is not retried. Plain request: headers and half
  the body, then close; the SDK treats this as a connection failure, retries
  it (the retry consumes the next scripted reply) and finally raises
  `openai.APIConnectionError`.
- `malformed_sse(after)`: `after` good chunks, then `data: {not json`.
  Iterating raises `json.JSONDecodeError` (a `ValueError`, NOT an
  `openai.OpenAIError`). Plain request: same as `malformed_json()`.
- `malformed_json()`: 200 `application/json` with an invalid body: `create()`
  raises `json.JSONDecodeError`. Streamed: the body has no `data:` line, so the
  stream yields nothing and ends without error.
- `no_choices()`: `create()` returns a `ChatCompletion` with `choices == []`;
  streamed: chunks with `choices == []`, then [DONE].
- `html_200()`: 200 `text/html`: `create()` returns the HTML as a plain `str`
  (no exception: the SDK falls back to the body text for non-JSON types).
  Streamed: no `data:` lines, so the stream yields nothing.
- `json_for_stream()`: answers a plain `chat.completion` JSON even when
  `stream=true`; the SDK's stream finds no `data:` line and yields nothing,
  silently (no exception, no chunk).
- `end_without_done(content)`: streamed: chunks without finish_reason, then a
  clean end of body without [DONE]; the SDK yields the chunks and stops
  quietly. Plain request: a normal completion.
- `slow(seconds, reply)`: waits before answering; with the client's
  `timeout=` shorter, the SDK raises `openai.APITimeoutError` (after retries).

All waits (`latency`, `delay`, `chunk_delay`, `slow`) end early when the
server is closed, so a slow handler never blocks shutdown.

`POST /v1/responses` (the Responses API) takes the same scripted replies from
the same queue: `text(...)` becomes one assistant `message` item,
`tool_calls([...])` one `function_call` item per call (`id` is the `call_id`),
`response_items([...])` sends the given output items verbatim (a reasoning
item with `encrypted_content`, say), and `text(..., finish_reason="length")`
an `incomplete` response. Streamed, it sends named SSE events as the real API
does (`event: <type>` plus `data:`, no `[DONE]`): `response.created`,
`response.in_progress`, then per item `response.output_item.added`,
`response.content_part.added`, `response.output_text.delta`... or
`response.function_call_arguments.delta`..., `response.output_item.done`, and
finally `response.completed` (or `response.incomplete`) with usage.
`drop_after(n)` and `malformed_sse(n)` count these events; `end_without_done`
ends the body cleanly before the terminal event; `no_choices()` answers a
response with an empty `output`. Usage is in the Responses shape
(`input_tokens`...): pass `responses_usage(...)`, or a chat-shaped
`make_usage(...)`, which is converted.

`/v1/conversations` and its items, the stored responses `previous_response_id`
may name (unknown or expired: 404), and `conversation=` on `/v1/responses` are
served by `server.conversations` (tests/fakeconversations.py).
"""

from __future__ import annotations

import copy
import json
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest

from fakeconversations import FakeConversations

__all__ = [
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "drop_after",
    "end_without_done",
    "error",
    "html_200",
    "json_for_stream",
    "make_usage",
    "malformed_json",
    "malformed_sse",
    "no_choices",
    "openai_client",
    "openai_server",
    "response_items",
    "responses_usage",
    "slow",
    "text",
    "tool_calls",
]

SYSTEM_FINGERPRINT = "fp_fakeopenai"
DEFAULT_MODEL = "gpt-4o-mini"
MODELS = ("gpt-4o-mini", "gpt-4o")
_HTML = b"<!DOCTYPE html><html><head><title>Gateway</title></head><body>Upstream says hi</body></html>"
_BROKEN_JSON = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": ['


@dataclass
class RecordedRequest:
    """One HTTP request as the server received it.

    `headers` keys are lower-cased (HTTP header names are case-insensitive);
    `body` is the parsed JSON body, or None when empty or not JSON.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Reply:
    """A scripted answer; build it with the module-level constructors.

    `kind` selects the behaviour; the other fields are used by the kinds that
    need them (`count` is the chunk count of `drop_after`/`malformed_sse`).
    """

    kind: str
    content: str | None = None
    refusal: str | None = None
    calls: tuple[dict[str, str], ...] = ()
    model: str | None = None
    finish_reason: str | None = "stop"
    usage: dict[str, Any] | None = None
    chunk_size: int = 4
    chunk_delay: float = 0.0
    delay: float = 0.0
    status: int = 200
    message: str = ""
    code: str | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    count: int = 0
    items: tuple[dict[str, Any], ...] = ()


@dataclass
class SimulatedModel:
    """An open model behind the server, with its own tokenizer and context window.

    Its tokenizer is not tiktoken's: a token per `chars_per_token` characters of
    each message's role and text, plus `per_message` tokens of template per
    message and `priming` for the reply. It reports that count as
    `usage.prompt_tokens`, and refuses a request whose prompt (plus the reply's
    `max_tokens`, as vLLM and OpenAI count it) exceeds `window`, with the error
    `style` of OpenAI, llama.cpp or vLLM. `GET /props` (llama.cpp), `max_model_len`
    in `GET /v1/models` (vLLM) and `POST /tokenize` (both) tell its window and counts.
    """

    window: int = 2048
    style: str = "llamacpp"
    chars_per_token: float = 2.0
    per_message: int = 5
    priming: int = 3
    overflows: int = 0  # how many requests it refused

    def text_tokens(self, text: str) -> int:
        return int(-(-len(text) // self.chars_per_token)) if text else 0

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        total = self.priming
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            calls = json.dumps(message.get("tool_calls")) if message.get("tool_calls") else ""
            total += self.per_message + self.text_tokens(f"{message.get('role', '')} {content or ''}{calls}")
        return total

    def limit_reply(self, reply: Reply, body: dict[str, Any]) -> Reply:
        """A reply cut at the request's `max_tokens`, with finish_reason `length`, as a real model stops."""
        limit = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
        if limit and self.text_tokens(reply.content or "") > limit:
            return replace(reply, content=(reply.content or "")[: int(limit * self.chars_per_token)],
                           finish_reason="length")
        return reply

    def refusal(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """The error a real server sends for this request, or None when it fits."""
        prompt = self.prompt_tokens(body)
        reply = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
        asked = prompt + (reply if self.style != "llamacpp" else 0)
        if asked <= self.window:
            return None
        self.overflows += 1
        if self.style == "llamacpp":
            return 400, {"error": {"code": 400, "message": f"request ({prompt} tokens) exceeds the available context "
                                   f"size ({self.window} tokens)", "type": "exceed_context_size_error",
                                   "n_prompt_tokens": prompt, "n_ctx": self.window}}
        if self.style == "vllm":
            return 400, {"object": "error", "message": (
                f"This model's maximum context length is {self.window} tokens. However, you requested {asked} tokens "
                f"({prompt} in the messages, {reply} in the completion). Please reduce the length of the messages or "
                "completion."), "type": "BadRequestError", "param": None, "code": 400}
        return 400, {"error": {"message": f"This model's maximum context length is {self.window} tokens. However, "
                               f"your messages resulted in {prompt} tokens. Please reduce the length of the messages.",
                               "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}


# --- reply constructors -----------------------------------------------------


def make_usage(
    prompt: int, completion: int, cached: int | None = None, reasoning: int | None = None
) -> dict[str, Any]:
    """Build a `usage` object; the details objects appear only when given."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def text(
    content: str,
    *,
    model: str | None = None,
    finish_reason: str | None = "stop",
    usage: dict[str, Any] | None = None,
    chunk_size: int = 4,
    chunk_delay: float = 0.0,
    delay: float = 0.0,
    refusal: str | None = None,
) -> Reply:
    """An assistant text answer (or a refusal when `refusal` is given).

    `model` defaults to the request's model; `usage` defaults to an estimate
    from the prompt and reply lengths. Streams split the text into deltas of
    `chunk_size` characters, `chunk_delay` seconds apart.
    """
    return Reply(
        "text", content=content, refusal=refusal, model=model, finish_reason=finish_reason,
        usage=usage, chunk_size=chunk_size, chunk_delay=chunk_delay, delay=delay,
    )


def echo(*, chunk_size: int = 4, chunk_delay: float = 0.0, delay: float = 0.0) -> Reply:
    """An answer that names the prompt it answers: ``re: <the request's last user text>``.

    Several chats on one conversation at once can then be checked reply by reply.
    """
    return Reply("echo", content="re: ", chunk_size=chunk_size, chunk_delay=chunk_delay, delay=delay)


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message (chat) or user input item (Responses) of a request body."""
    entries = body.get("messages") or body.get("input") or []
    if isinstance(entries, str):
        return entries
    for entry in reversed(entries):
        if isinstance(entry, dict) and entry.get("role") == "user":
            content = entry.get("content")
            if isinstance(content, str):
                return content
            return "".join(str(p.get("text", "")) for p in content or () if isinstance(p, dict))
    return ""


def tool_calls(
    calls: list[dict[str, str]],
    *,
    content: str | None = None,
    model: str | None = None,
    finish_reason: str | None = "tool_calls",
    usage: dict[str, Any] | None = None,
    chunk_size: int = 4,
    chunk_delay: float = 0.0,
    delay: float = 0.0,
) -> Reply:
    """Function tool calls, each `{"id": ..., "name": ..., "arguments": "<json>"}`.

    Several calls are parallel tool calls (indexes 0, 1, ...). Streamed
    arguments are split into `chunk_size`-character fragments.
    """
    for call in calls:
        missing = {"id", "name", "arguments"} - call.keys()
        if missing:
            raise ValueError(f"tool call {call!r} lacks {sorted(missing)}")
    return Reply(
        "tool_calls", content=content, calls=tuple(dict(c) for c in calls), model=model,
        finish_reason=finish_reason, usage=usage, chunk_size=chunk_size,
        chunk_delay=chunk_delay, delay=delay,
    )


def error(
    status: int,
    message: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    code: str | None = None,
) -> Reply:
    """An HTTP error with an OpenAI-shaped body `{"error": {...}}`.

    `body` replaces the JSON body verbatim; `headers` are added to (and
    override) the defaults, which include `retry-after-ms: 1` for statuses the
    SDK retries, so retries cost ~1 ms instead of the SDK's 0.5 s+ backoff.
    """
    return Reply(
        "error", status=status, message=message or _default_error_message(status),
        code=code, headers=dict(headers or {}), body=body,
    )


def drop_after(n_chunks: int, content: str = "This reply is cut short by a dropped connection.") -> Reply:
    """Streamed: send `n_chunks` SSE chunks (the first is the role chunk) of a
    text reply, then close the socket mid-body (no finish_reason, no [DONE]).
    Plain: send headers and half of the JSON body, then close."""
    return Reply("drop", content=content, count=n_chunks)


def drop_mid_call(n_chunks: int = 3) -> Reply:
    """Streamed: a tool call's first `n_chunks` chunks (its arguments half-written), then the socket closes.
    Plain: like `drop_after`."""
    call = {"id": "call_cut", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}
    return Reply("drop", calls=(call,), count=n_chunks, chunk_size=6)


def filtered() -> Reply:
    """A reply stopped by the content filter: `content: null`, no tool calls, finish_reason `content_filter`."""
    return Reply("text", content=None, finish_reason="content_filter")


def malformed_sse(after: int = 1) -> Reply:
    """Streamed: `after` good chunks, then `data: {not json`. Plain: like
    `malformed_json()`."""
    return Reply("malformed_sse", content="This stream turns into garbage.", count=after)


def malformed_json() -> Reply:
    """A 200 `application/json` reply whose body is not valid JSON."""
    return Reply("malformed_json")


def no_choices() -> Reply:
    """A 200 completion with `"choices": []` (streamed: chunks with no choices)."""
    return Reply("no_choices", content="")


def html_200() -> Reply:
    """A 200 `text/html` page, as a misconfigured proxy or gateway would send."""
    return Reply("html")


def json_for_stream(content: str = "ok") -> Reply:
    """A plain `chat.completion` JSON reply, even when `stream=true` was asked."""
    return Reply("json_for_stream", content=content)


def end_without_done(content: str) -> Reply:
    """Streamed: chunks without finish_reason, then a clean end without [DONE]."""
    return Reply("end_without_done", content=content, finish_reason=None)


def response_items(
    items: list[dict[str, Any]],
    *,
    model: str | None = None,
    usage: dict[str, Any] | None = None,
    chunk_size: int = 4,
    chunk_delay: float = 0.0,
    delay: float = 0.0,
) -> Reply:
    """Responses API only: these output items, verbatim (streamed: each added, then done)."""
    return Reply(
        "items", items=tuple(copy.deepcopy(dict(i)) for i in items), model=model, usage=usage,
        chunk_size=chunk_size, chunk_delay=chunk_delay, delay=delay,
    )


def responses_usage(
    input_tokens: int, output_tokens: int, cached: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    """A Responses API `usage` object."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def slow(seconds: float, reply: Reply | None = None) -> Reply:
    """`reply` (default `text("ok")`) answered after `seconds` more delay."""
    base = reply if reply is not None else text("ok")
    return replace(base, delay=base.delay + seconds)


def _default_error_message(status: int) -> str:
    messages = {
        400: "Invalid request.",
        401: "Incorrect API key provided: test-key.",
        403: "You are not allowed to access this resource.",
        404: "The model does not exist or you do not have access to it.",
        429: "Rate limit reached for requests.",
        500: "The server had an error while processing your request. Sorry about that!",
        503: "The engine is currently overloaded, please try again later.",
    }
    return messages.get(status, f"Error {status}.")


# --- payload builders (pure) ------------------------------------------------


def _error_payload(status: int, message: str, code: str | None) -> dict[str, Any]:
    kind, default_code = "invalid_request_error", None
    if status == 401:
        default_code = "invalid_api_key"
    elif status == 429:
        kind, default_code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind = "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code or default_code}}


def _retry_headers(status: int) -> dict[str, str]:
    if status in (408, 409, 429) or status >= 500:
        return {"retry-after-ms": "1", "retry-after": "0"}
    return {}


def _new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def _model(reply: Reply, body: dict[str, Any]) -> str:
    requested = body.get("model")
    return reply.model or (requested if isinstance(requested, str) else DEFAULT_MODEL)


def _estimate_tokens(chars: str) -> int:
    # ~4 characters per token is the usual rule of thumb for English text.
    return max(1, (len(chars) + 3) // 4)


def _usage(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    if reply.usage is not None:
        return dict(reply.usage)
    model = body.get("__model__")
    if isinstance(model, SimulatedModel):
        said = (reply.content or "") + (reply.refusal or "")
        return make_usage(model.prompt_tokens(body), max(1, model.text_tokens(said)))
    said = (reply.content or "") + (reply.refusal or "")
    said += "".join(c["name"] + c["arguments"] for c in reply.calls)
    return make_usage(_estimate_tokens(json.dumps(body.get("messages", []))), _estimate_tokens(said))


def _message(reply: Reply) -> dict[str, Any]:
    # A refusal comes with a null content in the real API.
    content = reply.content if reply.content or reply.refusal is None else None
    message: dict[str, Any] = {
        "role": "assistant", "content": content, "refusal": reply.refusal, "annotations": [],
    }
    if reply.calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in reply.calls
        ]
    return message


def _completion(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    choice = {"index": 0, "message": _message(reply), "logprobs": None, "finish_reason": reply.finish_reason}
    return {
        "id": _new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model(reply, body),
        "choices": [] if reply.kind == "no_choices" else [choice],
        "usage": _usage(reply, body),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _pieces(chars: str, size: int) -> list[str]:
    size = max(1, size)
    return [chars[i : i + size] for i in range(0, len(chars), size)]


def _tool_call_deltas(calls: tuple[dict[str, str], ...], size: int) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        head = {"index": index, "id": call["id"], "type": "function",
                "function": {"name": call["name"], "arguments": ""}}
        deltas.append({"tool_calls": [head]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in _pieces(call["arguments"], size)
        ]
    return deltas


def _reply_deltas(reply: Reply) -> list[dict[str, Any]]:
    first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    deltas = [first]
    if reply.refusal is not None:
        first["content"] = None
        deltas += [{"refusal": piece} for piece in _pieces(reply.refusal, reply.chunk_size)]
    deltas += [{"content": piece} for piece in _pieces(reply.content or "", reply.chunk_size)]
    calls = _tool_call_deltas(reply.calls, reply.chunk_size)
    if calls and not reply.content:
        # The real API announces the first call in the role chunk itself.
        first["content"] = None
        first.update(calls.pop(0))
    return deltas + calls


@dataclass
class _Chunker:
    """Stamps deltas with the fields every `chat.completion.chunk` repeats."""

    id: str
    created: int
    model: str
    include_usage: bool

    def chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
        choices: list[dict[str, Any]] = [] if delta is None else [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        ]
        out: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT, "choices": choices,
        }
        if self.include_usage:
            out["usage"] = None
        return out

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        out = self.chunk(None)
        out["usage"] = usage
        return out


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _stream_plan(reply: Reply, body: dict[str, Any]) -> tuple[list[bytes], bool]:
    """The SSE events to send for a streamed request, and whether to then
    drop the connection instead of ending the body cleanly."""
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    chunker = _Chunker(_new_id(), int(time.time()), _model(reply, body), include_usage)
    if reply.kind == "no_choices":
        chunks = [chunker.chunk(None), chunker.chunk(None)]
    else:
        chunks = [chunker.chunk(delta) for delta in _reply_deltas(reply)]
    if reply.kind in ("drop", "malformed_sse"):
        events = [_sse(c) for c in chunks[: reply.count]]
        if reply.kind == "malformed_sse":
            events.append(b"data: {not json\n\n")
        return events, reply.kind == "drop"
    if reply.kind in ("text", "tool_calls"):
        chunks.append(chunker.chunk({}, reply.finish_reason))
    if include_usage and reply.kind != "end_without_done":
        chunks.append(chunker.usage_chunk(_usage(reply, body)))
    events = [_sse(c) for c in chunks]
    if reply.kind != "end_without_done":
        events.append(b"data: [DONE]\n\n")
    return events, False


# --- Responses API payloads (pure) ---------------------------------------------


def _hex_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex * 2


def _responses_usage(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    usage = reply.usage
    if usage is not None and "input_tokens" in usage:
        return dict(usage)
    if usage is not None:  # chat-shaped, as make_usage() builds it
        return responses_usage(
            usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
            (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
            (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0),
        )
    said = (reply.content or "") + (reply.refusal or "") + "".join(c["name"] + c["arguments"] for c in reply.calls)
    said += json.dumps(list(reply.items)) if reply.items else ""
    return responses_usage(_estimate_tokens(json.dumps(body.get("input", ""))), _estimate_tokens(said))


def _output_items(reply: Reply, status: str) -> list[dict[str, Any]]:
    if reply.kind == "items":
        return [copy.deepcopy(item) for item in reply.items]
    if reply.kind == "no_choices":
        return []
    items: list[dict[str, Any]] = []
    if reply.content or reply.refusal is not None or not reply.calls:
        part = (
            {"type": "refusal", "refusal": reply.refusal} if reply.refusal is not None
            else {"type": "output_text", "annotations": [], "logprobs": [], "text": reply.content or ""}
        )
        items.append({"id": _hex_id("msg_"), "type": "message", "status": status, "content": [part],
                      "role": "assistant"})
    items += [
        {"id": _hex_id("fc_"), "type": "function_call", "status": "completed", "arguments": c["arguments"],
         "call_id": c["id"], "name": c["name"]}
        for c in reply.calls
    ]
    return items


def _response(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    """A whole `response` object, as the plain endpoint returns it and `response.completed` carries it."""
    complete = reply.finish_reason != "length"
    output = _output_items(reply, "completed" if complete else "incomplete")
    now = int(time.time())
    payload: dict[str, Any] = {
        "id": _hex_id("resp_"), "object": "response", "created_at": now,
        "status": "completed" if complete else "incomplete", "background": False,
        "completed_at": now if complete else None, "error": None,
        "incomplete_details": None if complete else {"reason": "max_output_tokens"},
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "model": _model(reply, body), "output": output, "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
        "store": body.get("store", True), "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []), "top_p": 1.0,
        "truncation": "disabled", "usage": _responses_usage(reply, body), "user": None, "metadata": {},
    }
    conversations = body.get("__conversations__")
    if isinstance(conversations, FakeConversations) and reply.kind in ("text", "tool_calls", "items"):
        conversations.record(body, payload)  # stored for previous_response_id, added to its conversation
    return payload


def _part_events(item: dict[str, Any], index: int, size: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    where = {"item_id": item.get("id", ""), "output_index": index}
    for part_index, part in enumerate(item.get("content") or ()):
        at = {**where, "content_index": part_index}
        kind = part.get("type")
        if kind not in ("output_text", "refusal"):
            continue
        key = "text" if kind == "output_text" else "refusal"
        name = "output_text" if kind == "output_text" else "refusal"
        extra = {"logprobs": []} if kind == "output_text" else {}
        events.append({"type": "response.content_part.added", **at, "part": {**part, key: ""}})
        events += [{"type": f"response.{name}.delta", **at, "delta": piece, **extra}
                   for piece in _pieces(part.get(key) or "", size)]
        events.append({"type": f"response.{name}.done", **at, key: part.get(key) or "", **extra})
        events.append({"type": "response.content_part.done", **at, "part": part})
    return events


def _item_events(item: dict[str, Any], index: int, size: int) -> list[dict[str, Any]]:
    started = {**item, "status": "in_progress"} if "status" in item else dict(item)
    if item.get("type") == "message":
        started["content"] = []
    elif item.get("type") == "function_call":
        started["arguments"] = ""
    events: list[dict[str, Any]] = [{"type": "response.output_item.added", "output_index": index, "item": started}]
    if item.get("type") == "message":
        events += _part_events(item, index, size)
    elif item.get("type") == "function_call":
        where = {"item_id": item.get("id", ""), "output_index": index}
        events += [{"type": "response.function_call_arguments.delta", **where, "delta": piece}
                   for piece in _pieces(item.get("arguments") or "", size)]
        events.append({"type": "response.function_call_arguments.done", **where,
                       "arguments": item.get("arguments") or "", "name": item.get("name")})
    events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    return events


def _named_sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    return b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n"


def _responses_stream_plan(reply: Reply, body: dict[str, Any]) -> tuple[list[bytes], bool]:
    """The named SSE events for a streamed `/v1/responses` request, and whether to drop after them."""
    final = _response(reply, body)
    start = {**final, "status": "in_progress", "output": [], "usage": None, "completed_at": None,
             "incomplete_details": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start}, {"type": "response.in_progress", "response": start},
    ]
    for index, item in enumerate(final["output"]):
        events += _item_events(item, index, reply.chunk_size)
    if reply.kind != "end_without_done":
        events.append({"type": f"response.{'completed' if final['status'] == 'completed' else 'incomplete'}",
                       "response": final})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    if reply.kind in ("drop", "malformed_sse"):
        sent = [_named_sse(e) for e in events[: reply.count]]
        if reply.kind == "malformed_sse":
            sent.append(b"event: response.output_text.delta\ndata: {not json\n\n")
        return sent, reply.kind == "drop"
    return [_named_sse(e) for e in events], False


def _models_payload(model: SimulatedModel | None = None) -> dict[str, Any]:
    extra = {"max_model_len": model.window} if model is not None else {}
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system", **extra}
                 for m in MODELS],
    }


def _tokenized(model: SimulatedModel, body: dict[str, Any]) -> dict[str, Any]:
    """`POST /tokenize` as llama.cpp (`content`) and vLLM (`prompt` or `messages`) answer it."""
    if "messages" in body:
        count = model.prompt_tokens(body)
    else:
        count = model.text_tokens(str(body.get("content", body.get("prompt", ""))))
    return {"tokens": list(range(count)), "count": count, "max_model_len": model.window}


# --- HTTP plumbing ------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-reply (timeouts, abandoned streams) is routine
        # here; only unexpected failures deserve a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked replies need 1.1
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Without this, a small write following another one waits for the
        # peer's delayed ACK: ~40 ms per call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._track(self.connection)

    def finish(self) -> None:
        self.server.fake._untrack(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keeps pytest output clean; `requests` is the log

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        fake = self.server.fake
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake._record(RecordedRequest(self.command, self.path, headers, body))
        path = urlsplit(self.path).path.rstrip("/")
        try:
            if not fake._pause(fake.latency):
                self._abort()
            elif self.command == "POST" and path == "/v1/chat/completions":
                self._chat(fake._next_reply(), body if isinstance(body, dict) else {})
            elif self.command == "POST" and path == "/v1/responses":
                refused = fake.conversations.refusal(body if isinstance(body, dict) else {})
                if refused is not None:  # before a scripted reply is taken: the retry gets it
                    self._send_json(*refused)
                else:
                    self._chat(fake._next_reply(), body if isinstance(body, dict) else {}, responses=True)
            elif (answer := fake.conversations.route(self.command, path, urlsplit(self.path).query, body)) is not None:
                self._send_json(*answer)
            elif self.command == "GET" and path == "/v1/models":
                self._send_json(200, _models_payload(fake.model))
            elif fake.model is not None and self.command == "GET" and path in ("/props", "/v1/props"):
                self._send_json(200, {"default_generation_settings": {"n_ctx": fake.model.window}, "total_slots": 1})
            elif fake.model is not None and self.command == "POST" and path in ("/tokenize", "/v1/tokenize"):
                self._send_json(200, _tokenized(fake.model, body if isinstance(body, dict) else {}))
            else:
                message = f"Invalid URL ({self.command} {path})"
                self._send_json(404, _error_payload(404, message, None))
        except OSError:
            # The client went away (timeout, abandoned stream): nobody to answer.
            self.close_connection = True

    def _read_body(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raw = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(parts)

    def _chat(self, reply: Reply, body: dict[str, Any], *, responses: bool = False) -> None:
        """Answer a chat completions request, or (`responses`) a Responses API one."""
        streamed = body.get("stream") is True
        model = self.server.fake.model
        if model is not None and not responses:
            refused = model.refusal(body)
            if refused is not None:
                self._send_json(*refused)
                return
            body = {**body, "__model__": model}
        if responses:
            body = {**body, "__conversations__": self.server.fake.conversations}
        if reply.kind == "echo":
            reply = replace(reply, kind="text", content=f"{reply.content}{last_user_text(body)}")
        if model is not None and reply.kind == "text" and reply.content:
            reply = model.limit_reply(reply, body)
        if not self.server.fake._pause(reply.delay):
            self._abort()
        elif reply.kind == "error":
            self._send_error_reply(reply)
        elif reply.kind == "html":
            self._send_body(200, _HTML, "text/html; charset=utf-8")
        elif reply.kind == "malformed_json" or (reply.kind == "malformed_sse" and not streamed):
            self._send_body(200, _BROKEN_JSON, "application/json")
        elif not streamed or reply.kind == "json_for_stream":
            self._send_plain(reply, body, responses)
        else:
            self._send_stream(reply, body, responses)

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
        self.end_headers()

    def _send_body(self, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        headers = {"content-type": content_type, **(extra or {}), "content-length": str(len(data))}
        self._send_head(status, headers)
        self.wfile.write(data)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send_body(status, json.dumps(payload).encode(), "application/json")

    def _send_error_reply(self, reply: Reply) -> None:
        extra = {**_retry_headers(reply.status), **{k.lower(): v for k, v in (reply.headers or {}).items()}}
        content_type = extra.pop("content-type", "application/json")
        if reply.body is not None:
            data = reply.body.encode()
        else:
            data = json.dumps(_error_payload(reply.status, reply.message, reply.code)).encode()
        self._send_body(reply.status, data, content_type, extra)

    def _send_plain(self, reply: Reply, body: dict[str, Any], responses: bool = False) -> None:
        data = json.dumps(_response(reply, body) if responses else _completion(reply, body)).encode()
        if reply.kind != "drop":
            self._send_body(200, data, "application/json")
            return
        self._send_head(200, {"content-type": "application/json", "content-length": str(len(data))})
        self.wfile.write(data[: len(data) // 2])
        self._abort()

    def _send_stream(self, reply: Reply, body: dict[str, Any], responses: bool = False) -> None:
        events, drop = _responses_stream_plan(reply, body) if responses else _stream_plan(reply, body)
        headers = {"content-type": "text/event-stream; charset=utf-8", "transfer-encoding": "chunked",
                   "cache-control": "no-cache"}
        self._send_head(200, headers)
        for i, event in enumerate(events):
            if i and not self.server.fake._pause(reply.chunk_delay):
                drop = True
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()  # one event per write: the client sees each as it happens
        if drop:
            self._abort()
        else:
            self.wfile.write(b"0\r\n\r\n")

    def _abort(self) -> None:
        # A FIN (not RST) so the client still reads what was already sent.
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# --- the server -------------------------------------------------------------


class FakeOpenAI:
    """Context manager: `with FakeOpenAI() as server:` starts it, exit stops it.

    `script()` queues replies consumed one per chat or responses request, in order; when
    the queue is empty `default` answers. `latency` delays every request.
    """

    def __init__(self, *, default: Reply | None = None, latency: float = 0.0,
                 model: SimulatedModel | None = None) -> None:
        self.default: Reply = default if default is not None else text("ok")
        self.latency: float = latency
        #: An open model's tokenizer and window, for chat requests (None: count loosely, refuse nothing).
        self.model: SimulatedModel | None = model
        #: The Conversations API's state and the stored responses (tests/fakeconversations.py).
        self.conversations = FakeConversations()
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._clients: list[openai.OpenAI] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url = ""

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, the SDK's `base_url` for this server."""
        if not self._base_url:
            raise RuntimeError("FakeOpenAI is not started; use `with FakeOpenAI() as server:`")
        return self._base_url

    def start(self) -> FakeOpenAI:
        """Bind an ephemeral port and serve from a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        port = self._httpd.server_address[1]
        self._base_url = f"http://127.0.0.1:{port}/v1"
        # A short poll interval keeps close() (and so each test) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
            name=f"fakeopenai:{port}", daemon=True,
        )
        self._thread.start()
        return self

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving: interrupt pending waits, close clients and connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        for client in self._clients:
            client.close()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # Wakes handler threads blocked reading an idle keep-alive connection.
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def script(self, *replies: Reply) -> None:
        """Queue replies; each chat request consumes the next one, in order."""
        with self._lock:
            self._queue.extend(replies)

    def client(self, **kw: Any) -> openai.OpenAI:
        """A real `openai.OpenAI` pointed at this server (closed by `close()`)."""
        kw.setdefault("api_key", "test-key")
        kw.setdefault("max_retries", 2)
        client = openai.OpenAI(base_url=self.base_url, **kw)
        self._clients.append(client)
        return client

    def async_client(self, **kw: Any) -> openai.AsyncOpenAI:
        """A real `openai.AsyncOpenAI` pointed at this server; close it in its
        own event loop (e.g. `async with server.async_client() as client:`)."""
        kw.setdefault("api_key", "test-key")
        kw.setdefault("max_retries", 2)
        return openai.AsyncOpenAI(base_url=self.base_url, **kw)

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _pause(self, seconds: float) -> bool:
        """Sleep unless the server is closing; False means: stop answering."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)


# --- pytest fixtures ----------------------------------------------------------


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    """A started `FakeOpenAI`, closed after the test."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def openai_client(openai_server: FakeOpenAI) -> openai.OpenAI:
    """A sync `openai.OpenAI` bound to `openai_server` (max_retries=2)."""
    return openai_server.client()
