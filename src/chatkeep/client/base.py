"""What ``Chat`` and ``AsyncChat`` share: settings, the request, the branch cache."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..store.base import StoredMessage
from ..store.conversation import Conversation
from .plan import Turn
from .turn import Reply, build_request, reply_of

__all__ = ["ChatBase"]


class ChatBase:
    """Settings and non-I/O steps of a chat; subclasses add the calls."""

    def __init__(self, conversation: Conversation, client: Any, model: str = "gpt-4o", **defaults: Any) -> None:
        self.conversation = conversation
        self.client = client
        self.model = model
        self.defaults = defaults
        # The branch as last seen; reused while the head has not moved, so a turn
        # does not re-read the whole conversation.
        self._path: list[StoredMessage] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conversation.id!r}, model={self.model!r})"

    def _cached_path(self, head_id: str | None) -> list[StoredMessage] | None:
        cached = self._path
        if cached is not None and (cached[-1].id if cached else None) == head_id:
            return cached
        return None

    def _request(self, turn: Turn, overrides: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        options = {**self.defaults, **overrides}
        return build_request(options.pop("model", self.model), turn.messages, options, stream=stream)

    def _settle(self, turn: Turn, stored: StoredMessage) -> Reply:
        self._path = turn.path_after(stored)
        return reply_of(stored)
