"""``ResponsesChat`` and ``AsyncResponsesChat``: conversations over the Responses API, every item saved.

The siblings of ``Chat`` and ``AsyncChat`` for ``client.responses.create``.
The new input is saved before the call; each output item (messages, function
calls, reasoning items, kinds newer than chatkeep) is saved as it came, one
stored message per item with ``kind="response_item"``. A failed call leaves
the input marked unanswered and re-raises the SDK's exception; a stream cut
off saves what arrived, marked ``incomplete``.

With ``store_on_server=True`` the server keeps each response and the next
turn names it (``previous_response_id``), sending only the new input; the
local copy stays complete, and chatkeep falls back to sending the whole
branch when the server no longer has the response (expired, or never there).

With ``conversation="conv_..."`` (as ``responses.create`` takes it, in the
chat's defaults or one call's keywords) the turn runs on a server
conversation (the Conversations API): the server keeps the context, and the
turn sends only what that conversation lacks, the new input and any turns
added here since. Every item is still kept here; output items remember the
server conversation and their ids there, and a local conversation not yet
linked to one is linked to it (``metadata["openai"]``, see
:mod:`chatkeep.remote`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..items import ITEM_KIND, input_items, item_type
from ..redact import client_secrets
from ..store.base import StoredMessage
from ..store.conversation import Conversation
from ..store.threads import run_blocking
from .effects import Steps, arun, astream, run, stream
from .responses_turn import ResponsesTurn
from .steps import responses_turn
from .streams import AsyncTextStream, Slot, TextStream

__all__ = ["AsyncResponsesChat", "AsyncResponsesStream", "ResponsesChat", "ResponsesReply", "ResponsesStream"]

Input = str | Mapping[str, Any] | Sequence[Any] | None


@dataclass(frozen=True)
class ResponsesReply:
    """A finished turn's output: ``str(reply)`` is its text, ``items`` the stored output items."""

    items: list[StoredMessage]
    text: str
    response_id: str | None
    model: str | None
    usage: dict[str, Any] | None
    finish_reason: str | None

    @property
    def output(self) -> list[dict[str, Any]]:
        """The output items as the server sent them."""
        return [stored.message for stored in self.items]

    @property
    def function_calls(self) -> list[dict[str, Any]]:
        """The function calls the model asked for (answer them with ``add_tool_result``)."""
        return [item for item in self.output if item_type(item) == "function_call"]

    @property
    def status(self) -> str:
        return self.items[-1].status if self.items else "error"

    def __str__(self) -> str:
        return self.text


def responses_reply(stored: list[StoredMessage]) -> ResponsesReply:
    """The reply for a response's stored output items."""
    texts = [
        part["text"]
        for item in stored if item_type(item.message) == "message"
        for part in item.message.get("content") or () if isinstance(part, Mapping) and part.get("type") == "output_text"
    ]
    last = stored[-1]
    return ResponsesReply(stored, "".join(texts), last.metadata.get("response_id"), last.model, last.usage,
                          last.finish_reason)


