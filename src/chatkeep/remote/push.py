"""``push``: a local conversation's branch onto a server conversation (``chatkeep push ID``).

The first push creates the server conversation with up to 20 items, then adds
the rest 20 at a time (the API's limit per request), and links the local
conversation to it (see :mod:`chatkeep.remote.link`). After every request the
link records the last local message the server now holds, so pushing again,
after a failure midway too, sends only what is new. Batches end between
messages where they can; a message of more than 20 items (a reply with many
parallel calls) is sent in parts, and a push that fails between its parts
sends it whole the next time.

Chat Completions messages are sent as the Responses input items they amount
to (system, developer, user and assistant messages, tool calls as
``function_call`` items, tool results as ``function_call_output``); stored
Responses items go as they are, without the ids a message or call got on the
server that made it. A message the Responses API cannot hold (audio input)
stops the push before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..client.responses_turn import sendable
from ..errors import ChatkeepError
from ..items import ITEM_KIND, NoChatShape, chat_to_items, item_type
from ..store.base import ConversationRecord, StoredMessage
from ..store.protocol import Store
from .link import ServerLink, in_step, linked_metadata, server_link
from .pull import LOCAL_ID_KEY
from .server import MAX_BATCH, add_items, create_conversation, last_item_id, name_in_metadata

__all__ = ["Batch", "PushResult", "batches", "push", "push_items"]

_CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
# Ids a server gave these items are its own; the input forms of these types need none.
_ID_OPTIONAL = ("message", "function_call", "function_call_output")


@dataclass(frozen=True)
class PushResult:
    """What a push did: the server conversation, whether it is new, and what was sent in how many requests."""

    conversation_id: str
    server_id: str
    created: bool
    messages: int
    items: int
    requests: int


@dataclass
class Batch:
    """Items for one request, and the last local message whose items are all sent once it succeeds."""

    items: list[dict[str, Any]] = field(default_factory=list)
    through: str | None = None


def push_items(stored: StoredMessage) -> list[dict[str, Any]]:
    """The Responses input items that carry a stored message to the server; none for what is not sent."""
    if stored.kind == ITEM_KIND:
        if not sendable(stored):
            return []  # a call or reasoning item cut off mid-stream
        items = [dict(stored.message)]
    elif stored.kind == "chat":
        if stored.message.get("role") not in _CHAT_ROLES:
            raise ChatkeepError(f"message {stored.id}: the Responses API has no {stored.message.get('role')!r} role; "
                                "nothing was pushed")
        try:
            items = chat_to_items(stored.message)
        except NoChatShape as exc:
            raise ChatkeepError(f"message {stored.id}: {exc}; nothing was pushed") from exc
    else:
        return []  # a summary stands for messages the branch still holds
    return [{k: v for k, v in item.items() if k != "id"} if item_type(item) in _ID_OPTIONAL else item
            for item in items]


def batches(units: Sequence[tuple[str, list[dict[str, Any]]]], size: int = MAX_BATCH) -> list[Batch]:
    """Messages' items (``(message id, items)``, in order) in requests of at most ``size``, split between
    messages where possible."""
    out: list[Batch] = []
    current = Batch()
    for message_id, items in units:
        if current.items and len(current.items) + len(items) > size:
            out.append(current)
            current = Batch(through=current.through)
        while len(items) > size:  # one message's items in parts; it counts as sent with its last part
            out.append(Batch(items[:size], current.through))
            items = items[size:]
        current.items += items
        current.through = message_id
    if current.items or current.through != (out[-1].through if out else None):
        out.append(current)
    return out


def _server_metadata(record: ConversationRecord) -> dict[str, str]:
    metadata = {LOCAL_ID_KEY: record.id[:512]}
    if record.title:
        metadata["title"] = record.title[:512]
    return metadata


def _diverged(record: ConversationRecord, server_id: str, message_id: str) -> ChatkeepError:
    return ChatkeepError(
        f"the current branch of {record.id!r} left what {server_id} holds (it does not pass message {message_id}): "
        f"switch back to that branch (chatkeep branches {record.id}), or push this one to a new server "
        "conversation (--new)")


def push(store: Store, client: Any, conversation_id: str, *, new: bool = False) -> PushResult:
    """Send the current branch's messages the server conversation lacks; create and link one when there is none.

    ``client`` is an ``openai.OpenAI``. With ``new``, a new server conversation
    is made (and linked) even when the conversation is linked to one already.
    """
    record = store.get_conversation(conversation_id)
    link = None if new else server_link(record)
    branch = store.path(conversation_id)
    start = 0
    if link is not None:
        if link.synced_message is not None and all(m.id != link.synced_message for m in branch):
            raise _diverged(record, link.conversation_id, link.synced_message)
        start = in_step(branch, link.conversation_id, link) + 1
    # Every message is converted before anything is sent: one that cannot be stops the push first.
    units = [(stored.id, push_items(stored)) for stored in branch[start:]]
    pending = batches(units)
    result = PushResult(conversation_id, "", created=link is None, messages=sum(1 for _, items in units if items),
                        items=0, requests=0)
    if link is None:
        result = _create(store, client, record, pending, result)
    else:
        result = replace(result, server_id=link.conversation_id)
        if not link.announced and any(batch.items for batch in pending):
            result = _announce(store, client, conversation_id, link, result)
    last_item = link.synced_item if link is not None else None
    for batch in pending:
        if batch.items:
            hint = f": push {conversation_id} to a new one with --new"
            last_item = add_items(client, result.server_id, batch.items, hint)[-1]
            result = replace(result, items=result.items + len(batch.items), requests=result.requests + 1)
        if batch.through is not None:
            _remember(store, conversation_id, result.server_id, batch.through, last_item)
    return result


def _create(store: Store, client: Any, record: ConversationRecord, pending: list[Batch],
            result: PushResult) -> PushResult:
    """Make the server conversation with the first batch (taken off ``pending``) and link the local one to it."""
    first = pending.pop(0) if pending else Batch()
    server_id = create_conversation(client, first.items, _server_metadata(record))
    # Linked at once: a push that fails after this continues this server conversation.
    _remember(store, record.id, server_id, first.through, None, announced=True)
    requests = 1
    if first.items and not pending:  # no later batch tells the id of the last item: ask
        requests += 1
        _remember(store, record.id, server_id, first.through, last_item_id(client, server_id))
    return replace(result, server_id=server_id, items=len(first.items), requests=requests)


def _announce(store: Store, client: Any, conversation_id: str, link: ServerLink, result: PushResult) -> PushResult:
    """Name this conversation in the server conversation's metadata, so a pull finds it by more than ids
    (the messages pushed from here hold none)."""
    hint = f": push {conversation_id} to a new one with --new"
    changed = name_in_metadata(client, link.conversation_id, LOCAL_ID_KEY, conversation_id[:512], hint)
    record = store.get_conversation(conversation_id)
    store.update_conversation(conversation_id, metadata=linked_metadata(record, link.conversation_id, announced=True))
    return replace(result, requests=result.requests + 1 + changed)


def _remember(store: Store, conversation_id: str, server_id: str, message_id: str | None,
              item_id: str | None, *, announced: bool | None = None) -> None:
    """Record in the conversation's link that the server holds everything up to ``message_id``."""
    record = store.get_conversation(conversation_id)
    store.update_conversation(conversation_id, metadata=linked_metadata(
        record, server_id, message_id=message_id, item_id=item_id, announced=announced))

