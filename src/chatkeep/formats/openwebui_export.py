"""Writing conversations as Open WebUI's import file: what its "Export chats" writes and "Import chats" reads.

The file is a JSON array of chat records ``{id, user_id, title, chat:
{title, models, history: {messages, currentId}, messages, timestamp, ...},
created_at, updated_at, ...}``. Every branch is written: ``history.messages``
is the whole tree (``parentId``, ``childrenIds``), ``history.currentId`` the
head, and ``chat.messages`` the current branch, as Open WebUI keeps them.

Open WebUI keeps a reply that used tools as one assistant message, so an
assistant message with ``tool_calls``, the ``tool`` messages answering them
and the assistant's text that follows are written as one message: its
``output`` holds the ``function_call``, ``function_call_output`` and
``message`` items, and its ``content`` the same as Open WebUI renders it
(``<details type="tool_calls" ...>`` blocks, then the text). Reasoning kept
in metadata by an importer (Open WebUI's, Claude's thinking, DeepSeek's...)
is written as a ``reasoning`` item and a ``<details type="reasoning">``
block. Responses API items are written as the chat messages they amount to;
summaries are left out. Importing the file back gives the same messages,
branches and head.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from ..items import response_item_to_chat
from ..store.base import ConversationRecord, StoredMessage
from ..store.protocol import Store

__all__ = ["write_openwebui"]

#: Where importers keep a reply's reasoning, by the metadata key they use.
_REASONING_KEYS = ("reasoning", "thinking")


@dataclass
class _Group:
    """One Open WebUI message: a user or system message, or a run of assistant and tool messages."""

    members: list[StoredMessage] = field(default_factory=list)
    parent: str | None = None
    children: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.members[-1].id


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(str(p.get("text") or p.get("refusal") or "") for p in parts if isinstance(p, dict))


def _reasoning(message: StoredMessage) -> str:
    for value in message.metadata.values():
        if not isinstance(value, dict):
            continue
        for key in _REASONING_KEYS:
            found = value.get(key)
            if isinstance(found, list):
                found = "\n\n".join(str(item) for item in found if item)
            if isinstance(found, str) and found:
                return found
    return ""


def _tree(store: Store, conversation_id: str) -> tuple[list[StoredMessage], dict[str, str | None]]:
    """Every chat-shaped message, parents first, and each one's parent among them (a left-out one skipped)."""
    found = store.find_messages(conversation_id, kind="chat") + store.find_messages(conversation_id,
                                                                                    kind="response_item")
    by_id = {m.id: m for m in found}
    shown: dict[str, StoredMessage] = {}
    for message in found:
        if message.kind == "response_item":
            chat = response_item_to_chat(message.message)
            if chat is not None:
                shown[message.id] = replace(message, message=chat, kind="chat")
        else:
            shown[message.id] = message
    parent_of: dict[str, str | None] = {}
    for message in shown.values():
        parent = message.parent_id
        while parent is not None and parent not in shown:
            parent = by_id[parent].parent_id if parent in by_id else None
        parent_of[message.id] = parent
    children: dict[str | None, list[str]] = {}
    for message in sorted(shown.values(), key=lambda m: (m.created_at, m.id)):
        children.setdefault(parent_of[message.id], []).append(message.id)
    ordered: list[StoredMessage] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        key = stack.pop()
        ordered.append(shown[key])
        stack.extend(reversed(children.get(key, [])))
    return ordered, parent_of


def _groups(ordered: list[StoredMessage], parent_of: dict[str, str | None], head: str | None) -> dict[str, _Group]:
    """Messages folded into Open WebUI messages; the map is keyed by every member's id."""
    child_count: dict[str | None, int] = {}
    for message in ordered:
        child_count[parent_of[message.id]] = child_count.get(parent_of[message.id], 0) + 1
    group_of: dict[str, _Group] = {}
    for message in ordered:
        parent = parent_of[message.id]
        before = group_of.get(parent) if parent is not None else None
        if (before is not None and message.role in ("assistant", "tool") and child_count.get(parent) == 1
                and parent != head and _open_run(before.members[-1])):
            before.members.append(message)
            group_of[message.id] = before
        else:
            group_of[message.id] = _Group([message], parent)
    return group_of


def _open_run(message: StoredMessage) -> bool:
    """Whether a reply goes on after this message: it called tools, or it is a tool's answer."""
    return message.role == "tool" or (message.role == "assistant" and bool(message.message.get("tool_calls")))


