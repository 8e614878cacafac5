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

# The exceptions are cheap and every caller catches them: imported now. The rest
# loads on first use (PEP 562), so ``import chatkeep`` and the CLI's cold start
# pay only for what they touch.
from .errors import (
    BackendUnavailable,
    ChatkeepError,
    ContextBudgetError,
    ConversationNotFound,
    EncryptionKeyError,
    FormatError,
    HeadMoved,
    MessageError,
    MessageNotFound,
    MigrationError,
    PendingToolCalls,
    ReplyNotSaved,
    ResponseError,
    SettingsError,
    StoreError,
    Unsupported,
)

# typing.TYPE_CHECKING without importing typing, which a CLI start would pay for (deleted below).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
    from .messages import (
        MessageDict,
        message_text,
        user_message,
        validate_message,
        validate_messages,
    )
    from .store import (
        Conversation,
        ConversationRecord,
        JSONFileStore,
        SQLiteStore,
        Store,
        StoredMessage,
        open_store,
    )
del TYPE_CHECKING

# Each public name and the module it comes from.
_LAZY = {
    "AsyncChat": ".client",
    "AsyncReplyStream": ".client",
    "AsyncResponsesChat": ".client",
    "AsyncResponsesStream": ".client",
    "Chat": ".client",
    "Reply": ".client",
    "ReplyStream": ".client",
    "ResponsesChat": ".client",
    "ResponsesReply": ".client",
    "ResponsesStream": ".client",
    "capture": ".client",
    "record_chunks": ".client",
    "record_completion": ".client",
    "recording": ".client",
    "KeepAll": ".context",
    "Summarize": ".context",
    "TokenCounter": ".context",
    "TrimToBudget": ".context",
    "MessageDict": ".messages",
    "message_text": ".messages",
    "user_message": ".messages",
    "validate_message": ".messages",
    "validate_messages": ".messages",
    "Conversation": ".store",
    "ConversationRecord": ".store",
    "JSONFileStore": ".store",
    "SQLiteStore": ".store",
    "Store": ".store",
    "StoredMessage": ".store",
    "open_store": ".store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chatkeep' has no attribute {name!r}")
    from importlib import import_module  # here: the CLI's fast path never needs it

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
    "EncryptionKeyError",
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
    "SettingsError",
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
