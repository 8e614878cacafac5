"""Importing a ChatGPT data export: its ``conversations.json``, the export's zip, or one conversation.

One conversation is the object ChatGPT's web app serves for a chat (what
browser exporters save): the same shape as an element of the export's list.

Every branch is kept. The export's ``mapping`` is a tree of nodes; each node
whose message is kept becomes a stored message under its nearest kept
ancestor, so leaving out the empty root and hidden system nodes never
disconnects the tree. ``current_node`` becomes the head (when it is missing,
the newest leaf, with a warning). A conversation whose tree is damaged (a
node whose parent is missing, a cycle) is imported as far as it is sound.

Keys: a conversation is ``chatgpt:<conversation id>`` and each message its
node id, so importing a later export of the same account adds only the turns
that are new and moves the head to the newer current node. How message
contents are mapped is described in :mod:`.chatgpt_content`; how the images
and files in the export's zip join them, in :mod:`.chatgpt_files`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import IO, Any, Optional

from ..errors import FormatError
from ..store.base import MessageStatus
from ..store.bulk import ImportConversation, ImportMessage, MessageSpool
from ._scan import JsonScanner, ScanError
from ._source import (
    MAX_DEPTH,
    READ_ERRORS,
    PathLike,
    Report,
    as_dict,
    checked_message,
    content_hash,
    epoch,
    export_parts,
    first_line,
)
from ._tree import newest_leaf
from .chatgpt_content import map_message
from .chatgpt_files import Attacher, ExportFiles, points_to_files
from .chatgpt_stream import Nodes, read_conversation

__all__ = ["read_chatgpt"]

_STATUS: dict[str, MessageStatus] = {
    "finished_successfully": "complete",
    "in_progress": "incomplete",
    "finished_partial_completion": "incomplete",
}
_FINISH_REASONS = {"stop": "stop", "max_tokens": "length"}


def _items(stream: IO[bytes], label: str) -> Iterator[tuple[str, Any]]:
    """Each conversation with its place: ``conversations[3]``, or ``conversation`` for a file holding one.

    An object comes with its ``mapping`` as :class:`.chatgpt_stream.Nodes`,
    read a node at a time.
    """
    scanner = JsonScanner(stream)
    try:
        start = scanner.peek()
    except (UnicodeDecodeError, *READ_ERRORS) as exc:
        raise FormatError(f"not one JSON conversation: {first_line(exc)}", file=label) from exc
    if start != "{":
        yield from _listed(scanner, label)
        return
    try:
        item = read_conversation(scanner, 1, _prepare)
        scanner.finish()
    except ScanError as exc:
        if exc.deep:
            raise FormatError(f"conversation: nested deeper than {MAX_DEPTH} levels", file=label) from exc
        raise FormatError(f"not one JSON conversation: {exc}", file=label) from exc
    except (UnicodeDecodeError, *READ_ERRORS) as exc:
        raise FormatError(f"not one JSON conversation: {first_line(exc)}", file=label) from exc
    yield "conversation", item


def _listed(scanner: JsonScanner, label: str) -> Iterator[tuple[str, Any]]:
    """The conversations of an export's list, each read as it streams by (see :func:`.json_array`)."""
    count = 0
    try:
        if scanner.peek() not in ("[", ""):
            raise FormatError("expected a JSON array of conversations", file=label)
        for count in scanner.items():
            yield f"conversations[{count}]", read_conversation(scanner, 2, _prepare)
        count += 1
        scanner.finish()
    except ScanError as exc:
        if exc.deep:
            raise FormatError(f"conversations[{count}]: nested deeper than {MAX_DEPTH} levels", file=label) from exc
        raise FormatError(f"invalid JSON in or after conversations[{count}]: {exc}", file=label) from exc
    except UnicodeDecodeError as exc:
        raise FormatError(f"conversations[{count}]: text is not valid UTF-8 ({exc.reason})", file=label) from exc
    except READ_ERRORS as exc:
        raise FormatError(f"cannot read past conversations[{count}]: {first_line(exc)}", file=label) from exc


