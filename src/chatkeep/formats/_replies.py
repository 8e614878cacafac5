"""One reply of a chat app as the API's messages: text, tool calls, their results, and the text after.

Chat apps keep a reply that used tools as one message: Claude's content
blocks, Open WebUI's ``output`` items, text around tool calls. The API wants
an assistant message carrying the calls, a ``tool`` message answering each,
then the assistant's text. :class:`Reply` is fed the pieces in order and
gives that run of messages; thinking is collected apart from the answer.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Reply"]


class Reply:
    """Folds a reply's pieces, in order, into chat messages (:meth:`finish`)."""

    def __init__(self, id_prefix: str) -> None:
        self._prefix = id_prefix
        self._out: list[dict[str, Any]] = []
        self._text: list[str] = []
        self._calls: list[dict[str, Any]] = []
        self._pending: list[str] = []
        self._made = 0
        self.thinking: list[str] = []
        #: Calls whose results the source lost (each answered with an empty ``tool`` message).
        self.unanswered: list[str] = []

    def _flush(self) -> None:
        if self._text or self._calls:
            message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(self._text) if self._text else None}
            if self._calls:
                message["tool_calls"] = self._calls
            self._out.append(message)
        self._text, self._calls = [], []

    def text(self, text: str) -> None:
        self._text.append(text)

    def think(self, text: str) -> None:
        self.thinking.append(text)

    def call(self, call_id: str, name: str, arguments: Any) -> str:
        """Add a tool call; without an id it gets ``<prefix>_<n>``. Returns the id used."""
        if not call_id or call_id in self._pending:
            call_id = f"{self._prefix}_{self._made}"
        self._made += 1
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
        self._calls.append({"id": call_id, "type": "function",
                            "function": {"name": name or "tool", "arguments": arguments}})
        self._pending.append(call_id)
        return call_id

    def result(self, call_id: str, content: str, *, unasked: bool = False) -> bool:
        """Answer a call (by id, else the oldest open one); ``False`` when no call is open.

        With ``unasked``, a result naming a call that is not open is kept as
        its own ``tool`` message (as the source had it) instead.
        """
        if call_id not in self._pending:
            if unasked and call_id:
                self._flush()
                self._out.append({"role": "tool", "tool_call_id": call_id, "content": content})
                return True
            if not self._pending:
                return False
            call_id = self._pending[0]
        self._flush()
        self._pending.remove(call_id)
        self._out.append({"role": "tool", "tool_call_id": call_id, "content": content})
        return True

    def finish(self) -> list[dict[str, Any]]:
        """The messages, at least one: an empty assistant message for a reply with nothing to send."""
        self._flush()
        # The API refuses a call left unanswered before the next message: the source lost its result.
        for call_id in self._pending:
            self._out.append({"role": "tool", "tool_call_id": call_id, "content": ""})
        self.unanswered, self._pending = list(self._pending), []
        return self._out or [{"role": "assistant", "content": ""}]
