"""chatkeep keeps OpenAI chat conversations: every turn saved durably the moment it happens.

>>> from chatkeep import open_store
>>> store = open_store(":memory:")
>>> conv = store.conversation("support-42", create=True)
>>> conv.append({"role": "user", "content": "Hello"}).role
'user'
>>> conv.messages
[{'role': 'user', 'content': 'Hello'}]

Importing chatkeep does not import the ``openai`` SDK; the chat classes load it
only when used.
"""

from __future__ import annotations

from .client import (
    AsyncChat,
    AsyncReplyStream,
    Chat,
    Reply,
    ReplyStream,
    record_chunks,
    record_completion,
    recording,
)
from .errors import (
    BackendUnavailable,
    ChatkeepError,
    ConversationNotFound,
    FormatError,
    MessageError,
    MessageNotFound,
    MigrationError,
    PendingToolCalls,
    ResponseError,
    StoreError,
)
from .messages import MessageDict, message_text, user_message, validate_message, validate_messages
from .store import (
    Conversation,
    ConversationRecord,
    JSONFileStore,
    SQLiteStore,
    Store,
    StoredMessage,
    open_store,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncChat",
    "AsyncReplyStream",
    "Chat",
    "PendingToolCalls",
    "Reply",
    "ReplyStream",
    "ResponseError",
    "record_chunks",
    "record_completion",
    "recording",
    "BackendUnavailable",
    "ChatkeepError",
    "Conversation",
    "ConversationNotFound",
    "ConversationRecord",
    "FormatError",
    "JSONFileStore",
    "MessageDict",
    "MessageError",
    "MessageNotFound",
    "MigrationError",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoredMessage",
    "message_text",
    "open_store",
    "user_message",
    "validate_message",
    "validate_messages",
]