def read_chatgpt(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield the conversations of a ChatGPT export one at a time (of each of its numbered parts, in order)."""
    report = Report(os.fspath(path), warnings)
    attacher: Attacher | None = None
    for stream, label, archive in export_parts(path):
        report.label = label  # what a record's error names: the part it is in
        if attacher is None:
            attacher = Attacher(ExportFiles(archive, report) if archive is not None else None, report)
        yield from report.each(_items(stream, label), partial(_conversation, report=report, attacher=attacher))
    if attacher is not None:
        attacher.finish()


def _walk(nodes: dict[str, tuple[Any, Any]]) -> tuple[list[str], dict[str, str]]:
    """Node ids with every parent before its children, and the nodes whose parent is missing.

    ``nodes``: each node's ``(parent, children)``.

    Siblings keep the order of their parent's ``children`` list (the order
    ChatGPT made them in). Nodes on a cycle are never reached and so left out.
    """
    children: dict[str | None, list[str]] = {}
    orphans: dict[str, str] = {}
    for key, (parent, _) in nodes.items():
        if parent is not None and (not isinstance(parent, str) or parent not in nodes or parent == key):
            orphans[key] = str(parent)
            parent = None
        children.setdefault(parent, []).append(key)
    order: list[str] = []
    seen: set[str] = set()
    stack = list(reversed(children.get(None, [])))
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        order.append(key)
        kids = children.get(key, [])
        listed = nodes[key][1]
        if isinstance(listed, list) and len(kids) > 1:
            rank = {child: i for i, child in enumerate(listed) if isinstance(child, str)}
            kids = sorted(kids, key=lambda child: rank.get(child, len(rank)))
        stack.extend(reversed(kids))
    return order, orphans


def _status(message: dict[str, Any], meta: dict[str, Any]) -> tuple[MessageStatus, str | None]:
    finish = as_dict(meta.get("finish_details")).get("type")
    raw = message.get("status")
    status = _STATUS.get(raw, "complete") if isinstance(raw, str) else "complete"
    if finish == "interrupted":
        status = "incomplete"
    return status, _FINISH_REASONS.get(finish) if isinstance(finish, str) else None


#: What :func:`_prepare` makes of a node: role, text, the message itself when its files matter (else None),
#: its create_time as the file has it, model, status, finish reason, metadata. Plain values: a spilled
#: conversation's nodes are written to disk as these (see :class:`.chatgpt_stream.Nodes`).
_Prepared = tuple[str, str, Optional[dict[str, Any]], Any, Optional[str], MessageStatus, Optional[str], dict[str, Any]]


def _prepare(key: str, node: Any) -> _Prepared | None:
    """All of a node's message that does not depend on where it sits or on the export's files; ``None`` when the
    node is left out. Made as the node is read when a conversation is too large to hold (no second decode)."""
    message = node.get("message") if isinstance(node, dict) else None
    if not isinstance(message, dict):
        return None
    mapped = map_message(message)
    if mapped is None:
        return None
    meta = as_dict(message.get("metadata"))
    hidden = meta.get("is_visually_hidden_from_conversation") is True
    if hidden and not mapped.text.strip():
        return None
    author = as_dict(message.get("author"))
    original = {
        "node_id": key,
        "message_id": message.get("id") if message.get("id") != key else None,
        "author_role": author.get("role"),
        "author_name": author.get("name"),
        "recipient": message.get("recipient"),
        "content_type": as_dict(message.get("content")).get("content_type"),
        "status": message.get("status"),
        "hidden": True if hidden else None,
    }
    status, finish_reason = _status(message, meta)
    by_assistant = author.get("role") == "assistant"
    model = meta.get("model_slug")
    return (mapped.role, mapped.text, message if points_to_files(message) else None, message.get("create_time"),
            model if by_assistant and isinstance(model, str) else None, status,
            finish_reason if by_assistant else None,
            {"chatgpt": {name: value for name, value in original.items() if isinstance(value, (str, bool))}})


def _message(key: str, prepared: _Prepared, parent_key: str | None, field: str, label: str,
             default_time: datetime | None, attacher: Attacher) -> ImportMessage:
    """A prepared node as a message to import, under ``parent_key``, with the files it points to."""
    role, text, message, create_time, model, status, finish_reason, metadata = prepared
    body = checked_message(attacher.body(role, text, message), field, label)
    return ImportMessage(body, key=key, parent_key=parent_key, created_at=epoch(create_time) or default_time,
                         model=model, status=status, finish_reason=finish_reason, metadata=metadata)


def _conversation(item: Any, where: str, report: Report, attacher: Attacher) -> ImportConversation | None:
    label = report.label
    if not isinstance(item, dict):
        raise FormatError(f"{where}: expected a conversation object, got {type(item).__name__}", file=label)
    mapping = item.get("mapping")
    if not isinstance(mapping, Nodes):
        raise FormatError(f"{where}.mapping: expected an object of message nodes", file=label)
    source_id = next((value for value in (item.get("id"), item.get("conversation_id"))
                      if isinstance(value, str) and value), None)
    name = f"{where} (conversation {source_id})" if source_id else where
    attacher.conversation(name)
    nodes = mapping.shape
    order, orphans = _walk(nodes)
    reached = set(order)
    lost = [key for key in mapping.keys() if key not in reached]
    if lost:
        report.skip(FormatError(f"{name}: {len(lost)} node(s) left out, not objects or on a cycle:"
                                f" {', '.join(lost[:5])}", file=label))
    for key, missing in orphans.items():
        report.note(f"{name}: node {key}'s parent {missing} is missing; imported from there as a new root")
    created = epoch(item.get("create_time"))
    kept_of: dict[str, str | None] = {}
    messages: list[ImportMessage] | MessageSpool = MessageSpool() if mapping.spilled else []
    for key in order:
        parent = nodes[key][0]
        anchor = None if key in orphans or not isinstance(parent, str) else kept_of.get(parent)
        prepared = mapping.prepared(key)
        imported = None if prepared is None else _message(key, prepared, anchor, f"{where}.mapping[{key!r}]", label,
                                                          created, attacher)
        kept_of[key] = key if imported is not None else anchor
        if imported is not None:
            messages.append(imported)
    if not messages:
        report.note(f"{name}: no messages to import; left out")
        return None
    current = item.get("current_node")
    head = kept_of.get(current) if isinstance(current, str) else None
    if not isinstance(current, str) or current not in nodes:
        head = newest_leaf(messages)
        report.note(f"{name}: current_node {current!r} is not in the mapping; the head is the newest leaf, {head}")
    elif head is None:  # the current node and all above it were left out
        head = newest_leaf(messages)
    title = item.get("title")
    details = {field: item[field] for field in ("default_model_slug", "gizmo_id", "is_archived")
               if isinstance(item.get(field), (str, bool))}
    return ImportConversation(
        messages,
        key=f"chatgpt:{source_id}" if source_id else f"chatgpt:sha256:{content_hash({**item, 'mapping': mapping.whole()})}",
        title=title if isinstance(title, str) else None,
        created_at=created,
        updated_at=epoch(item.get("update_time")) or created,
        metadata={"imported_from": "chatgpt", "chatgpt": {"id": source_id, **details}},
        head_key=head,
        checked=True,  # each body was validated as it was made, and each status is one of ours
    )
