"""Importing DeepSeek chats: the web app's history of one chat, or the account's data export.

Two shapes are read:

- the history chat.deepseek.com serves for a chat (what browser exporters save
  "raw"): ``{data: {biz_data: {chat_session: {id, title, current_message_id,
  inserted_at}, chat_messages: [{message_id, parent_id, role, inserted_at,
  fragments, ...}]}}}``. Messages with the same parent are regenerations (or,
  for roots, edits of the first prompt): every branch is kept, and
  ``current_message_id`` is the head;
- the account export's ``conversations.json`` (or its zip): a JSON array of
  ``{id, title, inserted_at, mapping}``, ``mapping`` a tree of nodes ``{id,
  parent, children, message: {model, inserted_at, fragments}}``; its head is
  the newest leaf.

A message's ``fragments`` say what it holds: ``REQUEST`` is the user's text,
``RESPONSE`` the answer; ``THINK`` (the reasoning of "DeepThink") is kept apart
from the answer in ``metadata["deepseek"]["thinking"]``, and any other
fragment (search results, tool steps) in ``metadata["deepseek"]["fragments"]``.
Older histories without fragments carry ``content`` and ``thinking_content``,
read the same way. Files, the model, token counts and search settings go to
metadata.

Keys: a chat is ``deepseek:<id>``, a message its ``message_id`` (or node id).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial
from typing import IO, Any

from ..errors import FormatError
from ..store.base import MessageStatus
from ..store.bulk import ImportConversation, ImportMessage
from ._source import PathLike, Report, as_dict, as_str, checked_message, export_parts, json_array, load_json, moment
from ._tree import newest_leaf, tree_order

__all__ = ["read_deepseek"]

_KEPT = ("files", "thinking_enabled", "search_enabled", "accumulated_token_usage", "feedback", "conversation_mode",
         "search_results")


def read_deepseek(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield the chat of a saved history, or each chat of an account export."""
    exported = False
    for stream, label, _archive in export_parts(path):  # a zip's conversations.json, or each of its numbered parts
        if not exported and not _starts_array(stream):
            break  # a saved history: one chat object
        exported = True
        report = Report(label, warnings)
        records = ((f"conversations[{index}]", item) for index, item in json_array(stream, label, "conversations"))
        yield from report.each(records, partial(_exported, report=report))
    if exported:
        return
    conversation = _history(load_json(path, os.fspath(path)), Report(os.fspath(path), warnings))
    if conversation is not None:
        yield conversation


def _starts_array(stream: IO[bytes]) -> bool:
    position = stream.tell()
    start = stream.read(4096).lstrip()[:1]
    stream.seek(position)
    return start == b"["




