"""Responses API items as plain dicts: their text, their role, their chat-message view, windows.

A Responses API conversation is a list of items: messages, function calls and
their outputs, reasoning items, and kinds newer than this code. chatkeep stores
each item as it came (``kind="response_item"``) and reads what it needs from
the dict: unknown item types pass through untouched.

This module imports nothing from the rest of chatkeep, so the store and the
exporters can use it without depending on the client layer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = [
    "ITEM_KIND",
    "NoChatShape",
    "as_item",
    "branch_to_chat",
    "chat_to_items",
    "clean_window",
    "input_items",
    "is_call",
    "is_call_output",
    "item_role",
    "pending_calls",
    "response_item_text",
    "response_item_to_chat",
    "response_items_to_chat",
    "widen_window",
]

#: The ``kind`` a stored Responses API item has.
ITEM_KIND: Final = "response_item"

Item = dict[str, Any]

# Keys whose string values are an unknown item's searchable text; never
# ``encrypted_content``, ids or statuses.
_TEXT_KEYS = ("text", "refusal", "output", "arguments", "input", "query", "code", "summary", "content")


def as_item(item: Any) -> Item:
    """A detached plain-dict copy of an item given as a dict or an SDK (pydantic) object."""
    if hasattr(item, "model_dump") and not isinstance(item, Mapping):
        # exclude_unset keeps the item as the server sent it, extra fields included.
        dumped = item.model_dump(mode="json", exclude_unset=True, warnings=False)
    elif isinstance(item, Mapping):
        dumped = copy.deepcopy(dict(item))
    else:
        raise TypeError(f"a Responses API item must be a dict or an SDK model, not {type(item).__name__}")
    if not isinstance(dumped, dict):
        raise TypeError(f"a Responses API item must dump to a dict, not {type(dumped).__name__}")
    return dumped


def input_items(value: str | Mapping[str, Any] | Sequence[Any]) -> list[Item]:
    """New input items from text (a user message), one item, or a list of items."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, Mapping) or hasattr(value, "model_dump"):
        return [as_item(value)]
    return [as_item(item) for item in value]


def item_type(item: Mapping[str, Any]) -> str:
    """The item's ``type``; an easy input message (``{"role", "content"}``) is a ``message``."""
    kind = item.get("type")
    if isinstance(kind, str):
        return kind
    return "message" if "role" in item else ""


def is_call_output(item: Mapping[str, Any]) -> bool:
    """True for an item answering a call: ``function_call_output`` and its siblings."""
    return item_type(item).endswith("_output") and isinstance(item.get("call_id"), str)


def is_call(item: Mapping[str, Any]) -> bool:
    """True for a call the client must answer with an output item (it carries a ``call_id``)."""
    return isinstance(item.get("call_id"), str) and not item_type(item).endswith("_output")


def item_role(item: Mapping[str, Any]) -> str | None:
    """The chat role an item stands for: its own role, ``assistant`` for calls and reasoning, ``tool`` for outputs."""
    role = item.get("role")
    if isinstance(role, str):
        return role
    kind = item_type(item)
    if kind.endswith("_output"):
        return "tool"
    if kind.endswith("_call") or kind == "reasoning":
        return "assistant"
    return None


def _strings(value: Any, depth: int = 0) -> list[str]:
    if isinstance(value, str):
        return [value]
    if depth > 4:
        return []
    if isinstance(value, Mapping):
        return [text for key in _TEXT_KEYS if key in value for text in _strings(value[key], depth + 1)]
    if isinstance(value, list):
        return [text for part in value for text in _strings(part, depth + 1)]
    return []


def response_item_text(item: Mapping[str, Any]) -> str:
    """The item's plain text for search: message text, a call's name and arguments, an output, a summary."""
    kind = item_type(item)
    texts: list[str] = []
    if kind.endswith("_call") and isinstance(item.get("name"), str):
        texts.append(item["name"])
    if kind == "reasoning":
        texts += _strings(item.get("summary")) + _strings(item.get("content"))
    elif kind == "message":
        texts += _strings(item.get("content"))
    else:
        texts += [text for key in _TEXT_KEYS if key in item for text in _strings(item[key])]
    return "\n".join(text for text in texts if text)


def _tool_output_content(output: Any) -> str:
    if isinstance(output, str):
        return output
    texts = _strings(output)
    return "\n".join(texts) if texts else json.dumps(output, ensure_ascii=False)


class NoChatShape(ValueError):
    """An item, or a part of one, that a Chat Completions message cannot carry."""


