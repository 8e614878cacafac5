"""Importing a Grok (grok.com) data export: ``{"conversations": [{conversation, responses}]}``.

Each ``responses`` entry wraps one message, ``{response: {response_id,
message, sender, parent_response_id, create_time, ...}}``. ``sender`` is
``human`` or ``assistant`` in any case. Messages sharing a parent are
regenerations or edits: every branch is kept, the head is the conversation's
``leaf_response_id`` when it names a message, else the newest leaf. The
model is the response's ``model``, else the one the prompt asked for
(``metadata.requestModelDetails.modelId``). ``thinking_trace`` is kept apart
from the answer in ``metadata["grok"]["thinking"]``; search results, cited
pages, steps, attachments and generated images go to metadata too. Times may
be ISO strings or MongoDB's ``{"$date": ...}``.

The list is streamed: memory holds one conversation.

Keys: a conversation is ``grok:<conversation_id>``, a message its ``response_id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import FormatError
from ..store.base import MessageStatus
from ..store.bulk import ImportConversation, ImportMessage
from ._source import PathLike, Report, as_dict, as_str, checked_message, json_object_array, moment, open_plain
from ._tree import newest_leaf, tree_order

__all__ = ["read_grok"]

_ROLES = {"human": "user", "user": "user", "assistant": "assistant", "system": "system"}
_KEPT = {"thinking_trace": "thinking", "steps": "steps", "web_search_results": "web_search_results",
         "cited_web_search_results": "cited_web_search_results", "image_attachments": "image_attachments",
         "file_attachments": "file_attachments", "generated_image_urls": "generated_image_urls",
         "card_attachments_json": "card_attachments", "xpost_ids": "xpost_ids", "webpage_urls": "webpage_urls",
         "query": "query", "error": "error", "metadata": "metadata"}


def read_grok(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield the export's conversations one at a time."""
    label = str(path)
    report = Report(label, warnings)
    with open_plain(path) as stream:
        records = ((f"conversations[{index}]", item)
                   for index, item in json_object_array(stream, label, "conversations", "conversations"))
        yield from report.each(records, lambda item, where: _conversation(item, where, report))




def _status(response: dict[str, Any]) -> MessageStatus:
    if response.get("error"):
        return "error"
    return "incomplete" if response.get("partial") is True else "complete"


def _conversation(item: Any, where: str, report: Report) -> ImportConversation | None:
    label = report.label
    if not isinstance(item, dict) or not isinstance(item.get("responses"), list):
        raise FormatError(f"{where}.responses: expected a list of responses", file=label)
    info = as_dict(item.get("conversation"))
    conversation_id = as_str(info.get("conversation_id")) or as_str(info.get("id"))
    name = f"{where} (conversation {conversation_id})" if conversation_id else where
    entries: dict[str, tuple[str | None, dict[str, Any], str]] = {}
    links = []
    for index, wrapped in enumerate(item["responses"]):
        field = f"{where}.responses[{index}].response"
        response = as_dict(as_dict(wrapped).get("response")) or as_dict(wrapped)
        key = as_str(response.get("response_id")) or as_str(response.get("_id"))
        if not key:
            report.skip(FormatError(f"{field}: no response_id", file=label))
            continue
        parent = response.get("parent_response_id")
        parent = parent if isinstance(parent, str) and parent else None
        entries.setdefault(key, (parent, response, field))
        links.append((key, parent))
    order = tree_order(links)
    for key in order.lost:
        report.skip(FormatError(f"{name}: response {key} left out, repeated or on a cycle", file=label))
    for key, missing in order.orphans.items():
        report.note(f"{name}: response {key}'s parent {missing} is missing; imported from there as a new root")
    messages: list[ImportMessage] = []
    for key in order.keys:
        parent, response, field = entries[key]
        role = _ROLES.get(as_str(response.get("sender")).lower())
        if role is None:
            raise FormatError(f"{field}.sender: unknown sender {response.get('sender')!r}", file=label)
        requested = as_dict(as_dict(entries.get(parent or "", (None, {}, ""))[1].get("metadata")).get("requestModelDetails"))
        model = as_str(response.get("model")) or as_str(requested.get("modelId"))
        kept = {target: response[source] for source, target in _KEPT.items()
                if response.get(source) not in (None, "", [], {}, False)}
        messages.append(ImportMessage(
            checked_message({"role": role, "content": as_str(response.get("message"))}, field, label),
            key=key, parent_key=None if key in order.orphans else parent,
            created_at=moment(response.get("create_time")),
            model=model if role == "assistant" and model else None, status=_status(response),
            metadata={"grok": kept} if kept else {}))
    if not messages:
        report.note(f"{name}: no messages to import; left out")
        return None
    leaf = info.get("leaf_response_id")
    head = leaf if isinstance(leaf, str) and leaf in entries and leaf in order.keys else newest_leaf(messages)
    created = moment(info.get("create_time"))
    details = {key: info[key] for key in ("conversation_id", "system_prompt_name", "starred", "temporary")
               if info.get(key) not in (None, "")}
    return ImportConversation(
        messages, key=f"grok:{conversation_id}" if conversation_id else None,
        title=as_str(info.get("title")) or None, created_at=created,
        updated_at=moment(info.get("modify_time")) or created,
        metadata={"imported_from": "grok", "grok": details}, head_key=head)
