"""Importing a LibreChat conversation export: one conversation per file, with its branches.

LibreChat's "Export" writes ``{conversationId, title, endpoint, options,
recursive, branches, messages}``. With ``recursive: true`` the messages are a
tree (each with its ``children``); otherwise a flat list whose tree is given
by ``parentMessageId`` (the nil UUID, or null, for a root: an edited first
message is a second root). Exports before mid-2024 call the list
``messagesTree``. Every branch is kept; LibreChat names no current one, so the
head is what its UI shows by default: the last root's last child, and so on
down.

``options.promptPrefix`` (the conversation's system prompt, sent with every
turn) becomes a system message above the roots. A message's ``content``
parts (the agents endpoint) are read too: ``think`` parts are kept apart from
the answer in ``metadata["librechat"]["reasoning"]``, ``tool_call`` parts
become an assistant ``tool_calls`` entry and the ``tool`` message with its
output. ``error`` and ``unfinished`` set the status; files, attachments and
token counts go to metadata. Messages from before LibreChat kept times have
no ``createdAt``; they take their parent's time.

Keys: the conversation is ``librechat:<conversationId>``, a message its
``messageId``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..errors import FormatError
from ..store.base import MessageStatus
from ..store.bulk import ImportConversation, ImportMessage
from ._replies import Reply
from ._source import PathLike, Report, as_str, checked_message, content_hash, iso_time, load_json
from ._tree import last_leaf, tree_order

__all__ = ["NO_PARENT", "read_librechat"]

#: How LibreChat marks a message with no parent.
NO_PARENT = "00000000-0000-0000-0000-000000000000"
_KEPT = ("sender", "endpoint", "tokenCount", "promptTokens", "files", "attachments", "feedback", "isEdited",
         "iconURL")


def read_librechat(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield the file's one conversation."""
    label = os.fspath(path)
    report = Report(label, warnings)
    data = load_json(path, label)
    if not isinstance(data, dict):
        raise FormatError(f"expected a LibreChat conversation object, got {type(data).__name__}", file=label)
    conversation = _conversation(data, report)
    if conversation is not None:
        yield conversation



