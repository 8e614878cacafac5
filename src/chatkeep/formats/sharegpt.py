"""Importing ShareGPT datasets: a JSON array (or JSON Lines) of records, one conversation each.

Two layouts are read: the original ``{"conversations": [{"from", "value"}]}``
with optional ``system``, ``tools`` and ``id``, and the variant with OpenAI
keys ``{"messages": [{"role", "content"}], "images": [...]}``. Speakers map to
roles: ``human`` to user, ``gpt`` to assistant, ``system`` to system.
``function_call`` (a JSON ``{"name", "arguments"}``, or a list of them)
becomes an assistant message with ``tool_calls``, and each ``observation``
the ``tool`` message answering the oldest unanswered call, under synthetic
ids (``call_<turn>_<n>``) so the conversation is valid for the API. ``tools``
(often a JSON string of bare function schemas) is kept in metadata in the
API's ``{"type": "function", "function": ...}`` shape; ``images`` are kept as
paths, and ``<image>`` placeholders stay in the text: no URL is invented.

Keys: a conversation is ``sharegpt:<hash of the record>`` (its ``id`` included,
since datasets reuse ids such as ``identity_0``), its messages their positions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from ..errors import FormatError
from ..messages import MessageDict
from ..store.bulk import ImportConversation, ImportMessage
from ._source import (
    MAX_DEPTH,
    PathLike,
    Report,
    checked_message,
    content_hash,
    json_array,
    json_lines,
    open_plain,
    too_deep,
)

__all__ = ["read_sharegpt"]

_ROLES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "bing": "assistant", "chatgpt": "assistant",
    "bard": "assistant", "model": "assistant",
    "system": "system",
    "function_call": "function_call", "tool_call": "function_call",
    "observation": "observation", "tool": "observation", "function": "observation",
}


def read_sharegpt(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield one conversation per valid record; invalid records go to ``warnings`` (or raise without it)."""
    with open_plain(path) as stream:
        label = str(path)
        report = Report(label, warnings)
        for where, line, record in _records(stream, label):
            if isinstance(record, FormatError):
                report.skip(record)
                continue
            try:
                conversation = _conversation(record, where, label, line)
            except FormatError as error:
                report.skip(error)
                continue
            yield conversation


def _records(stream: IO[bytes], label: str) -> Iterator[tuple[str, int | None, Any]]:
    """Each record with its place: ``records[3]`` in a JSON array, or a line of JSON Lines."""
    position = stream.tell()  # past a byte order mark
    start = stream.read(1024).lstrip()[:1]
    stream.seek(position)
    if start == b"{":
        for line, value in json_lines(stream, label):
            yield "", line, value
        return
    for index, value in json_array(stream, label, "records"):
        yield f"records[{index}]", None, value


def _prefix(where: str, field: str) -> str:
    return f"{where}.{field}" if where else field


def _tools(value: Any) -> Any:
    """``tools`` in the API's shape when it is a list of function schemas, else as it was."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
        if too_deep(value):
            return None
    if isinstance(value, list) and all(isinstance(tool, dict) for tool in value):
        return [tool if "type" in tool else {"type": "function", "function": tool} for tool in value]
    return value


def _calls(value: str, turn: int, field: str, label: str, line: int | None) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(f"{field}.value: a function_call must be JSON {{\"name\", \"arguments\"}}",
                          file=label, line=line) from exc
    if too_deep(parsed):
        raise FormatError(f"{field}.value: nested deeper than {MAX_DEPTH} levels", file=label, line=line)
    calls = parsed if isinstance(parsed, list) else [parsed]
    result = []
    for n, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise FormatError(f"{field}.value: a function call needs a name", file=label, line=line)
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        result.append({"id": f"call_{turn}_{n}", "type": "function",
                       "function": {"name": call["name"], "arguments": arguments}})
    return result


def _is_openai_message(item: dict[str, Any]) -> bool:
    role = item.get("role")
    if role in ("user", "assistant", "system", "developer"):
        return "from" not in item and "value" not in item
    return role == "tool" and isinstance(item.get("tool_call_id"), str)


def _turns(record: dict[str, Any], where: str, label: str, line: int | None) -> tuple[str, list[Any]]:
    for name in ("conversations", "messages"):
        if name in record:
            turns = record[name]
            if not isinstance(turns, list):
                raise FormatError(f"{_prefix(where, name)}: expected a list of turns", file=label, line=line)
            return name, turns
    raise FormatError(f"{where or 'record'}: no conversations or messages list", file=label, line=line)


def _messages(record: dict[str, Any], where: str, label: str, line: int | None) -> list[MessageDict]:
    """The record's turns as validated API messages; errors name the turn, as ``records[3].conversations[2].from``."""
    name, turns = _turns(record, where, label, line)
    messages: list[MessageDict] = []
    system = record.get("system")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    pending: list[str] = []
    for turn, item in enumerate(turns):
        field = _prefix(where, f"{name}[{turn}]")
        if not isinstance(item, dict):
            raise FormatError(f"{field}: expected an object", file=label, line=line)
        if name == "messages" and _is_openai_message(item):
            messages.append(checked_message(item, field, label, line))  # already the API's shape: every key kept
            continue
        speaker, text = item.get("from", item.get("role")), item.get("value", item.get("content"))
        kind = _ROLES.get(speaker) if isinstance(speaker, str) else None
        if kind is None:
            raise FormatError(f"{field}.from: unknown speaker {speaker!r}", file=label, line=line)
        if not isinstance(text, str):
            raise FormatError(f"{field}.value: expected a string", file=label, line=line)
        if kind == "function_call":
            calls = _calls(text, turn, field, label, line)
            pending += [call["id"] for call in calls]
            messages.append({"role": "assistant", "tool_calls": calls})
        elif kind == "observation":
            if not pending:
                raise FormatError(f"{field}: an observation with no function_call before it", file=label, line=line)
            messages.append({"role": "tool", "tool_call_id": pending.pop(0), "content": text})
        else:
            messages.append({"role": kind, "content": text})
    return messages


def _conversation(record: Any, where: str, label: str, line: int | None) -> ImportConversation:
    if not isinstance(record, dict):
        raise FormatError(f"{where or 'record'}: expected an object, got {type(record).__name__}",
                          file=label, line=line)
    messages = _messages(record, where, label, line)
    imported = [ImportMessage(message, key=str(i), parent_key=str(i - 1) if i else None)
                for i, message in enumerate(messages)]
    metadata: dict[str, Any] = {"imported_from": "sharegpt"}
    if isinstance(record.get("id"), (str, int)) and not isinstance(record.get("id"), bool):
        metadata["sharegpt_id"] = record["id"]
    if "tools" in record:
        metadata["tools"] = _tools(record["tools"])
    if isinstance(record.get("images"), list):
        metadata["images"] = record["images"]
    return ImportConversation(imported, key=f"sharegpt:{content_hash(record)}", metadata=metadata)
