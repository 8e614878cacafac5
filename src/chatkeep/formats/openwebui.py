"""Importing Open WebUI chats: its export (a JSON array of chat records), or one chat.

Open WebUI's "Export chats" writes ``[{id, title, chat: {...}, created_at,
updated_at, ...}]``; older exports and the ``chat`` column of its database
hold the inner object alone, ``{title, models, history, messages, timestamp}``,
and both are read. ``chat.history.messages`` is the message tree (``parentId``,
``childrenIds``): every branch is kept, and ``history.currentId`` is the head.
A chat without ``history`` has only its ``messages`` list, imported as a chain.

An assistant reply is read from its ``output`` items when it has them (newer
Open WebUI, Responses-style): ``reasoning`` is kept apart from the answer in
``metadata["openwebui"]["reasoning"]``, each ``function_call`` becomes an
assistant ``tool_calls`` entry and its ``function_call_output`` the ``tool``
message answering it. Without ``output`` the same is read from the HTML that
Open WebUI writes into ``content``: ``<details type="reasoning">`` and
``<details type="tool_calls" id=... name=... arguments=... result=...>``.
A user message's image ``files`` with data URLs become image parts; other
files, ``sources``, ``usage`` details and errors stay in metadata.

Keys: a chat is ``openwebui:<id>`` (``openwebui:first:<its first message's id>``
when its id is empty), a
message its id (the pieces before a reply's last one ``<id>:<n>``).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import IO, Any

from ..errors import FormatError
from ..store.base import MessageStatus
from ..store.bulk import ImportConversation, ImportMessage
from ._replies import Reply
from ._source import (
    PathLike,
    Report,
    as_dict,
    as_str,
    checked_message,
    json_array,
    load_json,
    moment,
    open_plain,
)
from ._tree import newest_leaf, tree_order

__all__ = ["DETAILS", "read_openwebui"]

#: One ``<details type="...">...</details>`` block as Open WebUI writes it into a reply's content.
DETAILS = re.compile(r"<details\s+type=\"(reasoning|tool_calls|code_interpreter)\"([^>]*)>(.*?)</details>\n?", re.S)
_ATTRIBUTE = re.compile(r"(\w+)=(?:\"([^\"]*)\"|'([^']*)')")
_SUMMARY = re.compile(r"\s*<summary>.*?</summary>\s*", re.S)
_KEPT = ("files", "sources", "citations", "statusHistory", "info", "annotation", "modelName", "modelIdx",
         "followUps", "error", "merged", "code_executions")


def read_openwebui(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield the chats of an Open WebUI export, or the one chat of a file holding one."""
    label = str(path)
    report = Report(label, warnings)
    yield from report.each(_items(path, label), lambda item, where: _conversation(item, where, report))


def _items(path: PathLike, label: str) -> Iterator[tuple[str, Any]]:
    with open_plain(path) as stream:
        if _starts_array(stream):
            for index, item in json_array(stream, label, "chats"):
                yield f"chats[{index}]", item
            return
    yield "chat", load_json(path, label)


def _starts_array(stream: IO[bytes]) -> bool:
    position = stream.tell()
    start = stream.read(4096).lstrip()[:1]
    stream.seek(position)
    return start == b"["




def _unquote(text: str) -> str:
    """A reasoning block's body: Open WebUI quotes each line with ``> `` and escapes HTML."""
    lines = html.unescape(_SUMMARY.sub("", text, count=1)).strip("\n").split("\n")
    return "\n".join(line[2:] if line.startswith("> ") else line[1:] if line.startswith(">") else line
                     for line in lines).strip()


