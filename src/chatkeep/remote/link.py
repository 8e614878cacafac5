"""What a local conversation knows of its twin on the server (OpenAI's Conversations API).

A local conversation linked to a server conversation says so in its metadata::

    metadata["openai"] = {
        "conversation_id": "conv_...",     # the server conversation
        "local_id": "<this conversation>",  # a fork copies metadata: a copied link is not the fork's own
        "synced": {"message_id": "<local message>", "item_id": "<server item>"},
        "announced": true,                  # the server conversation's metadata names this one (chatkeep_id)
    }

``synced`` names the last local message the server conversation is known to
hold and the server's id for its last item, as a push or a pull left them.
Items that came from the server (pulled, or the output of a turn run on the
server conversation) say so themselves: ``metadata["openai"] =
{"conversation_id", "item_id"}``. How far a branch and the server agree is the
later of the two: everything after it is what the server lacks.

A pull finds the local twin of a server conversation without reading every
conversation: the newest item a pull or a turn stored carries the message key
``conversation_key(server id)`` (``Store.find_keys``); a conversation made by a
push is named in the server conversation's metadata (``chatkeep_id``); and a
conversation only ever pulled has the import's source key ``openai:<id>``.

Nothing here does I/O or imports the ``openai`` SDK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..store.base import ConversationRecord, StoredMessage

__all__ = ["LINK_KEY", "ServerLink", "conversation_key", "in_step", "item_marker", "linked_metadata", "server_item_id",
           "server_link"]

#: The metadata key, on conversations and on messages, for what the OpenAI server holds.
LINK_KEY: Final = "openai"


@dataclass(frozen=True)
class ServerLink:
    """A local conversation's server conversation, and the last message both are known to hold."""

    conversation_id: str
    synced_message: str | None = None
    synced_item: str | None = None
    #: The server conversation's metadata names this local conversation (``chatkeep_id``).
    announced: bool = False


def server_link(record: ConversationRecord) -> ServerLink | None:
    """The conversation's own link, or ``None`` (never linked, or a link a fork copied from its source)."""
    found = record.metadata.get(LINK_KEY)
    if not isinstance(found, Mapping) or found.get("local_id") != record.id:
        return None
    conversation_id = found.get("conversation_id")
    if not isinstance(conversation_id, str) or not conversation_id:
        return None
    synced = found.get("synced")
    synced = synced if isinstance(synced, Mapping) else {}
    message, item = synced.get("message_id"), synced.get("item_id")
    return ServerLink(conversation_id, message if isinstance(message, str) else None,
                      item if isinstance(item, str) else None, found.get("announced") is True)


def conversation_key(server_id: str) -> str:
    """The message key that finds the local conversation holding a server conversation's newest items."""
    return f"openai:conversation:{server_id}"


def linked_metadata(record: ConversationRecord, conversation_id: str, *, message_id: str | None = None,
                    item_id: str | None = None, announced: bool | None = None) -> dict[str, Any]:
    """The record's metadata with its link set to ``conversation_id`` (and ``synced``, when a message is given).

    A link to the same server conversation keeps what it knew unless told newer.
    """
    previous = server_link(record)
    same = previous is not None and previous.conversation_id == conversation_id
    link: dict[str, Any] = {"conversation_id": conversation_id, "local_id": record.id}
    if message_id is not None:
        link["synced"] = {"message_id": message_id, "item_id": item_id}
    elif same and previous is not None and previous.synced_message:
        link["synced"] = {"message_id": previous.synced_message, "item_id": previous.synced_item}
    if announced or (announced is None and same and previous is not None and previous.announced):
        link["announced"] = True
    return {**record.metadata, LINK_KEY: link}


def item_marker(conversation_id: str, item_id: Any) -> dict[str, Any]:
    """The metadata of a stored item that the server conversation holds."""
    marker: dict[str, Any] = {"conversation_id": conversation_id}
    if isinstance(item_id, str) and item_id:
        marker["item_id"] = item_id
    return {LINK_KEY: marker}


def _marker(stored: StoredMessage, conversation_id: str) -> Mapping[str, Any] | None:
    marker = stored.metadata.get(LINK_KEY)
    if isinstance(marker, Mapping) and marker.get("conversation_id") == conversation_id:
        return marker
    return None


def server_item_id(stored: StoredMessage, conversation_id: str) -> str | None:
    """The server's id for a stored item that ``conversation_id`` holds, else ``None``."""
    marker = _marker(stored, conversation_id)
    item_id = marker.get("item_id") if marker is not None else None
    return item_id if isinstance(item_id, str) else None


def in_step(branch: Sequence[StoredMessage], conversation_id: str, link: ServerLink | None) -> int:
    """The index in ``branch`` of the last message the server conversation holds; -1 when it holds none of them."""
    synced = link.synced_message if link is not None and link.conversation_id == conversation_id else None
    for index in range(len(branch) - 1, -1, -1):
        stored = branch[index]
        if stored.id == synced or _marker(stored, conversation_id) is not None:
            return index
    return -1
