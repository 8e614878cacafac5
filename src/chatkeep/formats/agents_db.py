"""Importing an OpenAI Agents SDK session database: ``SQLiteSession`` and ``AdvancedSQLiteSession``.

``SQLiteSession`` keeps ``agent_sessions (session_id, created_at, ...)`` and
``agent_messages (id, session_id, message_data, created_at)``, each
``message_data`` one Responses API input item as JSON. Every session is a
conversation and every item a stored Responses item (``kind="response_item"``),
kept as it was: messages, function calls and their outputs, reasoning.

``AdvancedSQLiteSession`` adds ``message_structure``, which places items on
branches (``create_branch_from_turn`` starts a branch that shares the items
before that turn), and ``turn_usage``. Each branch becomes a chatkeep branch
from the item where it leaves the one it was copied from; the head is the tip
of ``main`` (where a session reopened by the SDK starts), else of the branch
written last. A turn's usage (requests, input, output and total tokens, their
details) goes to the turn's last item on its branch.

Tables are found by their columns, so custom ``sessions_table`` and
``messages_table`` names import too. Times are the rows' ``created_at`` (UTC).

Keys: a conversation is ``agents:<session_id>:<hash of its first item>`` (two
databases that reuse a session id stay apart), an item ``<row id>:<hash>``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

from ..errors import FormatError
from ..store.bulk import ImportConversation, ImportMessage
from ._source import PathLike, Report, content_hash, iso_time
from ._sqlite import Tables, open_readonly

__all__ = ["read_agents_db"]


def read_agents_db(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield one conversation per session, its branches included."""
    label = os.fspath(path)
    report = Report(label, warnings)
    with open_readonly(path) as connection:
        tables = Tables(connection)
        found = tables.with_columns("id", "session_id", "message_data")
        if not found:
            raise FormatError("no table with session_id and message_data columns (an Agents SDK session)", file=label)
        structured = tables.has("message_structure", "session_id", "message_id", "branch_id", "sequence_number")
        usage = tables.has("turn_usage", "session_id", "branch_id", "user_turn_number")
        for table in found:
            yield from _sessions(connection, table, structured, usage, report)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sessions(connection: sqlite3.Connection, table: str, structured: bool, usage: bool,
              report: Report) -> Iterator[ImportConversation]:
    sessions = [row[0] for row in connection.execute(
        f"SELECT session_id FROM {_q(table)} GROUP BY session_id ORDER BY MIN(id)")]
    for session in sessions:
        rows = {row_id: (data, created) for row_id, data, created in connection.execute(
            f"SELECT id, message_data, created_at FROM {_q(table)} WHERE session_id = ? ORDER BY id", (session,))}
        branches = _branches(connection, session) if structured else {}
        if not branches:
            branches = {"main": [(row_id, None) for row_id in rows]}
        conversation = _conversation(session, table, rows, branches, report,
                                     _usage(connection, session) if usage and structured else {})
        if conversation is not None:
            yield conversation


def _branches(connection: sqlite3.Connection, session: str) -> dict[str, list[tuple[int, int | None]]]:
    """Each branch's ``(message id, its turn on the branch)`` in order, branches in the order they were started."""
    branches: dict[str, list[tuple[int, int | None]]] = {}
    for branch, message_id, turn in connection.execute(
            "SELECT branch_id, message_id, branch_turn_number FROM message_structure WHERE session_id = ?"
            " ORDER BY sequence_number", (session,)):
        branches.setdefault(branch, []).append((message_id, turn))
    return branches


def _usage(connection: sqlite3.Connection, session: str) -> dict[tuple[str, int], dict[str, Any]]:
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for branch, turn, requests, prompt, completion, total, prompt_details, completion_details in connection.execute(
            "SELECT branch_id, user_turn_number, requests, input_tokens, output_tokens, total_tokens,"
            " input_tokens_details, output_tokens_details FROM turn_usage WHERE session_id = ?", (session,)):
        usage: dict[str, Any] = {"prompt_tokens": prompt or 0, "completion_tokens": completion or 0,
                                 "total_tokens": total or 0, "requests": requests or 0}
        for name, value in (("prompt_tokens_details", prompt_details), ("completion_tokens_details", completion_details)):
            try:
                details = json.loads(value) if isinstance(value, str) else value
            except (json.JSONDecodeError, RecursionError):
                details = None
            if isinstance(details, dict) and details:
                usage[name] = details
        found[(branch, turn)] = usage
    return found


def _conversation(session: str, table: str, rows: dict[int, tuple[Any, Any]],
                  branches: dict[str, list[tuple[int, int | None]]], report: Report,
                  usage: dict[tuple[str, int], dict[str, Any]]) -> ImportConversation | None:
    label = report.label
    items: dict[int, ImportMessage] = {}
    order: list[int] = []
    tips: dict[str, str | None] = {}
    for branch, entries in branches.items():
        parent: str | None = None
        last_of_turn: dict[int, int] = {}
        for message_id, turn in entries:
            if message_id not in items:
                if message_id not in rows:
                    report.skip(FormatError(f"session {session!r}, branch {branch!r}: item {message_id} is missing",
                                            file=label))
                    continue
                imported = _item(message_id, *rows[message_id], f"{table} row {message_id}", report)
                if imported is None:
                    continue
                imported.parent_key = parent
                items[message_id] = imported
                order.append(message_id)
            elif items[message_id].parent_key != parent:
                report.note(f"session {session!r}, branch {branch!r}: item {message_id} follows another item there"
                            " than on the branch it was first seen on; it stays where it was first seen")
            parent = items[message_id].key
            if turn is not None:
                last_of_turn[turn] = message_id
        tips[branch] = parent
        for turn, message_id in last_of_turn.items():
            found = usage.get((branch, turn))
            if found is not None and message_id in items and items[message_id].usage is None:
                items[message_id].usage = found
    if not order:
        return None
    messages = [items[message_id] for message_id in order]
    head = tips.get("main") or tips[list(branches)[-1]]
    first_data = rows[order[0]][0]
    created = [m.created_at for m in messages if m.created_at is not None]
    return ImportConversation(
        messages, key=f"agents:{session}:{content_hash(first_data)[:16]}", title=session,
        created_at=min(created) if created else None, updated_at=max(created) if created else None,
        metadata={"imported_from": "agents", "agents": {"session_id": session, "table": table,
                                                        "branches": sorted(branches)}},
        head_key=head)


def _item(row_id: int, data: Any, created: Any, where: str, report: Report) -> ImportMessage | None:
    try:
        item = json.loads(data)
    except (TypeError, json.JSONDecodeError, RecursionError):
        item = None
    if not isinstance(item, dict):
        report.skip(FormatError(f"{where}: message_data is not a JSON object (a Responses item)", file=report.label))
        return None
    return ImportMessage(item, key=f"{row_id}:{content_hash(data)[:12]}", created_at=iso_time(created),
                         kind="response_item")
