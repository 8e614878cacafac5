"""Importing a Chatbot UI export (mckaywrigley/chatbot-ui, the JSON "Export data" of versions 1 to 4).

The export is ``{"version": 4, "history": [...], "folders": [...], "prompts":
[...]}``; each conversation in ``history`` is ``{id, name, messages: [{role,
content}], model: {id, name, ...}, prompt, temperature, folderId}``. The
``prompt`` is the system prompt Chatbot UI sends first, so it becomes the
conversation's system message; assistant messages get the ``model``'s id.
``temperature`` and the folder go to metadata. ``folders`` and the
``prompts`` library are not conversations and are left out. The export has
no times: messages take the time of the import.

Keys: a conversation is ``chatbotui:<id>``; a message's key hashes its
parent's key with its own content (as the tutorial's file does), so a
conversation that grew adds only its new turns, and one edited in Chatbot UI
(which drops the turns after the edit) adds the edited turn as a branch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import FormatError
from ..messages import MessageDict
from ..store.bulk import ImportConversation, ImportMessage
from ._source import PathLike, Report, checked_message, content_hash, json_object_array, open_plain
from .messages import chain_keys

__all__ = ["read_chatbotui"]

_ROLES = ("user", "assistant", "system")


def read_chatbotui(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield the conversations of the export's ``history``, one at a time."""
    label = str(path)
    report = Report(label, warnings)
    with open_plain(path) as stream:
        for index, item in json_object_array(stream, label, "history", "conversations"):
            try:
                conversation = _conversation(item, f"history[{index}]", label)
            except FormatError as error:
                report.skip(error)
                continue
            if conversation is None:
                report.note(f"history[{index}]: no messages to import; left out")
                continue
            yield conversation


def _conversation(item: Any, where: str, label: str) -> ImportConversation | None:
    if not isinstance(item, dict):
        raise FormatError(f"{where}: expected a conversation object, got {type(item).__name__}", file=label)
    raw = item.get("messages")
    if not isinstance(raw, list):
        raise FormatError(f"{where}.messages: expected a list of messages", file=label)
    model = item["model"] if isinstance(item.get("model"), dict) else {}
    model_id = model.get("id") if isinstance(model.get("id"), str) else None
    messages: list[MessageDict] = []
    prompt = item.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        messages.append({"role": "system", "content": prompt})
    for index, message in enumerate(raw):
        field = f"{where}.messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise FormatError(f"{field}.role: unknown role {role!r}", file=label)
        # "type" ("text") is Chatbot UI's own, not the API's: left out.
        messages.append(checked_message({"role": message["role"], "content": message.get("content")}, field, label))
    if not any(m["role"] != "system" for m in messages):
        return None
    keys = chain_keys(messages)
    imported = [ImportMessage(message, key=key, parent_key=keys[i - 1] if i else None,
                              model=model_id if message["role"] == "assistant" else None)
                for i, (message, key) in enumerate(zip(messages, keys))]
    source_id = item.get("id") if isinstance(item.get("id"), str) and item.get("id") else None
    details = {"id": source_id, "model": model or None, "temperature": item.get("temperature"),
               "folderId": item.get("folderId")}
    return ImportConversation(
        imported,
        key=f"chatbotui:{source_id}" if source_id else f"chatbotui:sha256:{content_hash(item)}",
        title=item.get("name") if isinstance(item.get("name"), str) else None,
        metadata={"imported_from": "chatbotui",
                  "chatbotui": {name: value for name, value in details.items() if value is not None}},
    )
