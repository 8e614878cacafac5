"""Importing llm's ``logs.db``: the classic ``responses`` tables, and the message store of llm 0.32 and later.

Both layouts can be in one database (llm 0.32 stopped writing ``responses``
but keeps what older versions logged there), and both are imported.

Classic (llm up to 0.31): a conversation is a ``conversations`` row and its
``responses`` in order, each read with its ``tool_calls``, ``tool_results``,
prompt ``attachments`` and prompt and system ``fragments`` (the prompt llm
sent is the fragments, then the prompt), and made into messages as
:mod:`._llm_rows` describes, with the same keys as ``llm logs --json`` gives.

Message store (llm 0.32+): messages are content-addressed (``messages``,
their ``parts``), ``threads`` point at their tip and ``turns`` record each
model call (model, tokens, duration, time). A thread and the threads forked
from it are one conversation: a fork is a branch, and the first thread's tip
is the head. Parts map to the API's shape: text to content (fragments
resolved), ``tool_call`` parts to ``tool_calls``, each ``tool_result`` part to
a ``tool`` message, image attachments to image parts (from the stored bytes,
or the URL); reasoning is kept apart from the answer in
``metadata["llm"]["reasoning"]``. A turn's model, usage and finish reason go to
the message it ended on; every message takes the time of the first turn that
reached it.

Keys: a classic conversation is ``llm:<conversation id>``, a message-store one
``llm:thread:<first thread id>`` with messages keyed by their hash.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from ..store.bulk import ImportConversation, ImportMessage
from ._llm_rows import row_messages
from ._source import PathLike, Report, iso_time
from ._sqlite import Tables, open_readonly
from .llm_parts import PartReader

__all__ = ["read_llm_db"]

_CHUNK = 500


def read_llm_db(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield the classic conversations, then the message store's, one at a time."""
    label = os.fspath(path)
    report = Report(label, warnings)
    with open_readonly(path) as connection:
        connection.row_factory = sqlite3.Row
        tables = Tables(connection)
        if tables.has("responses", "id", "prompt", "response", "conversation_id"):
            yield from _classic(connection, tables)
        if tables.has("threads", "id", "tip_message_hash") and tables.has("parts", "message_hash", "type"):
            yield from _store(connection, tables, report)


def _column(tables: Tables, table: str, column: str) -> str:
    """The column, or NULL under its name for an older database that lacks it."""
    return f'"{column}"' if tables.has(table, column) else f'NULL AS "{column}"'


def _in(values: Sequence[Any]) -> Iterator[tuple[str, Sequence[Any]]]:
    for start in range(0, len(values), _CHUNK):
        chunk = values[start:start + _CHUNK]
        yield ",".join("?" * len(chunk)), chunk


# -- classic ------------------------------------------------------------------------------------

_RESPONSE_COLUMNS = ("id", "model", "prompt", "system", "options_json", "response", "response_json",
                     "conversation_id", "duration_ms", "datetime_utc", "input_tokens", "output_tokens",
                     "token_details", "resolved_model", "reasoning")


def _classic(connection: sqlite3.Connection, tables: Tables) -> Iterator[ImportConversation]:
    columns = ", ".join(_column(tables, "responses", c) for c in _RESPONSE_COLUMNS)
    groups = connection.execute(
        "SELECT conversation_id, MIN(rowid) AS first FROM responses GROUP BY conversation_id ORDER BY first").fetchall()
    names = {}
    if tables.has("conversations", "id", "name", "model"):
        names = {row["id"]: (row["name"], row["model"])
                 for row in connection.execute("SELECT id, name, model FROM conversations")}
    for group in groups:
        conversation = group["conversation_id"]
        if conversation is None:
            found = connection.execute(f"SELECT {columns} FROM responses WHERE conversation_id IS NULL ORDER BY rowid")
            for row in found.fetchall():
                yield _classic_conversation(connection, tables, f"response:{row['id']}", [dict(row)], (None, None))
            continue
        rows = [dict(row) for row in connection.execute(
            f"SELECT {columns} FROM responses WHERE conversation_id = ? ORDER BY rowid", (conversation,))]
        yield _classic_conversation(connection, tables, conversation, rows, names.get(conversation, (None, None)))


def _classic_conversation(connection: sqlite3.Connection, tables: Tables, group: str, rows: list[dict[str, Any]],
                          name: tuple[Any, Any]) -> ImportConversation:
    for row in rows:
        _add_classic_extras(connection, tables, row)
    messages = row_messages(rows)
    title, model = name
    return ImportConversation(
        messages, key=f"llm:{group}", title=title if isinstance(title, str) and title else None,
        created_at=messages[0].created_at, updated_at=messages[-1].created_at,
        metadata={"imported_from": "llm", "llm": {key: value for key, value in (
            ("conversation_id", group if ":" not in group else None), ("model", model)) if value is not None}})