def _attribute_json(value: str) -> Any:
    """An attribute that holds JSON (``arguments``, ``result``), decoded once; the text itself when it is not JSON."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        return value


def _from_content(reply: Reply, content: str) -> None:
    """Feed a reply's HTML content: text, and the reasoning and tool calls in its ``<details>`` blocks."""
    position = 0
    for block in DETAILS.finditer(content):
        if block.start() > position and content[position:block.start()].strip():
            reply.text(content[position:block.start()].strip("\n"))
        position = block.end()
        kind, attributes = block[1], {m[1]: html.unescape(m[2] or m[3] or "") for m in _ATTRIBUTE.finditer(block[2])}
        if kind == "reasoning":
            reply.think(_unquote(block[3]))
        elif kind == "tool_calls" and attributes.get("name"):
            arguments = _attribute_json(attributes.get("arguments", ""))
            call_id = reply.call(attributes.get("id", ""), attributes["name"], arguments)
            if "result" in attributes:
                result = _attribute_json(attributes["result"])
                reply.result(call_id, result if isinstance(result, str) else json.dumps(result, ensure_ascii=False))
        else:  # a tool call written before Open WebUI put its details in attributes, or code run: kept as text
            reply.text(block[0].strip("\n"))
    if content[position:].strip() or position == 0:
        reply.text(content[position:].strip("\n") if position else content)


def _output_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(as_str(as_dict(part).get("text")) for part in parts)


def _from_output(reply: Reply, output: list[Any]) -> None:
    """Feed a reply's Responses-style ``output`` items."""
    for item in output:
        item = as_dict(item)
        kind = item.get("type")
        if kind == "reasoning":
            text = _output_text(item.get("content")) or _output_text(item.get("summary"))
            if text:
                reply.think(text)
        elif kind == "function_call":
            reply.call(as_str(item.get("call_id")) or as_str(item.get("id")), as_str(item.get("name")), item.get("arguments"))
        elif kind == "function_call_output":
            reply.result(as_str(item.get("call_id")), _output_text(item.get("output")), unasked=True)
        elif kind == "message":
            reply.text(_output_text(item.get("content")))


def _user_content(message: dict[str, Any]) -> Any:
    text = as_str(message.get("content"))
    images = [as_str(as_dict(f).get("url")) for f in message.get("files") or []
              if as_dict(f).get("type") == "image" and as_str(as_dict(f).get("url")).startswith(("data:", "http"))]
    if not images:
        return text
    return [{"type": "text", "text": text}, *({"type": "image_url", "image_url": {"url": url}} for url in images)]


