"""The exceptions chatkeep raises, all under one base class.

```
ChatkeepError
├── MessageError          a message dict is not a valid OpenAI chat message (also a ValueError)
├── PendingToolCalls      the last assistant message has tool calls without results
├── ResponseError         the server's answer is not a usable chat completion
├── StoreError
│   ├── ConversationNotFound   (also a KeyError)
│   ├── MessageNotFound        (also a KeyError)
│   ├── MigrationError
│   ├── HeadMoved              the head is no longer where the operation expected it
│   ├── ReplyNotSaved          the model answered but the store could not keep it (``reply`` holds it)
│   ├── Unsupported            the store's format cannot hold what was asked
│   ├── EncryptionKeyError     an encrypted store's key is missing or wrong (nothing was changed)
│   └── BackendUnavailable     (also an ImportError, names the extra to install)
├── FormatError           a file cannot be read: carries file, line and reason
├── SettingsError         the settings file or a setting is wrong: names the file, line and key
└── ContextBudgetError    the messages that must be sent do not fit the token budget
```

SDK errors (``openai.APIError`` and friends) are never wrapped: they reach the
caller unchanged after the turn is saved.
"""

from __future__ import annotations


class ChatkeepError(Exception):
    """Base class of every error chatkeep raises."""


class MessageError(ChatkeepError, ValueError):
    """A message is not a valid OpenAI chat message; ``field`` says where."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class PendingToolCalls(ChatkeepError):
    """The conversation has tool calls without results, so the API would refuse it."""

    def __init__(self, call_ids: list[str]) -> None:
        self.call_ids = call_ids
        super().__init__(
            f"tool call{'s' if len(call_ids) > 1 else ''} {', '.join(call_ids)} "
            "have no result yet: add one with add_tool_result(tool_call_id, content) first"
        )


class ResponseError(ChatkeepError):
    """The server answered, but not with a usable chat completion (HTML, no choices, a cut stream).

    The user's message stays saved; ``message_id`` names what was stored for the turn.
    """

    def __init__(self, reason: str, *, message_id: str | None = None) -> None:
        self.reason = reason
        self.message_id = message_id
        super().__init__(reason)


class StoreError(ChatkeepError):
    """A store cannot do what was asked."""


class ConversationNotFound(StoreError, KeyError):
    """No conversation has this id."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        super().__init__(f"no conversation with id {conversation_id!r}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class MessageNotFound(StoreError, KeyError):
    """No message has this id (in this conversation, where one was named)."""

    def __init__(self, message_id: str, conversation_id: str | None = None) -> None:
        self.message_id = message_id
        self.conversation_id = conversation_id
        where = f" in conversation {conversation_id!r}" if conversation_id else ""
        super().__init__(f"no message with id {message_id!r}{where}")

    def __str__(self) -> str:
        return str(self.args[0])


class MigrationError(StoreError):
    """The database schema cannot be brought to the version this chatkeep needs."""


class HeadMoved(StoreError):
    """The conversation's head moved since the caller looked: a compare-and-set found another message.

    Nothing was changed; ``expected`` and ``actual`` name the two heads (``None``: empty).
    """

    def __init__(self, conversation_id: str, expected: str | None, actual: str | None) -> None:
        self.conversation_id = conversation_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"conversation {conversation_id!r} moved on: its head is {actual!r}, not {expected!r} "
            "(another writer changed it); nothing was changed"
        )


class ReplyNotSaved(StoreError):
    """The model answered, but the store could not keep the reply: ``reply`` holds it, so it is not lost."""

    def __init__(self, reply: dict[str, object], cause: BaseException) -> None:
        self.reply = reply
        super().__init__(f"the model's reply arrived but could not be saved ({cause}); it is in this error's reply")


class Unsupported(StoreError):
    """The store's format cannot hold what an operation would write; it is refused before anything changes."""


class EncryptionKeyError(StoreError):
    """An encrypted store's key is missing or does not open it; the message names the store and where keys come from.

    Nothing is written to a store whose key was not verified, so a wrong key never damages it.
    """


class BackendUnavailable(StoreError, ImportError):
    """A backend's optional dependency is missing; the message names the install command."""


class SettingsError(ChatkeepError):
    """The settings file cannot be read, or a setting is unknown or of the wrong kind; names the file, line and key."""

    def __init__(self, reason: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.key = key
        where = [part for part in (file and (f"{file}:{line}" if line else file), key) if part]
        super().__init__(": ".join([*where, reason]))


class FormatError(ChatkeepError):
    """A file cannot be read as the format it claims; names the file, line and reason."""

    def __init__(self, reason: str, *, file: str | None = None, line: int | None = None,
                 column: int | None = None) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.column = column
        where = file or "<input>"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {reason}")


class ContextBudgetError(ChatkeepError):
    """The messages that must be sent do not fit the budget; the message gives the numbers."""

    def __init__(self, reason: str, *, needed: int, budget: int) -> None:
        self.needed = needed
        self.budget = budget
        super().__init__(reason)
