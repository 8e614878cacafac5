"""Importing a claude.ai data export: its ``conversations.json``, or the export's zip.

The export is a JSON array of conversations ``{uuid, name, created_at,
updated_at, chat_messages: [...]}``; each message has a ``sender`` (``human``
or ``assistant``), the legacy ``text`` and, since 2024, ``content`` blocks:

==============  ===============================================================
block           becomes
==============  ===============================================================
text            the message's text (blocks joined by blank lines)
thinking        kept apart from the answer: ``metadata["claude"]["thinking"]``
tool_use        an assistant ``tool_calls`` entry (the block's ``id``, or
                ``toolu_<message>_<n>`` when the export has none)
tool_result     a ``tool`` message answering that call
anything else   ``metadata["claude"]["blocks"]``, kept as it was
==============  ===============================================================

An assistant message whose blocks interleave text, tool calls and results
(claude.ai runs its tools within one reply) becomes that run of messages: an
assistant message carrying the calls, the ``tool`` answers, then the text that
follows, so the conversation stays sendable to the API. ``attachments``
(name, size, type, extracted text) and ``files`` go to the human message's
metadata.

Branches: the export lists messages in order and names no parents, so a
conversation is one chain; when messages carry ``parent_message_uuid`` (as
claude.ai's own API and tools built on it give them) the tree is rebuilt from
it and ``current_leaf_message_uuid`` is the head.

Keys: a conversation is ``claude:<uuid>``, a message its ``uuid`` (the pieces
before a reply's last one ``<uuid>:<n>``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import partial
from typing import Any

from ..errors import FormatError
from ..store.bulk import ImportConversation, ImportMessage
from ._replies import Reply
from ._source import PathLike, Report, as_str, checked_message, export_parts, iso_time, json_array
from ._tree import last_leaf, tree_order

__all__ = ["read_claude"]

_ROLES = {"human": "user", "user": "user", "assistant": "assistant"}
_ZERO = re.compile(r"0{8}-0{4}-[0-9a-f]0{3}-[0-9a-f]0{3}-0{12}")


def read_claude(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield the conversations of a claude.ai export one at a time; one with no messages is left out."""
    for stream, label, _archive in export_parts(path):  # a zip's conversations.json, or each of its numbered parts
        report = Report(label, warnings)
        records = ((f"conversations[{index}]", item) for index, item in json_array(stream, label, "conversations"))
        yield from report.each(records, partial(_conversation, report=report))



def _result_text(content: Any) -> str:
    """A tool result's content (a string, or a list of blocks) as text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(as_str(block.get("text")) if isinstance(block, dict) else as_str(block) for block in content)
    return json.dumps(content, ensure_ascii=False) if content is not None else ""


def _fold(blocks: list[Any], uuid: str) -> tuple[Reply, list[Any]]:
    """A reply's blocks folded into chat messages, and the blocks that are none of text, thinking or tools."""
    reply = Reply(f"toolu_{uuid}")
    other: list[Any] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            reply.text(as_str(block.get("text")))
        elif kind in ("thinking", "redacted_thinking"):
            reply.think(as_str(block.get("thinking")) or as_str(block.get("data")))
        elif kind in ("tool_use", "server_tool_use"):
            reply.call(as_str(block.get("id")), as_str(block.get("name")), block.get("input", {}))
        elif kind in ("tool_result", "web_search_tool_result"):
            if not reply.result(as_str(block.get("tool_use_id")), _result_text(block.get("content"))):
                other.append(block)  # a result with no call before it: kept, not sent
        else:
            other.append(block)
    return reply, other