def _pieces(message: dict[str, Any], key: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A message as chat messages, and what its metadata keeps."""
    role = as_str(message.get("role"))
    kept: dict[str, Any] = {"id": key}
    kept.update((name, message[name]) for name in _KEPT if message.get(name) not in (None, [], {}, ""))
    usage = message.get("usage")
    if usage is not None and not _chat_usage(usage):
        kept["usage"] = usage
    if role != "assistant":
        if role == "user" and "files" in kept and isinstance(_user_content(message), list):
            kept["files"] = [f for f in kept["files"] if as_dict(f).get("type") != "image"] or None
        return [{"role": role, "content": _user_content(message) if role == "user" else as_str(message.get("content"))}], {
            name: value for name, value in kept.items() if value is not None}
    reply = Reply(f"call_{key}")
    output = message.get("output")
    if isinstance(output, list) and output:
        _from_output(reply, output)
    else:
        _from_content(reply, as_str(message.get("content")))
    pieces = reply.finish()
    if reply.thinking:
        kept["reasoning"] = "\n\n".join(reply.thinking)
    if reply.unanswered:
        kept["unanswered_calls"] = reply.unanswered
    return pieces, kept


def _chat_usage(usage: Any) -> dict[str, Any] | None:
    """Usage in the API's shape (``prompt_tokens``...); Ollama's timings and rates are not that."""
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        return usage
    return None


def _status(message: dict[str, Any]) -> MessageStatus:
    if message.get("error"):
        return "error"
    return "incomplete" if message.get("done") is False else "complete"


def _tree(chat: dict[str, Any], where: str, label: str) -> tuple[list[tuple[str, str | None, dict[str, Any]]], Any]:
    """The chat's messages as ``(id, parent id, message)`` in sibling order, and its current id."""
    history = as_dict(chat.get("history"))
    nodes = history.get("messages")
    if isinstance(nodes, dict):
        items = [(str(key), node) for key, node in nodes.items() if isinstance(node, dict)]
        rank: dict[str, int] = {}
        for _, node in items:
            for i, child in enumerate(node.get("childrenIds") or []):
                rank.setdefault(str(child), i)
        items.sort(key=lambda pair: rank.get(pair[0], 0))
        entries = [(as_str(node.get("id")) or key, node.get("parentId"), node) for key, node in items]
        return [(key, parent if isinstance(parent, str) else None, node) for key, parent, node in entries], \
            history.get("currentId")
    listed = chat.get("messages")
    if not isinstance(listed, list):
        raise FormatError(f"{where}: neither history.messages nor a messages list", file=label)
    entries = []
    previous: str | None = None
    for index, node in enumerate(listed):
        if not isinstance(node, dict):
            raise FormatError(f"{where}.messages[{index}]: expected a message object", file=label)
        key = as_str(node.get("id")) or f"#{index}"
        parent = node.get("parentId", previous)
        entries.append((key, parent if isinstance(parent, str) else None, node))
        previous = key
    return entries, None


def _conversation(item: Any, where: str, report: Report) -> ImportConversation | None:
    label = report.label
    if not isinstance(item, dict):
        raise FormatError(f"{where}: expected a chat object, got {type(item).__name__}", file=label)
    record, chat = (item, as_dict(item["chat"])) if isinstance(item.get("chat"), dict) else ({}, item)
    where = f"{where}.chat" if record else where
    entries, current = _tree(chat, where, label)
    chat_id = as_str(record.get("id")) or as_str(chat.get("id"))
    name = f"{where} (chat {chat_id})" if chat_id else where
    order = tree_order([(key, parent) for key, parent, _ in entries])
    for key in order.lost:
        report.skip(FormatError(f"{name}: message {key} left out, repeated or on a cycle", file=label))
    for key, missing in order.orphans.items():
        report.note(f"{name}: message {key}'s parent {missing} is missing; imported from there as a new root")
    nodes = {key: (parent, node) for key, parent, node in entries}
    messages: list[ImportMessage] = []
    for key in order.keys:
        parent, node = nodes[key]
        if node.get("role") not in ("user", "assistant", "system"):
            raise FormatError(f"{where}.history.messages[{key!r}].role: unknown role {node.get('role')!r}", file=label)
        pieces, kept = _pieces(node, key)
        anchor = None if key in order.orphans else parent
        assistant = node.get("role") == "assistant"
        for n, body in enumerate(pieces):
            last = n == len(pieces) - 1
            piece_key = key if last else f"{key}:{n}"
            checked = checked_message(body, f"{where}.history.messages[{key!r}]", label)
            model = as_str(node.get("model")) if assistant else ""
            messages.append(ImportMessage(
                checked, key=piece_key, parent_key=anchor, created_at=moment(node.get("timestamp")),
                model=model or None, status=_status(node) if last else "complete",
                usage=_chat_usage(node.get("usage")) if last else None,
                metadata={"openwebui": kept} if last else {}))
            anchor = piece_key
    if not messages:
        report.note(f"{name}: no messages to import; left out")
        return None
    head = current if isinstance(current, str) and current in nodes and current in order.keys else newest_leaf(messages)
    created = moment(record.get("created_at")) or moment(chat.get("timestamp"))
    title = as_str(record.get("title")) or as_str(chat.get("title"))
    details = {"id": chat_id or None, "models": chat.get("models"), "tags": chat.get("tags") or None,
               "params": chat.get("params") or None, "pinned": record.get("pinned"),
               "archived": record.get("archived"), "folder_id": record.get("folder_id"),
               "meta": record.get("meta") or None}
    return ImportConversation(
        messages,
        # A chat taken out of the database alone has an empty id: its first message's id stays as it grows.
        key=f"openwebui:{chat_id}" if chat_id else f"openwebui:first:{order.keys[0]}" if order.keys else None,
        title=title or None,
        created_at=created,
        updated_at=moment(record.get("updated_at")) or created,
        metadata={"imported_from": "openwebui",
                  "openwebui": {name: value for name, value in details.items() if value is not None}},
        head_key=head,
    )