def _fragments(connection: sqlite3.Connection, tables: Tables, table: str, response_id: str) -> list[str]:
    if not tables.has(table, "response_id", "fragment_id") or not tables.has("fragments", "id", "content"):
        return []
    return [row[0] or "" for row in connection.execute(
        f'SELECT f.content FROM "{table}" p JOIN fragments f ON f.id = p.fragment_id WHERE p.response_id = ?'
        ' ORDER BY p."order"', (response_id,))]


def _add_classic_extras(connection: sqlite3.Connection, tables: Tables, row: dict[str, Any]) -> None:
    """Fill a responses row with what ``llm logs --json`` shows beside it: calls, results, attachments, fragments."""
    response_id = row["id"]
    row["prompt_fragments"] = _fragments(connection, tables, "prompt_fragments", response_id)
    row["system_fragments"] = _fragments(connection, tables, "system_fragments", response_id)
    if tables.has("tool_calls", "response_id", "name", "arguments"):
        row["tool_calls"] = [dict(r) for r in connection.execute(
            f"SELECT name, arguments, {_column(tables, 'tool_calls', 'tool_call_id')} FROM tool_calls"
            " WHERE response_id = ? ORDER BY id", (response_id,))]
    if tables.has("tool_results", "response_id", "name", "output"):
        row["tool_results"] = [dict(r) for r in connection.execute(
            f"SELECT name, output, {_column(tables, 'tool_results', 'tool_call_id')},"
            f" {_column(tables, 'tool_results', 'exception')} FROM tool_results WHERE response_id = ? ORDER BY id",
            (response_id,))]
    if tables.has("prompt_attachments", "response_id", "attachment_id") and tables.has("attachments", "id"):
        row["attachments"] = [_attachment(dict(r)) for r in connection.execute(
            "SELECT a.id, a.type, a.path, a.url, a.content FROM prompt_attachments p"
            ' JOIN attachments a ON a.id = p.attachment_id WHERE p.response_id = ? ORDER BY p."order"', (response_id,))]
    if tables.has("tool_responses", "tool_id", "response_id") and tables.has("tools", "id", "name"):
        row["tools"] = [dict(r) for r in connection.execute(
            "SELECT t.name, t.description, t.input_schema FROM tool_responses r JOIN tools t ON t.id = r.tool_id"
            " WHERE r.response_id = ? ORDER BY t.id", (response_id,))]


def _attachment(found: dict[str, Any]) -> dict[str, Any]:
    """An attachment as metadata keeps it; an image's stored bytes become a data URL to send."""
    content = found.pop("content", None)
    kept = {key: value for key, value in found.items() if value is not None}
    if isinstance(content, bytes):
        kept["content_length"] = len(content)
        if str(kept.get("type", "")).startswith("image/") and not kept.get("url"):
            kept["url"] = f"data:{kept['type']};base64,{base64.b64encode(content).decode('ascii')}"
    return kept


# -- the message store ------------------------------------------------------------------------------

def _store(connection: sqlite3.Connection, tables: Tables, report: Report) -> Iterator[ImportConversation]:
    threads = [dict(row) for row in connection.execute(
        f"SELECT id, name, tip_message_hash, {_column(tables, 'threads', 'forked_from')},"
        f" {_column(tables, 'threads', 'datetime_utc')} FROM threads ORDER BY rowid")]
    by_id = {thread["id"]: thread for thread in threads}
    groups: dict[str, list[dict[str, Any]]] = {}
    for thread in threads:
        root, seen = thread, {thread["id"]}
        while root.get("forked_from") in by_id and root["forked_from"] not in seen:
            root = by_id[root["forked_from"]]
            seen.add(root["id"])
        groups.setdefault(root["id"], []).append(thread)
    for root_id, members in groups.items():
        conversation = _thread_conversation(connection, tables, by_id[root_id], members, report)
        if conversation is not None:
            yield conversation


def _chain(connection: sqlite3.Connection, tip: str, known: dict[str, dict[str, Any]]) -> list[str]:
    """Hashes from ``tip`` up to the first one already known (or the root), tip first."""
    out: list[str] = []
    current: str | None = tip
    while current is not None and current not in known:
        row = connection.execute("SELECT hash, parent_hash, role FROM messages WHERE hash = ?", (current,)).fetchone()
        if row is None:
            break
        known[current] = dict(row)
        out.append(current)
        current = row["parent_hash"]
    return out


def _turns(connection: sqlite3.Connection, tables: Tables, thread_ids: list[str]) -> list[dict[str, Any]]:
    if not tables.has("turns", "thread_id", "tip_message_hash"):
        return []
    columns = ", ".join(_column(tables, "turns", c) for c in (
        "id", "thread_id", "tip_message_hash", "model", "resolved_model", "input_tokens", "output_tokens",
        "token_details", "duration_ms", "datetime_utc", "response_json"))
    found: list[dict[str, Any]] = []
    for marks, chunk in _in(thread_ids):
        found += [dict(r) for r in connection.execute(
            f"SELECT {columns} FROM turns WHERE thread_id IN ({marks}) ORDER BY datetime_utc, rowid", chunk)]
    return found


