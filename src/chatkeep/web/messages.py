"""What the page shows of stored messages: text, tool calls folded with their results, reasoning, attachments.

Pure functions over ``StoredMessage`` values (no store, no request), so the
templates only lay out what is decided here. Every piece of stored text
reaches the page either through :func:`.markdown.markdown_html` (sanitized)
or as a plain string that Jinja's autoescape escapes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from ..store.attachments import sniff_media_type
from ..store.base import StoredMessage
from .markdown import markdown_html, plain_html

__all__ = ["Attachment", "Call", "MessageView", "Part", "Siblings", "attachment_bytes", "message_views"]

#: Media types a page may show inline; anything else is offered as a download.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "audio/wav", "audio/mpeg", "audio/ogg",
                          "audio/flac"})
_TEXT_PARTS = ("text", "input_text", "output_text")


@dataclass(frozen=True)
class Attachment:
    """An image, audio clip or file a message carries: ``index`` is its content part (the route serves it)."""

    kind: str  # "image", "audio", "file", or "link" (a remote URL, never loaded)
    label: str
    index: int | None = None
    url: str | None = None


@dataclass(frozen=True)
class Call:
    """A tool call and, folded into it, its result when the result is on the page."""

    name: str
    call_id: str
    arguments: str
    result: str | None = None
    result_id: str | None = None


@dataclass(frozen=True)
class Part:
    """One block of a message's body, in order: rendered text, or a refusal."""

    html: Markup
    refusal: bool = False


@dataclass(frozen=True)
class Siblings:
    """Where a message stands among its parent's other answers or edits (a branch switcher)."""

    index: int
    count: int
    previous_id: str | None
    next_id: str | None


@dataclass
class MessageView:
    """One message as the page lays it out."""

    stored: StoredMessage
    role: str
    parts: list[Part] = field(default_factory=list)
    reasoning: list[Markup] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    other: str | None = None  # an item the page has no shape for, shown as its JSON
    siblings: Siblings | None = None
    folded: bool = False  # a tool result shown inside its call instead
    unanswered: str | None = None

    @property
    def id(self) -> str:
        return self.stored.id

    @property
    def usage(self) -> tuple[int | None, int | None]:
        """Prompt and completion tokens (either API's names)."""
        usage = self.stored.usage or {}
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        return (prompt if isinstance(prompt, int) else None, completion if isinstance(completion, int) else None)

    @property
    def editable(self) -> bool:
        return self.role == "user" and self.stored.kind == "chat"

    @property
    def regenerable(self) -> bool:
        return self.role == "assistant" and self.stored.parent_id is not None


def _pretty(arguments: str) -> str:
    """Tool arguments as indented JSON when they are JSON, else as they came."""
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return arguments


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in value)
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _image(index: int, url: Any) -> Attachment:
    text = str(url or "")
    if text.startswith("data:"):
        return Attachment("image", f"image {index + 1}", index=index)
    remote = text if text.startswith(("https://", "http://")) else None
    return Attachment("link", f"image at {text}" if text else "image", url=remote)


def _file(index: int, body: Mapping[str, Any]) -> Attachment:
    name = str(body.get("filename") or body.get("file_id") or "file")
    data = str(body.get("file_data") or "")
    return Attachment("file", name, index=index if data else None)


def _content(view: MessageView, content: Any) -> None:
    if isinstance(content, str):
        if content:
            view.parts.append(Part(markdown_html(content)))
        return
    for index, part in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            view.parts.append(Part(markdown_html(part["text"])))
        elif kind == "refusal":
            view.parts.append(Part(plain_html(str(part.get("refusal", ""))), refusal=True))
        elif kind == "image_url":
            view.attachments.append(_image(index, (part.get("image_url") or {}).get("url")))
        elif kind == "input_image":
            view.attachments.append(_image(index, part.get("image_url")))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            view.attachments.append(Attachment("audio", f"audio ({audio.get('format', '?')})", index=index))
        elif kind == "file":
            view.attachments.append(_file(index, part.get("file") or {}))
        elif kind == "input_file":
            view.attachments.append(_file(index, part))
        else:
            view.parts.append(Part(plain_html(f"[{kind or 'part'}]")))


def _chat_calls(message: Mapping[str, Any]) -> list[Call]:
    calls = []
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            body = call.get("function") or call.get("custom") or {}
            if isinstance(body, Mapping):
                calls.append(Call(str(body.get("name", "")), str(call.get("id", "")),
                                  _pretty(str(body.get("arguments", body.get("input", ""))))))
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping):
        calls.append(Call(str(legacy.get("name", "")), "", _pretty(str(legacy.get("arguments", "")))))
    return calls


def _chat_view(stored: StoredMessage) -> MessageView:
    message = stored.message
    view = MessageView(stored, stored.role)
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        view.reasoning.append(markdown_html(reasoning))
    if view.role in ("tool", "function"):
        view.parts.append(Part(plain_html(_text_of(message.get("content")))))
    else:
        _content(view, message.get("content"))
    if isinstance(message.get("refusal"), str):
        view.parts.append(Part(plain_html(message["refusal"]), refusal=True))
    audio = message.get("audio")
    if isinstance(audio, Mapping) and isinstance(audio.get("transcript"), str):
        view.parts.append(Part(markdown_html(audio["transcript"])))
    view.calls = _chat_calls(message)
    return view


