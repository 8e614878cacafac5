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
    AsyncResponsesChat,
    AsyncResponsesStream,
    Chat,
    Reply,
    ReplyStream,
    ResponsesChat,
    ResponsesReply,
    ResponsesStream,
    capture,
    record_chunks,
    record_completion,
    recording,
)
from .context import KeepAll, Summarize, TokenCounter, TrimToBudget
from .errors import (
    BackendUnavailable,
    ChatkeepError,
    ContextBudgetError,
    ConversationNotFound,
    FormatError,
    HeadMoved,
    MessageError,
    MessageNotFound,
    MigrationError,
    PendingToolCalls,
    ReplyNotSaved,
    ResponseError,
    StoreError,
    Unsupported,
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

__version__ = "0.2.0"

__all__ = [
    "AsyncChat",
    "AsyncReplyStream",
    "AsyncResponsesChat",
    "AsyncResponsesStream",
    "BackendUnavailable",
    "Chat",
    "ChatkeepError",
    "ContextBudgetError",
    "Conversation",
    "ConversationNotFound",
    "ConversationRecord",
    "FormatError",
    "HeadMoved",
    "JSONFileStore",
    "KeepAll",
    "MessageDict",
    "MessageError",
    "MessageNotFound",
    "MigrationError",
    "PendingToolCalls",
    "Reply",
    "ReplyNotSaved",
    "ReplyStream",
    "ResponseError",
    "ResponsesChat",
    "ResponsesReply",
    "ResponsesStream",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoredMessage",
    "Summarize",
    "TokenCounter",
    "TrimToBudget",
    "Unsupported",
    "capture",
    "message_text",
    "open_store",
    "record_chunks",
    "record_completion",
    "recording",
    "user_message",
    "validate_message",
    "validate_messages",
]