def _split(message: dict[str, Any], uuid: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A message as chat messages, and what it keeps in metadata."""
    role = _ROLES.get(as_str(message.get("sender")), "")
    blocks = message.get("content")
    details: dict[str, Any] = {"uuid": uuid}
    for name in ("attachments", "files", "files_v2"):
        if isinstance(message.get(name), list) and message[name]:
            details[name] = message[name]
    if not isinstance(blocks, list) or not blocks:
        return [{"role": role, "content": as_str(message.get("text"))}], details
    if role == "user":
        texts = [as_str(b.get("text")) for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
        others = [b for b in blocks if not (isinstance(b, dict) and b.get("type") == "text")]
        if others:
            details["blocks"] = others
        return [{"role": "user", "content": "\n\n".join(texts) if texts else as_str(message.get("text"))}], details
    reply, other = _fold(blocks, uuid)
    out = reply.finish()
    if reply.thinking:
        details["thinking"] = reply.thinking
    if other:
        details["blocks"] = other
    if reply.unanswered:
        details["unanswered_calls"] = reply.unanswered
    return out, details


def _conversation(item: Any, where: str, report: Report) -> ImportConversation | None:
    label = report.label
    if not isinstance(item, dict):
        raise FormatError(f"{where}: expected a conversation object, got {type(item).__name__}", file=label)
    raw = item.get("chat_messages")
    if not isinstance(raw, list):
        raise FormatError(f"{where}.chat_messages: expected a list of messages", file=label)
    uuid = as_str(item.get("uuid"))
    name = f"{where} (conversation {uuid})" if uuid else where
    entries: list[tuple[str, str | None, int, dict[str, Any]]] = []
    threaded = any(isinstance(m, dict) and "parent_message_uuid" in m for m in raw)
    previous: str | None = None
    for index, message in enumerate(raw):
        field = f"{where}.chat_messages[{index}]"
        if not isinstance(message, dict):
            report.skip(FormatError(f"{field}: expected a message object", file=label))
            continue
        key = as_str(message.get("uuid")) or f"#{index}"
        if as_str(message.get("sender")) not in _ROLES:
            report.skip(FormatError(f"{field}.sender: unknown sender {message.get('sender')!r}", file=label))
            continue
        parent = message.get("parent_message_uuid") if threaded else previous
        # claude.ai's API marks a root with a zero UUID (00000000-0000-4000-8000-000000000000).
        entries.append((key, parent if isinstance(parent, str) and not _ZERO.fullmatch(parent) else None, index,
                        message))
        previous = key
    order = tree_order([(key, parent) for key, parent, _, _ in entries])
    for key in order.lost:
        report.skip(FormatError(f"{name}: message {key} left out, repeated or on a cycle", file=label))
    for key, missing in order.orphans.items():
        report.note(f"{name}: message {key}'s parent {missing} is missing; imported from there as a new root")
    by_key = {key: (parent, index, message) for key, parent, index, message in entries}
    last_piece: dict[str, str] = {}
    messages: list[ImportMessage] = []
    for key in order.keys:
        parent, index, message = by_key[key]
        pieces, details = _split(message, key)
        anchor = None if key in order.orphans or parent is None else last_piece.get(parent)
        created = iso_time(message.get("created_at"))
        for n, body in enumerate(pieces):
            piece_key = key if n == len(pieces) - 1 else f"{key}:{n}"
            checked = checked_message(body, f"{where}.chat_messages[{index}]", label)
            messages.append(ImportMessage(checked, key=piece_key, parent_key=anchor, created_at=created,
                                          metadata={"claude": details} if n == len(pieces) - 1 else {}))
            anchor = piece_key
        last_piece[key] = key
    if not messages:
        report.note(f"{name}: no messages to import; left out")
        return None
    leaf = item.get("current_leaf_message_uuid")
    head = leaf if isinstance(leaf, str) and leaf in last_piece else last_leaf(messages)
    created = iso_time(item.get("created_at"))
    details = {"uuid": uuid or None, "account": (item.get("account") or {}).get("uuid")
               if isinstance(item.get("account"), dict) else None, "summary": item.get("summary") or None}
    return ImportConversation(
        messages,
        key=f"claude:{uuid}" if uuid else None,
        title=as_str(item.get("name")) or None,
        created_at=created,
        updated_at=iso_time(item.get("updated_at")) or created,
        metadata={"imported_from": "claude", "claude": {k: v for k, v in details.items() if v is not None}},
        head_key=head,
    )
