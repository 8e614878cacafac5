"""Importing LangChain's ``SQLChatMessageHistory`` table (``message_store``) from an SQLite database.

Each row is ``(id, session_id, message)``, ``message`` being
``json.dumps(message_to_dict(msg))``: ``{"type": "human" | "ai" | "system" |
"tool" | "function" | "chat", "data": {...}}``. Every session is a
conversation, its rows in id order one chain:

- ``human`` is a user message, ``system`` a system message, ``chat`` keeps its
  own ``role``;
- ``ai`` is an assistant message: its ``tool_calls`` (``{name, args, id}``)
  become the API's, ``usage_metadata`` its usage, ``response_metadata``'s
  ``model_name`` and ``finish_reason`` its model and finish reason;
  ``invalid_tool_calls`` and reasoning in ``additional_kwargs`` go to metadata;
- ``tool`` is the ``tool`` message answering ``tool_call_id`` (an error
  ``status`` and any ``artifact`` go to metadata).

The table keeps no times: messages take the time of the import. The table is
found by its columns, so a custom ``table_name`` imports too.

Keys: a conversation is ``langchain:<session_id>:<hash of its first row>`` (two
databases that reuse a session id stay apart), a message ``<row id>:<hash>``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

from ..errors import FormatError
from ..store.bulk import ImportConversation, ImportMessage
from ._source import PathLike, Report, as_str, checked_message, content_hash
from ._sqlite import Tables, open_readonly

__all__ = ["read_langchain_db"]

_ROLES = {"human": "user", "humanmessagechunk": "user", "ai": "assistant", "aimessagechunk": "assistant",
          "system": "system", "systemmessagechunk": "system", "tool": "tool", "toolmessagechunk": "tool",
          "function": "function", "functionmessagechunk": "function"}


def read_langchain_db(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield one conversation per session of every ``SQLChatMessageHistory`` table in the database."""
    label = os.fspath(path)
    report = Report(label, warnings)
    with open_readonly(path) as connection:
        tables = Tables(connection).with_columns("id", "session_id", "message")
        if not tables:
            raise FormatError("no table with id, session_id and message columns (LangChain's message_store)",
                              file=label)
        for table in tables:
            yield from _table(connection, table, report)


def _table(connection: sqlite3.Connection, table: str, report: Report) -> Iterator[ImportConversation]:
    quoted = table.replace('"', '""')
    sessions = [row[0] for row in connection.execute(
        f'SELECT session_id FROM "{quoted}" GROUP BY session_id ORDER BY MIN(id)')]
    for session in sessions:
        rows = connection.execute(f'SELECT id, message FROM "{quoted}" WHERE session_id IS ? ORDER BY id', (session,))
        messages: list[ImportMessage] = []
        first = ""
        for row_id, raw in rows:
            where = f"{table} row {row_id}"
            try:
                imported = _message(raw, where, report.label)
            except FormatError as error:
                report.skip(error)
                continue
            first = first or content_hash(raw)
            imported.key = f"{row_id}:{content_hash(raw)[:12]}"
            imported.parent_key = messages[-1].key if messages else None
            messages.append(imported)
        if messages:
            yield ImportConversation(
                messages, key=f"langchain:{session}:{first}", title=str(session),
                metadata={"imported_from": "langchain", "langchain": {"table": table, "session_id": session}})



def _content(value: Any) -> Any:
    """Content as the API takes it: a string, or the list of parts when they are text and image parts."""
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") in ("text", "image_url") for p in value):
        return value
    if isinstance(value, list):
        return "".join(p if isinstance(p, str) else as_str(p.get("text")) for p in value if isinstance(p, (str, dict)))
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _message(raw: Any, where: str, label: str) -> ImportMessage:
    try:
        stored = json.loads(raw)
    except (TypeError, json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(f"{where}: message is not JSON", file=label) from exc
    data = stored.get("data") if isinstance(stored, dict) else None
    kind = as_str(stored.get("type")) if isinstance(stored, dict) else ""
    if not isinstance(data, dict):
        raise FormatError(f"{where}: expected {{\"type\", \"data\"}}, as message_to_dict writes", file=label)
    role = as_str(data.get("role")) if kind == "chat" else _ROLES.get(kind.lower(), "")
    if not role:
        raise FormatError(f"{where}.type: unknown message type {kind!r}", file=label)
    body: dict[str, Any] = {"role": role, "content": _content(data.get("content"))}
    kept: dict[str, Any] = {name: data[name] for name in ("id", "name", "artifact", "status", "invalid_tool_calls")
                            if data.get(name) not in (None, [], "", "success")}
    extra = data.get("additional_kwargs") if isinstance(data.get("additional_kwargs"), dict) else {}
    if extra:
        kept["additional_kwargs"] = extra
    if role in ("function",) or (role == "user" and as_str(data.get("name"))):
        body["name"] = as_str(data.get("name")) or "function"
    if role == "tool":
        body["tool_call_id"] = as_str(data.get("tool_call_id"))
    model = finish = usage = None
    if role == "assistant":
        calls = [c for c in data.get("tool_calls") or [] if isinstance(c, dict)]
        if calls:
            body["tool_calls"] = [{"id": as_str(c.get("id")) or f"call_{n}", "type": "function", "function": {
                "name": as_str(c.get("name")), "arguments": json.dumps(c.get("args") or {}, ensure_ascii=False)}}
                for n, c in enumerate(calls)]
            if body["content"] == "":
                body["content"] = None
        metadata = data["response_metadata"] if isinstance(data.get("response_metadata"), dict) else {}
        model = as_str(metadata.get("model_name")) or as_str(metadata.get("model")) or None
        finish = as_str(metadata.get("finish_reason")) or None
        if metadata:
            kept["response_metadata"] = metadata
        usage = _usage(data.get("usage_metadata"))
    return ImportMessage(checked_message(body, where, label), model=model, finish_reason=finish, usage=usage,
                         metadata={"langchain": kept} if kept else {})


def _usage(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not isinstance(value.get("input_tokens"), int):
        return None
    usage: dict[str, Any] = {"prompt_tokens": value["input_tokens"], "completion_tokens": value.get("output_tokens", 0),
                             "total_tokens": value.get("total_tokens", 0)}
    for source, target in (("input_token_details", "prompt_tokens_details"),
                           ("output_token_details", "completion_tokens_details")):
        if isinstance(value.get(source), dict):
            usage[target] = value[source]
    return usage
