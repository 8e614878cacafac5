"""Importing OpenAI fine-tuning chat JSONL: one ``{"messages": [...]}`` record per line.

Each record is one conversation, its messages chained. ``tools``,
``parallel_tool_calls`` and the legacy ``functions`` go to the conversation's
metadata (and back into the record on export); a message's ``weight`` is a
key chatkeep's validator does not know, so it is stored and exported as it is.

Keys: a conversation is ``jsonl:<hash of the record>`` (its content, not its
line number), its messages their positions. Importing the same file again
adds nothing, wherever its lines moved; a record that appears twice is one
conversation.

A line that cannot be imported (not JSON, no ``messages`` list, an invalid
message) is skipped and reported as ``file:LINE: reason`` when the caller
passes a ``warnings`` list, and stops the import otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import FormatError
from ..store.bulk import ImportConversation, ImportMessage
from ._source import PathLike, Report, checked_message, content_hash, json_lines, open_plain

__all__ = ["RECORD_KEYS", "read_jsonl"]

#: The record keys besides ``messages`` that are kept, in conversation metadata.
RECORD_KEYS = ("tools", "parallel_tool_calls", "functions")


def read_jsonl(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield one conversation per valid line; invalid lines go to ``warnings`` (or raise without it)."""
    with open_plain(path) as stream:
        label = str(path)
        report = Report(label, warnings)
        for line, value in json_lines(stream, label):
            try:
                if isinstance(value, FormatError):
                    raise value
                conversation = _record(value, label, line)
            except FormatError as error:
                report.skip(error)
                continue
            yield conversation


def _record(record: Any, label: str, line: int) -> ImportConversation:
    if not isinstance(record, dict):
        raise FormatError(f"expected an object with messages, got {type(record).__name__}", file=label, line=line)
    raw = record.get("messages")
    if not isinstance(raw, list):
        reason = "missing messages" if raw is None else f"messages: expected a list, got {type(raw).__name__}"
        raise FormatError(reason, file=label, line=line)
    if "tools" in record and not isinstance(record["tools"], list):
        raise FormatError(f"tools: expected a list, got {type(record['tools']).__name__}", file=label, line=line)
    if "parallel_tool_calls" in record and not isinstance(record["parallel_tool_calls"], bool):
        raise FormatError("parallel_tool_calls: expected true or false", file=label, line=line)
    messages = []
    for index, message in enumerate(raw):
        body = checked_message(message, f"messages[{index}]", label, line)
        messages.append(ImportMessage(body, key=str(index), parent_key=str(index - 1) if index else None))
    metadata: dict[str, Any] = {"imported_from": "jsonl"}
    metadata.update((key, record[key]) for key in RECORD_KEYS if key in record)
    return ImportConversation(messages, key=f"jsonl:{content_hash(record)}", metadata=metadata)
