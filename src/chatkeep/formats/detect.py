"""Telling import formats apart by their content, never by the file's name.

A zip holding ``conversations.json`` is a ChatGPT export. A JSON array is
told by its first element: an object with ``mapping`` is a ChatGPT
conversation, one with ``conversations`` (or ``messages`` beside it) a
ShareGPT record, one with ``role`` a chat message of the tutorial's file.
Lines of JSON objects with ``messages`` are fine-tuning JSONL, with
``conversations`` ShareGPT. Only the first element, or the first few lines,
is read.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

from ..errors import FormatError
from ._source import PathLike, json_array, open_export, open_plain

__all__ = ["IMPORT_FORMATS", "detect_format"]

#: The formats ``read_conversations`` reads.
IMPORT_FORMATS = ("messages", "jsonl", "chatgpt", "sharegpt")

_PEEK_LINES = 20
_PEEK_BYTES = 8 * 2**20


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(sorted(str(key) for key in value)[:8])
        return f"an object with keys {keys}" if keys else "an empty object"
    return f"a {type(value).__name__}" if value is not None else "null"


def _array_format(first: Any) -> str | None:
    if not isinstance(first, dict):
        return None
    if isinstance(first.get("mapping"), dict):
        return "chatgpt"
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


def detect_format(path: PathLike) -> str:
    """Say which import format a file holds: ``messages``, ``jsonl``, ``chatgpt`` or ``sharegpt``.

    Raises ``FormatError`` naming the file when the content is none of them.
    """
    label = os.fspath(path)
    with open_export(path) as (stream, inner):
        if inner != label:
            return "chatgpt"  # a zip holding conversations.json
    with open_plain(path) as stream:
        position = stream.tell()
        start = stream.read(4096).lstrip()[:1]
        stream.seek(position)
        if not start:
            raise FormatError("empty file: nothing to import", file=label)
        if start == b"{":
            return _from_lines(stream, label)
        if start != b"[":
            raise FormatError("not a format chatkeep imports: not JSON or JSON Lines", file=label)
        for _, first in json_array(stream, label, "items"):
            found = _array_format(first)
            if found is None:
                raise FormatError(f"not a format chatkeep imports: the first item is {_describe(first)}",
                                  file=label)
            return found
    return "messages"  # [] is the tutorial's file before its first message
