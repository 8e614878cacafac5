"""Telling import formats apart by their content, never by the file's name.

- An SQLite database is told by its tables: llm's ``logs.db``, an Agents SDK
  session, LangChain's ``message_store``.
- A zip holding ``conversations.json`` (or, as ChatGPT's larger exports do,
  ``conversations-000.json`` and its next parts) is a ChatGPT, claude.ai or DeepSeek
  export, told as that file is.
- A JSON array is told by its first element: ``mapping`` is a ChatGPT
  conversation (a DeepSeek one when its messages have ``fragments``),
  ``chat_messages`` a claude.ai conversation, ``chat`` or ``history`` an Open
  WebUI chat, ``conversation_id`` with ``prompt`` and ``response`` a row of
  ``llm logs --json``, ``conversations`` (or ``messages`` beside it) a ShareGPT
  record, ``role`` a chat message of the tutorial's file.
- Lines of JSON objects with ``messages`` are fine-tuning JSONL, with
  ``conversations`` ShareGPT.
- A JSON object is told by its keys, read as they stream by: ``mapping`` (one
  ChatGPT conversation), ``conversationId`` with ``messages`` or
  ``messagesTree`` (LibreChat), ``history`` as a list (Chatbot UI) or as an
  object (one Open WebUI chat), ``chat`` (one Open WebUI record),
  ``data.biz_data.chat_messages`` (DeepSeek), ``conversations`` of
  ``{conversation, responses}`` (Grok), ``chunkedPrompt`` (Google AI Studio),
  ``chat_messages`` (one claude.ai conversation).

Only the first element (its ``mapping`` a node at a time, and once that is a
large part of the file, the file's bytes searched for DeepSeek's keys), the
first few lines, or the object's keys up to the first that decides, are read.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

import ijson

from ..errors import FormatError
from ._scan import JsonScanner, ScanError
from ._source import (
    MAX_DEPTH,
    READ_ERRORS,
    PathLike,
    first_line,
    open_export,
    open_export_archive,
    open_plain,
    too_deep,
)
from ._sqlite import database_format, is_sqlite

__all__ = ["DATABASE_FORMATS", "IMPORT_FORMATS", "detect_format"]

#: The formats ``read_conversations`` reads.
IMPORT_FORMATS = ("messages", "jsonl", "chatgpt", "sharegpt", "claude", "openwebui", "librechat", "chatbotui", "llm",
                  "deepseek", "grok", "aistudio", "llm-db", "agents-db", "langchain-db")
#: The formats that are SQLite databases, opened read-only.
DATABASE_FORMATS = ("llm-db", "agents-db", "langchain-db")

_PEEK_LINES = 20
_PEEK_BYTES = 8 * 2**20
#: How much of the first conversation's mapping is decoded before the file's bytes are searched instead.
_DECODE_CHARS = 2**20
_NEEDLE_READ = 256 * 2**10


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(sorted(str(key) for key in value)[:8])
        return f"an object with keys {keys}" if keys else "an empty object"
    return f"a {type(value).__name__}" if value is not None else "null"


def _mapping_format(first: dict[str, Any]) -> str:
    nodes = first["mapping"].values()
    if any(isinstance(n, dict) and isinstance(n.get("message"), dict) and "fragments" in n["message"] for n in nodes):
        return "deepseek"
    return "deepseek" if "inserted_at" in first and "create_time" not in first else "chatgpt"


def _array_format(first: Any) -> str | None:
    if not isinstance(first, dict):
        return None
    if isinstance(first.get("mapping"), dict):
        return _mapping_format(first)
    if isinstance(first.get("chat_messages"), list):
        return "claude"
    if isinstance(first.get("chat"), dict) or isinstance(first.get("history"), dict):
        return "openwebui"
    if "conversation_id" in first and "prompt" in first and "response" in first:
        return "llm"
    if isinstance(first.get("conversations"), list) or isinstance(first.get("messages"), list):
        return "sharegpt"
    if isinstance(first.get("role"), str):
        return "messages"
    return None


def _line_format(record: Any) -> str | None:
    if isinstance(record, dict) and isinstance(record.get("messages"), list):
        return "jsonl"
    if isinstance(record, dict) and isinstance(record.get("conversations"), list):
        return "sharegpt"
    return None


#: ``(prefix, event, value)`` of a JSON object's parse events that decide its format.
_DECIDING: dict[tuple[str, str, Any], str] = {
    ("", "map_key", "mapping"): "chatgpt",
    ("", "map_key", "messagesTree"): "librechat",
    ("", "map_key", "chunkedPrompt"): "aistudio",
    ("", "map_key", "chat_messages"): "claude",
    ("history", "start_array", None): "chatbotui",
    ("history", "map_key", "messages"): "openwebui",
    ("history", "map_key", "currentId"): "openwebui",
    ("chat", "map_key", "history"): "openwebui",
    ("data.biz_data", "map_key", "chat_messages"): "deepseek",
    ("data.biz_data", "map_key", "chat_session"): "deepseek",
    ("conversations.item", "map_key", "responses"): "grok",
    ("conversations.item", "map_key", "conversation"): "grok",
}


def _from_object(stream: IO[bytes], label: str) -> str:
    """A JSON object's format, from its keys as they stream by."""
    keys: list[str] = []
    try:
        for prefix, event, value in ijson.parse(stream, use_float=True):
            found = _DECIDING.get((prefix, event, value if event == "map_key" else None))
            if found is not None:
                return found
            if prefix == "" and event == "map_key":
                keys.append(value)
                if "conversationId" in keys and "messages" in keys:
                    return "librechat"
    except ijson.JSONError as exc:
        raise FormatError(f"not a format chatkeep imports: invalid JSON ({first_line(exc)})", file=label) from exc
    except (UnicodeDecodeError, *READ_ERRORS) as exc:
        raise FormatError(f"not a format chatkeep imports: {first_line(exc)}", file=label) from exc
    shown = ", ".join(sorted(keys)[:8])
    raise FormatError(f"not a format chatkeep imports: a JSON object with keys {shown or 'none'}", file=label)