def _output(group: _Group, reasoning: str) -> tuple[list[dict[str, Any]], str]:
    """A reply's ``output`` items and its content as Open WebUI renders it."""
    items: list[dict[str, Any]] = []
    content = ""
    if reasoning:
        items.append({"type": "reasoning", "status": "completed",
                      "content": [{"type": "output_text", "text": reasoning}]})
        quoted = "\n".join(f"> {line}" for line in html.escape(reasoning, quote=False).split("\n"))
        content += f'<details type="reasoning" done="true">\n<summary>Thought</summary>\n{quoted}\n</details>\n'
    results = {m.message.get("tool_call_id"): _text(m.message.get("content")) for m in group.members if m.role == "tool"}
    for member in group.members:
        body = member.message
        if member.role == "tool":
            items.append({"type": "function_call_output", "call_id": body.get("tool_call_id"), "status": "completed",
                          "output": [{"type": "input_text", "text": _text(body.get("content"))}]})
            continue
        text = _text(body.get("content"))
        if body.get("content") is not None or not body.get("tool_calls"):
            items.append({"type": "message", "role": "assistant", "status": "completed",
                          "content": [{"type": "output_text", "text": text}]})
            content += text + ("\n" if text and body.get("tool_calls") else "")
        for call in body.get("tool_calls") or []:
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            arguments = str(function.get("arguments") or "")
            items.append({"type": "function_call", "call_id": call.get("id"), "name": function.get("name"),
                          "arguments": arguments, "status": "completed"})
            attributes = (f'id="{html.escape(str(call.get("id")))}" name="{html.escape(str(function.get("name")))}"'
                          f' arguments="{html.escape(json.dumps(arguments, ensure_ascii=False))}"')
            if call.get("id") in results:
                attributes += f' result="{html.escape(json.dumps(results[call.get("id")], ensure_ascii=False))}"'
            content += (f'<details type="tool_calls" done="true" {attributes}>\n<summary>Tool Executed</summary>\n'
                        "</details>\n")
    return items, content


def _message(group: _Group, children: list[str]) -> dict[str, Any]:
    first, last = group.members[0], group.members[-1]
    out: dict[str, Any] = {"id": group.id, "parentId": group.parent, "childrenIds": children,
                           "role": "assistant" if last.role == "tool" else last.role,
                           "timestamp": int(first.created_at.timestamp())}
    if first.role in ("user", "system") and len(group.members) == 1:
        content = first.message.get("content")
        out["content"] = _text(content)
        images = [p["image_url"]["url"] for p in content if isinstance(p, dict) and p.get("type") == "image_url"
                  and isinstance(p.get("image_url"), dict)] if isinstance(content, list) else []
        if images:
            out["files"] = [{"type": "image", "url": url} for url in images]
        return out
    reasoning = next((found for found in map(_reasoning, group.members) if found), "")
    items, content = _output(group, reasoning)
    tooled = any(m.role == "tool" or m.message.get("tool_calls") for m in group.members)
    out["content"] = content
    if tooled or reasoning:
        out["output"] = items
    model = next((m.model for m in reversed(group.members) if m.model), None)
    if model:
        out["model"] = model
    if last.usage:
        out["usage"] = last.usage
    out["done"] = last.status != "incomplete"
    if last.status == "error":
        out["error"] = {"content": last.error or "error"}
    return out


def _record(store: Store, record: ConversationRecord) -> dict[str, Any]:
    ordered, parent_of = _tree(store, record.id)
    head = record.head_id if record.head_id in parent_of else None
    group_of = _groups(ordered, parent_of, head)
    groups: dict[str, _Group] = {}
    for message in ordered:
        group = group_of[message.id]
        if group.id not in groups:
            groups[group.id] = group
            if group.parent is not None:
                group_of[group.parent].children.append(group.id)
    for group in groups.values():
        if group.parent is not None:
            group.parent = group_of[group.parent].id
    messages = {group.id: _message(group, group.children) for group in groups.values()}
    current = group_of[head].id if head is not None else None
    branch: list[dict[str, Any]] = []
    at = current
    while at is not None:
        branch.append(messages[at])
        at = messages[at]["parentId"]
    source = record.metadata.get("openwebui") if record.metadata.get("imported_from") == "openwebui" else None
    kept = source if isinstance(source, dict) else {}
    models = sorted({m["model"] for m in messages.values() if m.get("model")})
    created, updated = int(record.created_at.timestamp()), int(record.updated_at.timestamp())
    return {
        "id": record.id, "user_id": record.owner or "", "title": record.title or "",
        "chat": {"id": record.id, "title": record.title or "", "models": kept.get("models") or models,
                 "params": kept.get("params") or {}, "history": {"messages": messages, "currentId": current},
                 "messages": branch[::-1], "tags": kept.get("tags") or [], "timestamp": created * 1000,
                 "files": []},
        "created_at": created, "updated_at": updated, "share_id": None,
        "archived": bool(kept.get("archived")), "pinned": bool(kept.get("pinned")),
        "meta": kept.get("meta") or {}, "folder_id": kept.get("folder_id"),
    }


def write_openwebui(out: TextIO, store: Store, records: Iterator[ConversationRecord]) -> int:
    """Write the records' conversations, whole trees, as one JSON array; return how many."""
    count = 0
    out.write("[")
    for record in records:
        text = json.dumps(_record(store, record), ensure_ascii=False, indent=2)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: only its \\u escape can be written as UTF-8
            text = json.dumps(_record(store, record), indent=2)
        out.write(("," if count else "") + "\n" + text)
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
