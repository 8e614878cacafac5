"""The Conversations API calls chatkeep makes, through the client it is given; a 404 becomes a chatkeep error.

``client`` is an ``openai.OpenAI`` (or anything of its shape). The SDK is
imported only to recognise its ``NotFoundError``, when a call is made.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from ..errors import ChatkeepError
from ..items import as_item

__all__ = ["INCLUDE", "MAX_BATCH", "ServerConversationNotFound", "add_items", "create_conversation",
           "fetch_conversation", "last_item_id", "name_in_metadata"]

#: What an item list leaves out unless asked: input images' URLs, and the encrypted
#: reasoning a stateless request (``store=False``, zero data retention) must send back.
INCLUDE: Final = ["message.input_image.image_url", "reasoning.encrypted_content"]
#: The most items one request may add to a conversation (the API refuses more).
MAX_BATCH: Final = 20
#: Items a page of the list holds (the API's most).
PAGE_SIZE: Final = 100


class ServerConversationNotFound(ChatkeepError):
    """The server has no conversation with this id (deleted, or made with another project's key)."""

    def __init__(self, conversation_id: str, hint: str = "") -> None:
        self.conversation_id = conversation_id
        super().__init__(f"the server has no conversation {conversation_id!r} (deleted, or made with another "
                         f"project's key){hint}")


@contextmanager
def _found(conversation_id: str, hint: str = "") -> Iterator[None]:
    import openai

    try:
        yield
    except openai.NotFoundError as exc:
        raise ServerConversationNotFound(conversation_id, hint) from exc


def fetch_conversation(client: Any, conversation_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The server conversation and all its items, oldest first, every page, images and encrypted reasoning included."""
    with _found(conversation_id):
        conversation = as_item(client.conversations.retrieve(conversation_id))
        page = client.conversations.items.list(conversation_id, order="asc", limit=PAGE_SIZE, include=INCLUDE)
        items = [as_item(item) for item in page]  # the SDK follows has_more/last_id from page to page
    return conversation, items


def create_conversation(client: Any, items: Sequence[Mapping[str, Any]], metadata: Mapping[str, str]) -> str:
    """Create a server conversation holding ``items`` (at most ``MAX_BATCH``); its id."""
    if len(items) > MAX_BATCH:
        raise ValueError(f"a conversation is created with at most {MAX_BATCH} items, not {len(items)}")
    return str(client.conversations.create(items=list(items), metadata=dict(metadata)).id)


def add_items(client: Any, conversation_id: str, items: Sequence[Mapping[str, Any]], hint: str = "") -> list[str]:
    """Append ``items`` (1 to ``MAX_BATCH``) to a server conversation; the ids the server gave them."""
    if not 0 < len(items) <= MAX_BATCH:
        raise ValueError(f"items are added 1 to {MAX_BATCH} at a time, not {len(items)}")
    with _found(conversation_id, hint):
        created = client.conversations.items.create(conversation_id, items=list(items))
    return [str(item.id) for item in created.data]


def name_in_metadata(client: Any, conversation_id: str, key: str, value: str, hint: str = "") -> bool:
    """Add ``key: value`` to a server conversation's metadata, unless it holds that key or has no room
    (16 keys); whether it was added."""
    with _found(conversation_id, hint):
        metadata = dict(client.conversations.retrieve(conversation_id).metadata or {})
        if key in metadata or len(metadata) >= 16:
            return False
        client.conversations.update(conversation_id, metadata={**metadata, key: value})
    return True


def last_item_id(client: Any, conversation_id: str) -> str | None:
    """The id of the server conversation's newest item, or ``None`` when it holds none."""
    with _found(conversation_id):
        page = client.conversations.items.list(conversation_id, order="desc", limit=1)
    return str(page.data[0].id) if page.data else None