def _item_view(stored: StoredMessage) -> MessageView:
    item = stored.message
    kind = item.get("type") or ("message" if "role" in item else "")
    view = MessageView(stored, stored.role or str(kind))
    if kind == "message":
        _content(view, item.get("content"))
    elif kind in ("function_call", "custom_tool_call"):
        view.role = "assistant"
        arguments = item.get("arguments", item.get("input", ""))
        view.calls.append(Call(str(item.get("name", "")), str(item.get("call_id", "")), _pretty(str(arguments))))
    elif kind in ("function_call_output", "custom_tool_call_output"):
        view.role = "tool"
        view.parts.append(Part(plain_html(_text_of(item.get("output")))))
    elif kind == "reasoning":
        view.role = "assistant"
        texts = [_text_of(s.get("text")) for s in item.get("summary") or () if isinstance(s, Mapping)]
        texts += [_text_of(c.get("text")) for c in item.get("content") or () if isinstance(c, Mapping)]
        view.reasoning += [markdown_html(t) for t in texts if t] or [plain_html("(reasoning kept encrypted)")]
    else:
        view.other = json.dumps(item, indent=2, ensure_ascii=False)
    return view


def _result_call_id(stored: StoredMessage) -> str | None:
    body = stored.message
    if stored.kind == "response_item":
        kind = body.get("type")
        ok = kind in ("function_call_output", "custom_tool_call_output")
        return str(body.get("call_id")) if ok and body.get("call_id") else None
    value = body.get("tool_call_id") if body.get("role") == "tool" else None
    return str(value) if value else None


def _fold(views: list[MessageView]) -> None:
    """Show each tool result inside its call when both are on the page; the result's own row is hidden."""
    calls: dict[str, tuple[MessageView, int]] = {}
    for view in views:
        for number, call in enumerate(view.calls):
            if call.call_id:
                calls[call.call_id] = (view, number)
        call_id = _result_call_id(view.stored)
        if call_id is not None and call_id in calls:
            owner, number = calls[call_id]
            call = owner.calls[number]
            owner.calls[number] = Call(call.name, call.call_id, call.arguments,
                                       result=_text_of(view.stored.message.get("content", view.stored.message.get("output"))),
                                       result_id=view.id)
            view.folded = True


def _unanswered(view: MessageView, is_last: bool) -> str | None:
    stored = view.stored
    if view.role != "user":
        return None
    if stored.status == "error":
        return f"unanswered: {stored.error}" if stored.error else "unanswered"
    return "no reply yet" if is_last else None


def message_views(messages: Sequence[StoredMessage], siblings: Mapping[str, Siblings] | None = None,
                  *, ends_branch: bool = True) -> list[MessageView]:
    """The views of a run of consecutive messages of one branch, oldest first.

    ``ends_branch``: the run's last message is the branch's tip (a user message
    there has no reply).
    """
    views = [_item_view(m) if m.kind == "response_item" else _chat_view(m) for m in messages]
    _fold(views)
    for number, view in enumerate(views):
        view.siblings = (siblings or {}).get(view.id)
        view.unanswered = _unanswered(view, ends_branch and number == len(views) - 1)
    return views


def sibling_positions(message: StoredMessage, family: Iterable[StoredMessage]) -> Siblings | None:
    """Where ``message`` stands among ``family`` (its parent's children), or None when it has no siblings."""
    ids = [m.id for m in family if m.kind != "summary"]
    if len(ids) < 2 or message.id not in ids:
        return None
    at = ids.index(message.id)
    return Siblings(at + 1, len(ids), ids[at - 1] if at > 0 else None, ids[at + 1] if at + 1 < len(ids) else None)


def attachment_bytes(message: Mapping[str, Any], index: int) -> tuple[bytes, str, str] | None:
    """The bytes of a message's content part ``index``, the media type they really are, and a file name."""
    content = message.get("content")
    if not isinstance(content, list) or not 0 <= index < len(content) or not isinstance(content[index], Mapping):
        return None
    part = content[index]
    kind = part.get("type")
    name = f"attachment-{index + 1}"
    if kind == "image_url":
        encoded = str((part.get("image_url") or {}).get("url") or "")
    elif kind == "input_image":
        encoded = str(part.get("image_url") or "")
    elif kind == "input_audio":
        encoded = str((part.get("input_audio") or {}).get("data") or "")
    elif kind in ("file", "input_file"):
        body = (part.get("file") or {}) if kind == "file" else part
        encoded = str(body.get("file_data") or "")
        name = str(body.get("filename") or name)
    else:
        return None
    if encoded.startswith("data:"):
        header, _, encoded = encoded.partition(",")
        if ";base64" not in header:
            return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data, sniff_media_type(data) or "application/octet-stream", name