def _body(message: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """A message's role, text, and what metadata keeps (the thinking above all)."""
    kept: dict[str, Any] = {name: message[name] for name in _KEPT if message.get(name) not in (None, [], "", False)}
    role = as_str(message.get("role")).lower()
    fragments = message.get("fragments")
    if not isinstance(fragments, list):
        if as_str(message.get("thinking_content")):
            kept["thinking"] = message["thinking_content"]
        return role, as_str(message.get("content")), kept
    said: list[str] = []
    thinking: list[str] = []
    other: list[Any] = []
    for fragment in fragments:
        kind = as_str(as_dict(fragment).get("type")).upper()
        if kind in ("REQUEST", "RESPONSE"):
            said.append(as_str(fragment.get("content")))
            if fragment.get("references"):
                kept.setdefault("references", []).extend(fragment["references"])
            role = role or ("user" if kind == "REQUEST" else "assistant")
        elif kind == "THINK":
            thinking.append(as_str(fragment.get("content")))
            role = role or "assistant"
        else:
            other.append(fragment)
    if thinking:
        kept["thinking"] = "\n\n".join(thinking)
    if other:
        kept["fragments"] = other
    return role, "\n\n".join(said), kept


def _status(message: dict[str, Any]) -> MessageStatus:
    status = as_str(message.get("status")).upper()
    if not status or status == "FINISHED":
        return "complete"
    return "error" if "FAIL" in status or "ERROR" in status else "incomplete"


def _messages(entries: list[tuple[str, str | None, dict[str, Any], str]], name: str,
              report: Report) -> list[ImportMessage]:
    label = report.label
    order = tree_order([(key, parent) for key, parent, _, _ in entries])
    for key in order.lost:
        report.skip(FormatError(f"{name}: message {key} left out, repeated or on a cycle", file=label))
    for key, missing in order.orphans.items():
        report.note(f"{name}: message {key}'s parent {missing} is missing; imported from there as a new root")
    by_key = {key: (parent, message, where) for key, parent, message, where in entries}
    kept_of: dict[str, str | None] = {}
    out: list[ImportMessage] = []
    for key in order.keys:
        parent, message, where = by_key[key]
        anchor = None if key in order.orphans or parent is None else kept_of.get(parent)
        role, text, kept = _body(message)
        if role not in ("user", "assistant", "system"):
            raise FormatError(f"{where}.role: unknown role {message.get('role')!r}", file=label)
        model = as_str(message.get("model"))
        out.append(ImportMessage(
            checked_message({"role": role, "content": text}, where, label), key=key, parent_key=anchor,
            created_at=moment(message.get("inserted_at")), model=model if model and role == "assistant" else None,
            status=_status(message), metadata={"deepseek": kept} if kept else {}))
        kept_of[key] = key
    return out


def _history(data: Any, report: Report) -> ImportConversation | None:
    label = report.label
    biz = as_dict(as_dict(as_dict(data).get("data")).get("biz_data")) or as_dict(data)
    session, raw = as_dict(biz.get("chat_session")), biz.get("chat_messages")
    if not isinstance(raw, list):
        raise FormatError("data.biz_data.chat_messages: expected a list of messages", file=label)
    entries = []
    for index, message in enumerate(raw):
        where = f"chat_messages[{index}]"
        if not isinstance(message, dict) or message.get("message_id") is None:
            report.skip(FormatError(f"{where}: expected a message with a message_id", file=label))
            continue
        parent = message.get("parent_id")
        entries.append((str(message["message_id"]), None if parent is None else str(parent), message, where))
    session_id = as_str(session.get("id"))
    messages = _messages(entries, f"chat {session_id}" if session_id else "chat", report)
    if not messages:
        report.note("no messages to import; left out")
        return None
    current = session.get("current_message_id")
    keys = {m.key for m in messages}
    head = str(current) if current is not None and str(current) in keys else newest_leaf(messages)
    created = moment(session.get("inserted_at"))
    details = {name: session[name] for name in ("id", "agent", "pinned", "title_type") if session.get(name) is not None}
    return ImportConversation(
        messages, key=f"deepseek:{session_id}" if session_id else None,
        title=as_str(session.get("title")) or None, created_at=created,
        updated_at=moment(session.get("updated_at")) or created,
        metadata={"imported_from": "deepseek", "deepseek": details}, head_key=head)


def _exported(item: Any, where: str, report: Report) -> ImportConversation | None:
    label = report.label
    if not isinstance(item, dict) or not isinstance(item.get("mapping"), dict):
        raise FormatError(f"{where}.mapping: expected an object of message nodes", file=label)
    entries = []
    for key, node in item["mapping"].items():
        node = as_dict(node)
        if not isinstance(node.get("message"), dict):
            continue  # the empty root
        parent = node.get("parent")
        parent_message = as_dict(item["mapping"].get(parent)).get("message") if isinstance(parent, str) else None
        entries.append((str(key), parent if isinstance(parent_message, dict) else None, node["message"],
                        f"{where}.mapping[{key!r}].message"))
    conversation_id = as_str(item.get("id"))
    messages = _messages(entries, f"{where} (conversation {conversation_id})", report)
    if not messages:
        report.note(f"{where}: no messages to import; left out")
        return None
    created = moment(item.get("inserted_at"))
    return ImportConversation(
        messages, key=f"deepseek:{conversation_id}" if conversation_id else None,
        title=as_str(item.get("title")) or None, created_at=created,
        updated_at=moment(item.get("updated_at")) or created,
        metadata={"imported_from": "deepseek", "deepseek": {"id": conversation_id} if conversation_id else {}},
        head_key=newest_leaf(messages))
