"""``read_conversations``: any supported file as a stream of conversations to import."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from ..errors import FormatError
from ..store.bulk import ImportConversation
from ._source import PathLike
from .agents_db import read_agents_db
from .aistudio import read_aistudio
from .chatbotui import read_chatbotui
from .chatgpt import read_chatgpt
from .claude import read_claude
from .deepseek import read_deepseek
from .detect import IMPORT_FORMATS, detect_format
from .grok import read_grok
from .jsonl import read_jsonl
from .langchain_db import read_langchain_db
from .librechat import read_librechat
from .llm_db import read_llm_db
from .llm_json import read_llm_json
from .messages import read_messages
from .openwebui import read_openwebui
from .sharegpt import read_sharegpt

__all__ = ["read_conversations"]

_Reader = Callable[[PathLike, "list[str] | None"], Iterator[ImportConversation]]
_READERS: dict[str, _Reader] = {
    "messages": read_messages,
    "jsonl": read_jsonl,
    "chatgpt": read_chatgpt,
    "sharegpt": read_sharegpt,
    "claude": read_claude,
    "openwebui": read_openwebui,
    "librechat": read_librechat,
    "chatbotui": read_chatbotui,
    "llm": read_llm_json,
    "deepseek": read_deepseek,
    "grok": read_grok,
    "aistudio": read_aistudio,
    "llm-db": read_llm_db,
    "agents-db": read_agents_db,
    "langchain-db": read_langchain_db,
}


def read_conversations(
    path: PathLike, format: str | None = None, *, warnings: list[str] | None = None
) -> Iterator[ImportConversation]:
    """Yield the conversations in a file, one at a time, for ``store.import_conversations``.

    ``format`` is one of :data:`IMPORT_FORMATS` (``chatgpt``, ``claude``,
    ``openwebui``, ``llm-db``...); without it the content decides
    (:func:`detect_format`). A database (``llm-db``, ``agents-db``,
    ``langchain-db``) is opened read-only and never changed. Only an unknown
    ``format`` raises at once: nothing is read until the first conversation is
    asked for, so inside an import every error, an unreadable file included,
    undoes the whole import.

    Records that cannot be imported (an invalid line of JSONL, a ShareGPT
    record with an unknown speaker, a ChatGPT conversation with broken nodes)
    stop the import with a ``FormatError`` naming the file, the line or
    record, and the field. Pass a ``warnings`` list to import what is sound
    instead: each skipped record, and each repair made (a ChatGPT
    conversation without its current node), is described there as
    ``file:line: reason``. A file that is not the format at all (truncated
    JSON, a corrupt or unsafe zip) always raises.
    """
    if format is not None and format not in _READERS:
        raise FormatError(f"unknown import format {format!r} (expected one of {', '.join(IMPORT_FORMATS)})",
                          file=os.fspath(path))
    return _read(path, format, warnings)


def _read(path: PathLike, format: str | None, warnings: list[str] | None) -> Iterator[ImportConversation]:
    yield from _READERS[format or detect_format(path)](path, warnings)