def _parts(connection: sqlite3.Connection, tables: Tables, hashes: list[str]) -> dict[str, list[dict[str, Any]]]:
    parts: dict[str, list[dict[str, Any]]] = {}
    for marks, chunk in _in(hashes):
        for row in connection.execute(
                f"SELECT id, message_hash, position, type, tool_name, text, payload FROM parts"
                f" WHERE message_hash IN ({marks}) ORDER BY message_hash, position", chunk):
            part = dict(row)
            try:
                part["payload"] = json.loads(part["payload"]) if part["payload"] else {}
            except (json.JSONDecodeError, RecursionError):
                part["payload"] = {}
            parts.setdefault(part["message_hash"], []).append(part)
    return parts


def _thread_conversation(connection: sqlite3.Connection, tables: Tables, root: dict[str, Any],
                         members: list[dict[str, Any]], report: Report) -> ImportConversation | None:
    turns = _turns(connection, tables, [thread["id"] for thread in members])
    known: dict[str, dict[str, Any]] = {}
    times: dict[str, Any] = {}
    for turn in turns:  # oldest first: a message takes the time of the first turn that reached it
        for found in _chain(connection, turn["tip_message_hash"], known) if turn["tip_message_hash"] else []:
            times[found] = iso_time(turn["datetime_utc"])
    for thread in members:
        for found in _chain(connection, thread["tip_message_hash"], known) if thread["tip_message_hash"] else []:
            times[found] = iso_time(thread.get("datetime_utc"))
    if not known:
        return None
    ordered = _parents_first(known)
    reader = PartReader(connection, tables, _parts(connection, tables, ordered))
    ends = {turn["tip_message_hash"]: turn for turn in turns}
    messages: list[ImportMessage] = []
    last_piece: dict[str, str] = {}
    for hash_ in ordered:
        row = known[hash_]
        parent = last_piece.get(row["parent_hash"]) if row["parent_hash"] else None
        pieces = reader.message(hash_, row["role"], report)
        for n, (body, kept) in enumerate(pieces):
            last = n == len(pieces) - 1
            key = hash_ if last else f"{hash_}:{n}"
            imported = ImportMessage(body, key=key, parent_key=parent, created_at=times.get(hash_),
                                     metadata={"llm": kept} if kept else {})
            if last and hash_ in ends:
                _turn_details(imported, ends[hash_])
            messages.append(imported)
            parent = key
        last_piece[hash_] = parent or hash_
    head = last_piece.get(root["tip_message_hash"]) if root["tip_message_hash"] else None
    dated = [m.created_at for m in messages if m.created_at is not None]
    return ImportConversation(
        messages, key=f"llm:thread:{root['id']}", title=root.get("name") or None,
        created_at=min(dated) if dated else None, updated_at=max(dated) if dated else None,
        metadata={"imported_from": "llm", "llm": {"thread_id": root["id"],
                                                  "forks": [t["id"] for t in members if t is not root]}},
        head_key=head)


def _parents_first(known: dict[str, dict[str, Any]]) -> list[str]:
    """Hashes with each parent before its children (siblings in the order they were stored)."""
    children: dict[str | None, list[str]] = {}
    for hash_, row in known.items():
        parent = row["parent_hash"] if row["parent_hash"] in known else None
        children.setdefault(parent, []).append(hash_)
    out: list[str] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        hash_ = stack.pop()
        out.append(hash_)
        stack.extend(reversed(children.get(hash_, [])))
    return out


def _turn_details(imported: ImportMessage, turn: dict[str, Any]) -> None:
    """What a turn (one model call) knew, on the message it ended on."""
    imported.model = turn.get("resolved_model") or turn.get("model") or None
    prompt, completion = turn.get("input_tokens"), turn.get("output_tokens")
    if isinstance(prompt, int) or isinstance(completion, int):
        imported.usage = {"prompt_tokens": prompt or 0, "completion_tokens": completion or 0,
                          "total_tokens": (prompt or 0) + (completion or 0)}
        try:
            details = json.loads(turn["token_details"]) if turn.get("token_details") else None
        except (json.JSONDecodeError, RecursionError):
            details = None
        if isinstance(details, dict) and details:
            imported.usage["details"] = details
    try:
        response = json.loads(turn["response_json"]) if turn.get("response_json") else None
    except (json.JSONDecodeError, RecursionError):
        response = None
    if isinstance(response, dict) and isinstance(response.get("finish_reason"), str):
        imported.finish_reason = response["finish_reason"]
    kept = imported.metadata.setdefault("llm", {})
    kept["turn_id"] = turn["id"]
    if turn.get("duration_ms") is not None:
        kept["duration_ms"] = turn["duration_ms"]
