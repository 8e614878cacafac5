"""chatkeep inside other libraries' conversations.

- ``ChatkeepSession``: an OpenAI Agents SDK session kept in a chatkeep store
  (needs ``pip install 'chatkeep[agents]'``; the SDK loads only when a session
  is made).
- ``response_item_text``, ``item_role``, ``response_item_to_chat``,
  ``response_items_to_chat``, ``branch_to_chat``: read stored Responses API
  items as text, a role, or chat messages, for search, ``show`` and exports.
"""

from __future__ import annotations

from ..items import (
    branch_to_chat,
    item_role,
    response_item_text,
    response_item_to_chat,
    response_items_to_chat,
)
from .agents import ChatkeepSession

__all__ = [
    "ChatkeepSession",
    "branch_to_chat",
    "item_role",
    "response_item_text",
    "response_item_to_chat",
    "response_items_to_chat",
]
