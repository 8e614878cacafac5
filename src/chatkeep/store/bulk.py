"""Records for importing whole conversations in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..messages import MessageDict
from .base import MessageKind, MessageStatus

__all__ = ["ImportConversation", "ImportMessage", "ImportSummary"]


@dataclass
class ImportMessage:
    """One message to import; ``key`` is the source's own id, used to skip it on a second import."""

    message: MessageDict
    key: str | None = None
    parent_key: str | None = None  # the key of its parent in the same conversation; None: a root
    created_at: datetime | None = None
    model: str | None = None
    status: MessageStatus = "complete"
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    kind: MessageKind = "chat"


@dataclass
class ImportConversation:
    """A conversation to import, parents before children.

    ``key`` identifies it at its source (``"chatgpt:<uuid>"``): importing the
    same key again adds only the messages whose keys are new. ``head_key`` names
    the message at the tip of the current branch (default: the last one).
    """

    messages: list[ImportMessage]
    key: str | None = None
    id: str | None = None
    title: str | None = None
    owner: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    head_key: str | None = None


@dataclass
class ImportSummary:
    """What an import changed."""

    conversations_created: int = 0
    conversations_updated: int = 0
    messages_added: int = 0
    messages_skipped: int = 0
    conversation_ids: list[str] = field(default_factory=list)

    def add(self, other: ImportSummary) -> None:
        self.conversations_created += other.conversations_created
        self.conversations_updated += other.conversations_updated
        self.messages_added += other.messages_added
        self.messages_skipped += other.messages_skipped
        self.conversation_ids += other.conversation_ids
