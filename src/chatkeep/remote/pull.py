"""``pull``: a server conversation's items into the store (``chatkeep import conv_...``).

Every item is kept as the server returns it (``kind="response_item"``):
messages with their images, function calls and outputs, reasoning with its
encrypted content, kinds newer than chatkeep. Each remembers its server id
(``metadata["openai"]["item_id"]``), and the conversation its server
conversation (see :mod:`chatkeep.remote.link`), so pulling again adds only
the items the server gained since.

A conversation already linked to the server conversation (pulled before,
pushed from here, or chatted on with ``ResponsesChat(conversation=...)``)
gets the new items after the last one it holds. Its head follows them only if
it is still there; otherwise (turns were added here meanwhile) they wait on a
branch of their own, as a racing writer's turn would. Finding it costs the
same in a store of ten conversations or a million (see :mod:`.link`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from ..errors import ConversationNotFound
from ..items import ITEM_KIND
from ..store.base import ConversationRecord, Draft, MessageStatus, new_id
from ..store.bulk import ImportConversation, ImportMessage
from ..store.protocol import Store
from .link import conversation_key, item_marker, linked_metadata, server_item_id, server_link
from .server import fetch_conversation

__all__ = ["PullResult", "linked_conversation", "pull"]

#: The server conversation's metadata key that names the local conversation a push made it from.
LOCAL_ID_KEY = "chatkeep_id"


@dataclass(frozen=True)
class PullResult:
    """What a pull did: the local conversation, whether it is new, and the items added and already there."""

    conversation_id: str
    server_id: str
    created: bool
    added: int
    known: int
    #: The new items wait on a branch: the conversation's head had moved past where they attach.
    branched: bool = False


def linked_conversation(store: Store, server_id: str, server_metadata: Mapping[str, Any] | None = None,
                        ) -> ConversationRecord | None:
    """The local conversation linked to ``server_id``, found by the key its newest items carry, or by the
    ``chatkeep_id`` in the server conversation's metadata; ``None`` when neither leads to one.

    A conversation only ever pulled is found by the import itself (its source key).
    """
    candidates = [found[0] for found in store.find_keys([conversation_key(server_id)]).values()]
    named = (server_metadata or {}).get(LOCAL_ID_KEY)
    if isinstance(named, str) and named:
        candidates.append(named)
    for candidate in candidates:
        try:
            record = store.get_conversation(candidate)
        except ConversationNotFound:
            continue
        link = server_link(record)
        if link is not None and link.conversation_id == server_id:  # another store's id, or a stale key, is not it
            return record
    return None


def pull(store: Store, client: Any, server_id: str) -> PullResult:
    """Bring the server conversation ``server_id`` (every page, oldest first) into the store.

    ``client`` is an ``openai.OpenAI``. The first pull makes a conversation in
    one transaction; a later one adds only what the server gained since.
    """
    store.require("response_items")
    remote, items = fetch_conversation(client, server_id)
    metadata = remote.get("metadata")
    record = linked_conversation(store, server_id, metadata if isinstance(metadata, Mapping) else None)
    if record is None:  # never pulled, or only ever pulled: the import's source key tells
        return _import(store, server_id, remote, items)
    return _later_pull(store, record, server_id, items)


def _status(item: Mapping[str, Any]) -> MessageStatus:
    return "incomplete" if item.get("status") in ("incomplete", "in_progress") else "complete"


def _created(remote: Mapping[str, Any]) -> datetime | None:
    moment = remote.get("created_at")
    if isinstance(moment, (int, float)) and not isinstance(moment, bool) and moment > 0:
        return datetime.fromtimestamp(moment, tz=timezone.utc)
    return None


def _item_id(item: Mapping[str, Any]) -> str | None:
    found = item.get("id")
    return found if isinstance(found, str) and found else None


def _import(store: Store, server_id: str, remote: Mapping[str, Any], items: Sequence[dict[str, Any]]) -> PullResult:
    """Import the items in one transaction: a new conversation, or new items of one pulled before (by source keys)."""
    local_id = new_id()
    messages: list[ImportMessage] = []
    parent: str | None = None
    for number, item in enumerate(items):
        key = _item_id(item) or f"#{number}"
        messages.append(ImportMessage(item, key=key, parent_key=parent, status=_status(item), kind=ITEM_KIND,
                                      metadata=item_marker(server_id, _item_id(item))))
        parent = key
    server_metadata = remote.get("metadata")
    server_metadata = dict(server_metadata) if isinstance(server_metadata, Mapping) else {}
    title = server_metadata.get("title")
    conversation = ImportConversation(
        messages, key=f"openai:{server_id}", id=local_id, title=title if isinstance(title, str) else None,
        created_at=_created(remote),
        metadata={"imported_from": "openai", "openai": {"conversation_id": server_id, "local_id": local_id,
                                                          "metadata": server_metadata}},
    )
    summary = store.import_conversations([conversation])
    conversation_id = summary.conversation_ids[0]
    branched = False
    if summary.messages_added and not summary.conversations_created:
        # The import moves the head only if it is still where the last pull left it.
        head = store.path(conversation_id, last=1)
        branched = not head or server_item_id(head[0], server_id) != _item_id(items[-1])
    return PullResult(conversation_id, server_id, created=summary.conversations_created == 1,
                      added=summary.messages_added, known=summary.messages_skipped, branched=branched)


def _later_pull(store: Store, record: ConversationRecord, server_id: str, items: Sequence[dict[str, Any]]) -> PullResult:
    known: dict[str, str] = {}
    for stored in store.find_messages(record.id, kind=ITEM_KIND):
        item_id = server_item_id(stored, server_id)
        if item_id is not None:
            known[item_id] = stored.id
    link = server_link(record)
    if link is not None and link.synced_item and link.synced_message:
        known.setdefault(link.synced_item, link.synced_message)  # a pushed message holds no item id itself
    # The server only appends: what follows the newest item held here is new.
    anchor = max((index for index, item in enumerate(items) if _item_id(item) in known), default=-1)
    new = [item for item in items[anchor + 1:] if _item_id(item) not in known]
    if not new:
        return PullResult(record.id, server_id, created=False, added=0, known=len(items))
    parent = known[str(_item_id(items[anchor]))] if anchor >= 0 else None
    drafts = [Draft(item, kind=ITEM_KIND, status=_status(item), metadata=item_marker(server_id, _item_id(item)))
              for item in new]
    drafts[-1] = replace(drafts[-1], keys=(conversation_key(server_id),))  # finds this conversation next time
    # The head follows only if it is still where the new items attach.
    saved = store.append_many(record.id, drafts, parent_id=parent)
    store.update_conversation(record.id, metadata=linked_metadata(
        store.get_conversation(record.id), server_id, message_id=saved[-1].id, item_id=_item_id(new[-1])))
    return PullResult(record.id, server_id, created=False, added=len(new), known=len(items) - len(new),
                      branched=saved[-1].head_moved is False)