def _chat_part(part: Mapping[str, Any]) -> dict[str, Any] | None:
    """The chat content part for a Responses content part, or None when chat has no shape for it."""
    kind = part.get("type")
    if isinstance(part.get("text"), str) and kind in (None, "input_text", "output_text", "text"):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in ("auto", "low", "high"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and (part.get("file_id") or part.get("file_data")):
        file = {k: part[k] for k in ("file_id", "file_data", "filename") if isinstance(part.get(k), str)}
        return {"type": "file", "file": file}
    return None


def _chat_content(content: Any, *, strict: bool = False) -> Any:
    """Chat message content for Responses content: a string, or chat parts when there are images or files.

    With ``strict``, a part chat has no shape for raises ``NoChatShape``
    instead of being left out (what a turn sends must lose nothing).
    """
    if isinstance(content, str) or content is None:
        return content
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "refusal":
            continue  # carried as the message's refusal
        converted = _chat_part(part)
        if converted is not None:
            parts.append(converted)
        elif strict:
            raise NoChatShape(f"a {part.get('type')!r} content part")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def response_item_to_chat(item: Mapping[str, Any], *, strict: bool = False) -> dict[str, Any] | None:
    """The Chat Completions message an item stands for, or ``None`` for items chat has no shape for.

    Messages keep their role, text, images and files; a function call becomes
    an assistant message with one tool call; its output a ``tool`` message.
    Reasoning and server-side tool items return ``None``: show them from the
    stored item. With ``strict``, a content part chat cannot carry raises
    ``NoChatShape``.
    """
    kind = item_type(item)
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str):
            return None
        content = item.get("content")
        parts = content if isinstance(content, list) else []
        refusals = [p["refusal"] for p in parts if isinstance(p, Mapping) and isinstance(p.get("refusal"), str)]
        message: dict[str, Any] = {"role": role, "content": _chat_content(content, strict=strict)}
        if refusals and role == "assistant":
            message["refusal"] = "".join(refusals)
            message["content"] = message["content"] or None
        return message
    if kind in ("function_call", "custom_tool_call") and isinstance(item.get("call_id"), str):
        name = str(item.get("name") or "")
        if kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": name, "arguments": str(item.get("arguments") or "")}}
        else:
            call = {"id": item["call_id"], "type": "custom", "custom": {"name": name, "input": str(item.get("input") or "")}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if is_call_output(item):
        return {"role": "tool", "tool_call_id": item["call_id"], "content": _tool_output_content(item.get("output"))}
    return None


def response_items_to_chat(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages for a run of items, for exports: consecutive tool calls join one assistant message."""
    messages: list[dict[str, Any]] = []
    for item in items:
        message = response_item_to_chat(item)
        if message is None:
            continue
        previous = messages[-1] if messages else None
        if message.get("tool_calls") and previous is not None and previous.get("role") == "assistant":
            # One model turn: its text and its parallel calls are one chat message.
            previous.setdefault("tool_calls", []).extend(message["tool_calls"])
            continue
        messages.append(message)
    return messages


def branch_to_chat(branch: Iterable[Any]) -> list[dict[str, Any]]:
    """Chat messages for a stored branch (``StoredMessage``-like: ``kind`` and ``message``), for exports.

    Chat messages pass through, each run of Responses API items becomes chat
    messages (``response_items_to_chat``), and summaries are left out.
    """
    messages: list[dict[str, Any]] = []
    run: list[Mapping[str, Any]] = []
    for stored in branch:
        if stored.kind == ITEM_KIND:
            run.append(stored.message)
            continue
        messages += response_items_to_chat(run)
        run = []
        if stored.kind == "chat":
            messages.append(stored.message)
    return messages + response_items_to_chat(run)


def _item_part(part: Mapping[str, Any], role: Any) -> dict[str, Any]:
    """The Responses content part for a chat content part; ``NoChatShape`` when there is none."""
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "output_text" if role == "assistant" else "input_text", "text": part["text"]}
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "refusal", "refusal": part["refusal"]}
    if kind == "image_url" and isinstance(part.get("image_url"), Mapping):
        image: dict[str, Any] = {"type": "input_image", "image_url": part["image_url"].get("url")}
        if part["image_url"].get("detail"):
            image["detail"] = part["image_url"]["detail"]
        return image
    if kind == "file" and isinstance(part.get("file"), Mapping):
        file = part["file"]
        return {"type": "input_file", **{k: file[k] for k in ("file_id", "file_data", "filename") if k in file}}
    raise NoChatShape(f"a chat {kind!r} content part has no Responses API form")


def chat_to_items(message: Mapping[str, Any]) -> list[Item]:
    """Responses input items for a Chat Completions message, so a chat conversation can continue as one.

    Text, images and files keep their shape; a part the Responses API has no
    form for (audio input) raises ``NoChatShape`` rather than being dropped.
    """
    role = message.get("role")
    if role == "tool":
        return [{"type": "function_call_output", "call_id": message.get("tool_call_id"),
                 "output": _tool_output_content(message.get("content"))}]
    items: list[Item] = []
    content: Any = message.get("content")
    if isinstance(content, list):
        parts = [_item_part(p, role) for p in content if isinstance(p, Mapping)]
        content = "".join(p["text"] for p in parts) if all(p["type"].endswith("_text") for p in parts) else parts
    if content or not message.get("tool_calls"):
        items.append({"role": role, "content": content or ""})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append({"type": "function_call", "call_id": call.get("id"), "name": function.get("name"),
                      "arguments": function.get("arguments") or ""})
    return items


def clean_window(items: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The longest suffix of ``items`` in which every call output follows its call.

    A window cut from a longer history can start between a call and its output;
    the API refuses an output whose call it never saw, so the window starts
    after the last such orphan. It stays a suffix (no holes), so it is still
    the tail of the history.
    """
    calls: set[str] = set()
    start = 0
    for index, item in enumerate(items):
        if is_call_output(item):
            if item["call_id"] not in calls:
                # Calls before the new start leave the window too: forget them.
                start, calls = index + 1, set()
        elif is_call(item):
            calls.add(item["call_id"])
    return list(items[start:])


def widen_window(items: Sequence[Mapping[str, Any]], size: int) -> list[Any]:
    """The newest ``size`` items, widened back until each call output's call is in the window.

    For what a chat sends, where a few items more beat a turn that lost its
    tool results; ``clean_window`` is the one that never exceeds the size.
    """
    start = max(0, len(items) - size)
    where = {item["call_id"]: index for index, item in enumerate(items) if is_call(item)}
    while True:
        earliest = min((where.get(item["call_id"], start) for item in items[start:] if is_call_output(item)),
                       default=start)
        if earliest >= start:
            return list(items[start:])
        start = earliest


def pending_calls(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """Call ids in ``items`` with no output after them (the API refuses to continue past them)."""
    answered = {item["call_id"] for item in items if is_call_output(item)}
    return [item["call_id"] for item in items if is_call(item) and item["call_id"] not in answered]
