"""Runs one chat turn in each of the four modes: send, stream, async send, async stream.

Tests take the ``mode`` fixture and call ``turn(...)``, so every scenario is
checked the same way in all four.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from chatkeep import AsyncChat, Chat, Conversation, Reply
from fakeopenai import FakeOpenAI

MODES = ["send", "stream", "async-send", "async-stream"]


@dataclass
class Outcome:
    """What a turn produced: the reply (when it finished) and the text deltas seen."""

    reply: Reply | None
    deltas: list[str] = field(default_factory=list)


class Driver:
    """A chat over one conversation, driven in one mode against the loopback server."""

    def __init__(self, mode: str, server: FakeOpenAI, conversation: Conversation, **options: Any) -> None:
        self.mode, self.server, self.conversation = mode, server, conversation
        self.client_options = options.pop("client_options", {"max_retries": 0})
        self.options = options
        self.sync_chat = Chat(conversation, server.client(**self.client_options), **options)

    @property
    def streams(self) -> bool:
        return self.mode.endswith("stream")

    def turn(self, message: Any = None, *, retry: bool = False, **overrides: Any) -> Outcome:
        """Run one turn; exceptions propagate as the chat raised them."""
        if self.mode.startswith("async"):
            return asyncio.run(self._async_turn(message, retry, overrides))
        chat = self.sync_chat
        if self.mode == "send":
            return Outcome(chat.retry(**overrides) if retry else chat.send(message, **overrides))
        stream = chat.retry_stream(**overrides) if retry else chat.stream(message, **overrides)
        outcome = Outcome(None)
        for delta in stream:
            outcome.deltas.append(delta)
        outcome.reply = stream.reply
        return outcome

    async def _async_turn(self, message: Any, retry: bool, overrides: dict[str, Any]) -> Outcome:
        # A fresh client per event loop: the SDK's connection pool belongs to one loop.
        async with self.server.async_client(**self.client_options) as client:
            chat = AsyncChat(self.conversation, client, **self.options)
            if self.mode == "async-send":
                return Outcome(await (chat.retry(**overrides) if retry else chat.send(message, **overrides)))
            stream = chat.retry_stream(**overrides) if retry else chat.stream(message, **overrides)
            outcome = Outcome(None)
            async with stream:
                async for delta in stream:
                    outcome.deltas.append(delta)
            outcome.reply = stream.reply
            return outcome

    def add_tool_result(self, call_id: str, content: Any) -> None:
        if self.mode.startswith("async"):
            asyncio.run(AsyncChat(self.conversation, None, **self.options).add_tool_result(call_id, content))
        else:
            self.sync_chat.add_tool_result(call_id, content)