def _server_conversation(value: Any) -> str | None:
    """The server conversation id in a ``conversation`` option: ``"conv_..."`` or ``{"id": "conv_..."}``."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _on_server(conversation: Conversation, branch: list[StoredMessage], server: str) -> tuple[int, dict[str, Any] | None]:
    """Where ``branch`` and the server conversation part (the last message it holds: -1 for none), and
    the metadata linking the conversation to it, when it is not linked to one yet."""
    from ..remote.link import in_step, linked_metadata, server_link

    record = conversation.record
    link = server_link(record)
    return in_step(branch, server, link), linked_metadata(record, server) if link is None else None


def _tool_output(call_id: str, output: Any) -> dict[str, Any]:
    if not isinstance(output, (str, list)):
        output = json.dumps(output, ensure_ascii=False)
    return {"type": "function_call_output", "call_id": call_id, "output": output}


class _ResponsesBase:
    """Settings and the turn shared by ``ResponsesChat`` and ``AsyncResponsesChat``.

    ``defaults`` are keyword arguments for ``responses.create`` (``instructions``,
    ``tools``, ``reasoning``, ``include``...), which each call's own keywords
    override. ``max_items`` sends only about the newest items: the window
    widens back so that no tool output loses its call. The store keeps everything.
    """

    def __init__(self, conversation: Conversation, /, client: Any, model: str = "gpt-4o", *,
                 store_on_server: bool = False, max_items: int | None = None, **defaults: Any) -> None:
        self.conversation = conversation
        self.client = client
        self.model = model
        self.store_on_server = store_on_server
        self.max_items = max_items
        self.defaults = defaults
        # The branch as last seen, reused while the head has not moved.
        self._cache: tuple[str | None, list[StoredMessage]] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conversation.id!r}, model={self.model!r})"

    def _options(self, overrides: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        options = {**self.defaults, **overrides}
        return str(options.pop("model", self.model)), options

    def _branch(self, conversation: Conversation) -> list[StoredMessage]:
        """The cached branch while the stored head is still its tip, else read afresh (taken out for the turn)."""
        head = conversation.record.head_id
        cached, self._cache = self._cache, None
        if cached is not None and cached[0] == head:
            return cached[1]
        return conversation.history()

    def _prepare(self, message: Input, overrides: Mapping[str, Any] | None = None) -> ResponsesTurn:
        """Hold the tip, read the branch, plan the turn, save the new input (blocking: one worker-thread call)."""
        new = None if message is None else input_items(message)
        server = _server_conversation(self._options(overrides or {})[1].get("conversation"))
        store = self.conversation.store
        store.require("response_items")
        lease = store.lease(self.conversation.id)
        try:
            conversation = Conversation(lease.store, self.conversation.id)
            branch = self._branch(conversation)
            point, link = _on_server(conversation, branch, server) if server is not None else (-1, None)
            turn = ResponsesTurn(conversation, branch, new, chain=self.store_on_server,
                                 max_items=self.max_items, lease=lease, secrets=client_secrets(self.client),
                                 server=server, server_point=point, link=link)
            turn.save_input()
        except BaseException:
            lease.release()
            raise
        return turn

    def _keep(self, turn: ResponsesTurn) -> None:
        self._cache = (turn.branch[-1].id if turn.branch else None, turn.branch)

    def _turn(self, message: Input, overrides: Mapping[str, Any], *, streaming: bool = False,
              slot: Slot[ResponsesReply] | None = None) -> Steps[ResponsesReply]:
        return responses_turn(self, self.client.responses.create, message, overrides, streaming=streaming,
                              slot=slot)


class ResponsesStream(TextStream["ResponsesReply"]):
    """The text deltas of a streamed response; ``reply`` is set once it is saved."""


class ResponsesChat(_ResponsesBase):
    """A conversation over ``client.responses.create`` (an ``openai.OpenAI``): ``send`` or ``stream``, all saved."""

    def send(self, message: Input = None, /, **overrides: Any) -> ResponsesReply:
        """Save ``message`` (text, an item, or a list of items), ask the model, save and return its output.

        Without a message the branch is answered as it stands (after tool
        outputs, say). When the call fails, the input stays saved and marked
        unanswered, and the SDK's exception is raised unchanged.
        """
        return run(self._turn(message, overrides))

    def stream(self, message: Input = None, /, **overrides: Any) -> ResponsesStream:
        """Yield the output text as it arrives; the input is saved when iteration starts, the output when it ends."""
        out = ResponsesStream()
        out._events = stream(self._turn(message, overrides, streaming=True, slot=out._slot))
        return out

    def add_tool_result(self, call_id: str, output: Any) -> StoredMessage:
        """Store a ``function_call_output`` for one of the model's calls; the next ``send()`` sends it.

        ``output`` is text, content parts, or anything JSON can write (sent as JSON text).
        """
        return self.conversation.append(_tool_output(call_id, output), kind=ITEM_KIND)


class AsyncResponsesStream(AsyncTextStream["ResponsesReply"]):
    """The text deltas of a streamed response, for ``async for``; ``reply`` is set once it is saved."""


class AsyncResponsesChat(_ResponsesBase):
    """``ResponsesChat`` for ``openai.AsyncOpenAI``: ``await chat.send(...)``, ``async for t in chat.stream(...)``."""

    async def send(self, message: Input = None, /, **overrides: Any) -> ResponsesReply:
        """Save ``message``, ask the model, save and return its output (see ``ResponsesChat.send``)."""
        return await arun(self._turn(message, overrides))

    def stream(self, message: Input = None, /, **overrides: Any) -> AsyncResponsesStream:
        """The output text as it arrives, for ``async for``; the input is saved when iteration starts."""
        out = AsyncResponsesStream()
        out._events = astream(self._turn(message, overrides, streaming=True, slot=out._slot))
        return out

    async def add_tool_result(self, call_id: str, output: Any) -> StoredMessage:
        """Store a ``function_call_output`` (see ``ResponsesChat.add_tool_result``)."""
        return await run_blocking(lambda: self.conversation.append(_tool_output(call_id, output), kind=ITEM_KIND))