def _flatten(messages: list[Any], label: str, field: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """``(where, message, parent id)`` for a recursive export: the parent is the message a child sits under."""
    out: list[tuple[str, dict[str, Any], str | None]] = []
    stack: list[tuple[str, Any, str | None]] = [(f"{field}[{i}]", m, None) for i, m in reversed(list(enumerate(messages)))]
    while stack:
        where, message, parent = stack.pop()
        if not isinstance(message, dict):
            raise FormatError(f"{where}: expected a message object", file=label)
        out.append((where, message, parent))
        children = message.get("children")
        if isinstance(children, list):
            parent_key = as_str(message.get("messageId")) or where
            stack.extend((f"{where}.children[{i}]", child, parent_key) for i, child in reversed(list(enumerate(children))))
    return out


def _listed(messages: list[Any], label: str, field: str) -> list[tuple[str, dict[str, Any], str | None]]:
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise FormatError(f"{field}[{i}]: expected a message object", file=label)
        parent = message.get("parentMessageId")
        out.append((f"{field}[{i}]", message, parent if isinstance(parent, str) and parent != NO_PARENT else None))
    return out


def _text_part(part: dict[str, Any]) -> str:
    text = part.get("text")
    return as_str(text.get("value")) if isinstance(text, dict) else as_str(text)


def _pieces(message: dict[str, Any], key: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    kept: dict[str, Any] = {name: message[name] for name in _KEPT if message.get(name) not in (None, [], "")}
    if message.get("isCreatedByUser") is True:
        return [{"role": "user", "content": as_str(message.get("text"))}], kept
    parts = message.get("content")
    if not isinstance(parts, list) or not parts:
        return [{"role": "assistant", "content": as_str(message.get("text"))}], kept
    reply, other = Reply(f"call_{key}"), []
    for part in parts:
        part = part if isinstance(part, dict) else {}
        kind = part.get("type")
        if kind == "text":
            reply.text(_text_part(part))
        elif kind == "think":
            reply.think(as_str(part.get("think")))
        elif kind == "tool_call" and isinstance(part.get("tool_call"), dict):
            call = part["tool_call"]
            call_id = reply.call(as_str(call.get("id")), as_str(call.get("name")), call.get("args", {}))
            if "output" in call:
                reply.result(call_id, as_str(call.get("output")))
        else:
            other.append(part)
    pieces = reply.finish()
    if reply.thinking:
        kept["reasoning"] = "\n\n".join(reply.thinking)
    if other:
        kept["content"] = other
    return pieces, kept


def _status(message: dict[str, Any]) -> MessageStatus:
    if message.get("error") is True:
        return "error"
    if message.get("unfinished") is True or message.get("finish_reason") == "incomplete":
        return "incomplete"
    return "complete"


def _conversation(data: dict[str, Any], report: Report) -> ImportConversation | None:
    label = report.label
    field = "messagesTree" if isinstance(data.get("messagesTree"), list) else "messages"
    raw = data.get(field)
    if not isinstance(raw, list):
        raise FormatError("messages: expected a list of messages", file=label)
    recursive = data.get("recursive") is True or any(isinstance(m, dict) and "children" in m for m in raw)
    entries = _flatten(raw, label, field) if recursive else _listed(raw, label, field)
    by_key: dict[str, tuple[str, dict[str, Any], str | None]] = {}
    links = []
    for where, message, parent in entries:
        key = as_str(message.get("messageId")) or where
        by_key.setdefault(key, (where, message, parent))
        links.append((key, parent))
    order = tree_order(links)
    for key in order.lost:
        report.skip(FormatError(f"message {key} left out, repeated or on a cycle", file=label))
    for key, missing in order.orphans.items():
        report.note(f"message {key}'s parent {missing} is missing; imported from there as a new root")
    options = data["options"] if isinstance(data.get("options"), dict) else {}
    messages: list[ImportMessage] = []
    system_key = None
    prompt = as_str(options.get("promptPrefix"))
    if prompt:
        system_key = f"system:{content_hash(prompt)}"
        messages.append(ImportMessage({"role": "system", "content": prompt}, key=system_key,
                                      metadata={"librechat": {"from": "options.promptPrefix"}}))
    time_of: dict[str | None, datetime | None] = {}
    for key in order.keys:
        where, message, parent = by_key[key]
        pieces, kept = _pieces(message, key)
        anchor = system_key if key in order.orphans or parent is None else parent
        # Messages LibreChat wrote before it kept times have none: they are no older than their parent.
        created = time_of[key] = iso_time(message.get("createdAt")) or time_of.get(parent)
        assistant = message.get("isCreatedByUser") is not True
        for n, body in enumerate(pieces):
            last = n == len(pieces) - 1
            piece_key = key if last else f"{key}:{n}"
            finish = message.get("finish_reason")
            messages.append(ImportMessage(
                checked_message(body, where, label), key=piece_key, parent_key=anchor,
                created_at=created,
                model=as_str(message.get("model")) or None if assistant else None,
                status=_status(message) if last else "complete",
                finish_reason=finish if last and assistant and isinstance(finish, str) else None,
                metadata={"librechat": kept} if last and kept else {}))
            anchor = piece_key
    if not any(m.key != system_key for m in messages):
        report.note("no messages to import; left out")
        return None
    conversation_id = as_str(data.get("conversationId"))
    times = [m.created_at for m in messages if m.created_at is not None]
    if system_key is not None and times:
        messages[0].created_at = min(times)  # the prompt was there from the start
    details = {"conversationId": conversation_id or None, "endpoint": data.get("endpoint"),
               "options": options or None, "exportAt": data.get("exportAt")}
    return ImportConversation(
        messages,
        key=f"librechat:{conversation_id}" if conversation_id else None,
        title=as_str(data.get("title")) or None,
        created_at=min(times) if times else None,
        updated_at=max(times) if times else None,
        metadata={"imported_from": "librechat",
                  "librechat": {name: value for name, value in details.items() if value is not None}},
        head_key=last_leaf(messages),
    )