def _from_lines(stream: IO[bytes], label: str) -> str:
    seen, first_value = 0, None
    for _ in range(_PEEK_LINES):
        line = stream.readline(_PEEK_BYTES)
        if not line:
            break
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue  # a broken line among good ones is the importer's to report
        found = _line_format(record)
        if found is not None:
            return found
        seen, first_value = seen + 1, first_value if seen else record
    if seen:
        raise FormatError(f"not a format chatkeep imports: the first record is {_describe(first_value)}",
                          file=label)
    raise FormatError("not a format chatkeep imports: a JSON object, not a JSON array or JSON Lines",
                      file=label)


def _from_braces(stream: IO[bytes], label: str) -> str:
    """A file that starts with ``{``: one JSON object (pretty-printed or on one line), or JSON Lines."""
    position = stream.tell()
    try:
        # Keys decide as they stream by; JSON Lines stops the parser at its second line.
        return _from_object(stream, label)
    except FormatError:
        stream.seek(position)
        try:  # only now: one object on one line can be hundreds of megabytes
            first = json.loads(stream.readline(_PEEK_BYTES).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            first = None
        if not isinstance(first, dict):  # not a line of JSON Lines: the object's own error says it best
            raise
        stream.seek(position)
        return _from_lines(stream, label)


def _text_size(path: PathLike) -> int:
    """How many bytes there are to read: the file's, or its zip's ``conversations.json``'s."""
    with open_export_archive(path) as (_stream, label, archive):  # a zip's label: "<path>!<entry's name>"
        return os.path.getsize(path) if archive is None else archive.getinfo(label[len(os.fspath(path)) + 1:]).file_size


def _mentions(path: PathLike, needles: tuple[bytes, ...]) -> bool:
    """Whether the file (a zip's ``conversations.json``) holds any of ``needles`` anywhere, read a piece at a time."""
    overlap = max(map(len, needles)) - 1
    with open_export(path) as (stream, _label):
        tail = b""
        while True:
            piece = stream.read(_NEEDLE_READ)
            if not piece:
                return False
            seam = tail + piece[:overlap]  # a needle cut between two pieces
            if any(needle in piece or needle in seam for needle in needles):
                return True
            tail = (tail + piece)[-overlap:] if len(piece) < overlap else piece[-overlap:]


def _first_item(scanner: JsonScanner, path: PathLike) -> Any:
    """The array's first element, an object's ``mapping`` read a node at a time and kept only as what decides.

    A ChatGPT export can be one conversation of hundreds of megabytes: only a
    node whose message has DeepSeek's ``fragments`` is kept (the rest become
    one empty mapping), so memory holds one node. Once the mapping is a
    sixteenth of the file (and over a megabyte), a file that nowhere holds
    ``"fragments"`` or ``"inserted_at"`` (what tells DeepSeek's mappings from
    ChatGPT's) is ChatGPT's: searching all its bytes costs less than decoding
    the rest of a conversation that large.
    """
    if scanner.peek() != "{":
        return scanner.value()
    first: dict[str, Any] = {}
    for key in scanner.members():
        if key != "mapping" or scanner.peek() != "{":
            first[key] = scanner.value()
            continue
        kept: dict[str, Any] = {}
        start, total, searched = scanner.offset, 0, False
        for node_key in scanner.members():
            node = scanner.value()
            if not kept and isinstance(node, dict) and isinstance(node.get("message"), dict) \
                    and "fragments" in node["message"]:
                kept[node_key] = {"message": {"fragments": None}}
            read = scanner.offset - start
            if not searched and read > _DECODE_CHARS:
                total = total or _text_size(path)
                if read > total // 16:
                    searched = True
                    if not _mentions(path, (b'"fragments"', b'"inserted_at"')):
                        return {"mapping": {}}  # ChatGPT's: neither DeepSeek key is anywhere in the file
        first[key] = kept
    return first


def _from_array(stream: IO[bytes], label: str, path: PathLike) -> str:
    scanner = JsonScanner(stream)
    try:
        for _ in scanner.items():
            first = _first_item(scanner, path)
            if too_deep(first, MAX_DEPTH - 1):
                raise ScanError("too deep", deep=True)
            found = _array_format(first)
            if found is None:
                raise FormatError(f"not a format chatkeep imports: the first item is {_describe(first)}", file=label)
            return found
    except ScanError as exc:
        if exc.deep:
            raise FormatError(f"items[0]: nested deeper than {MAX_DEPTH} levels", file=label) from exc
        raise FormatError(f"invalid JSON in or after items[0]: {exc}", file=label) from exc
    except UnicodeDecodeError as exc:
        raise FormatError(f"items[0]: text is not valid UTF-8 ({exc.reason})", file=label) from exc
    except READ_ERRORS as exc:
        raise FormatError(f"cannot read past items[0]: {first_line(exc)}", file=label) from exc
    return "messages"  # [] is the tutorial's file before its first message


def detect_format(path: PathLike) -> str:
    """Say which import format a file holds, one of :data:`IMPORT_FORMATS`.

    Raises ``FormatError`` naming the file when the content is none of them.
    """
    label = os.fspath(path)
    if is_sqlite(path):
        return database_format(path)
    with open_export(path) as (stream, inner):
        if inner != label:  # a zip holding conversations.json (or its numbered parts): ChatGPT's, claude.ai's...
            found = _from_array(stream, inner, path)
            if found not in ("chatgpt", "claude", "deepseek"):
                raise FormatError(f"{inner[len(label) + 1:]} holds {found} records, not an export chatkeep reads"
                                  " from a zip", file=label)
            return found
    with open_plain(path) as stream:
        position = stream.tell()
        start = stream.read(4096).lstrip()[:1]
        stream.seek(position)
        if not start:
            raise FormatError("empty file: nothing to import", file=label)
        if start == b"{":
            return _from_braces(stream, label)
        if start != b"[":
            raise FormatError("not a format chatkeep imports: not JSON, JSON Lines or an SQLite database", file=label)
        return _from_array(stream, label, path)
