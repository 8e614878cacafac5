"""Importing the tutorial's file: one JSON array of chat messages, one conversation.

Keys: the conversation is ``messages:<hash of its opening>``, the opening being
the messages up to and including the first user message (the system prompt
and the first question); each message's key hashes its parent's key with its
own content, so a key stands for the whole path up to that message. Importing
the same file again adds nothing; importing it after the tutorial's script
appended turns adds only those turns; a file whose message 5 was edited adds
a branch from message 4. Two files that open identically (same system prompt,
same first question) become branches of one conversation.

The file is read whole with the standard ``json`` module, not streamed: it is
one conversation, held whole by the import anyway, and ``json`` keeps what
the C streaming parser cannot (lone surrogates, which ``json.dump`` writes as
``\\udxxx`` escapes), so a round trip through this format is exact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..messages import MessageDict
from ..store.bulk import ImportConversation, ImportMessage
from ._source import MAX_DEPTH, PathLike, Report, checked_message, content_hash, open_plain, too_deep

__all__ = ["chain_keys", "opening_key", "read_messages"]


def opening_key(messages: list[MessageDict]) -> str:
    """The conversation key: a hash of the messages up to and including the first user message."""
    end = next((i for i, message in enumerate(messages) if message.get("role") == "user"), 0)
    return f"messages:{content_hash(messages[:end + 1])}"


def chain_keys(messages: list[MessageDict]) -> list[str]:
    """Each message's key: a hash of its parent's key and its own content."""
    keys: list[str] = []
    parent = ""
    for message in messages:
        parent = content_hash([parent, message])
        keys.append(parent)
    return keys


def _load(path: PathLike, label: str) -> Any:
    with open_plain(path) as stream:
        try:
            raw = stream.read()
        except OSError as exc:
            raise FormatError(f"cannot read: {exc.strerror or exc}", file=label) from exc
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=label) from exc
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc.msg}", file=label, line=exc.lineno, column=exc.colno) from exc
    except RecursionError as exc:
        raise FormatError(f"nested deeper than {MAX_DEPTH} levels", file=label) from exc


def read_messages(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield the file's one conversation (nothing for an empty array); every message must be valid."""
    label = os.fspath(path)
    data = _load(path, label)
    if not isinstance(data, list):
        raise FormatError(f"expected a JSON array of messages, got {type(data).__name__}", file=label)
    if too_deep(data):
        raise FormatError(f"nested deeper than {MAX_DEPTH} levels", file=label)
    messages: list[MessageDict] = []
    for index, message in enumerate(data):
        messages.append(checked_message(message, f"messages[{index}]", label))
    if not messages:
        Report(label, warnings).note("an empty array: no conversation to import")
        return
    keys = chain_keys(messages)
    yield ImportConversation(
        [ImportMessage(message, key=key, parent_key=keys[i - 1] if i else None)
         for i, (message, key) in enumerate(zip(messages, keys))],
        key=opening_key(messages),
        title=Path(label).stem,
        metadata={"imported_from": "messages"},
    )
