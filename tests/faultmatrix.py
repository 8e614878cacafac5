"""The fault matrix: each fault, how it is injected, and what chatkeep promises in each mode.

API faults come from the loopback server; store faults are real: another
connection holding SQLite's write lock past the busy timeout, a full disk (a
tiny tmpfs filled to the brim), a read-only database file. tests/test_faults.py
checks every row in all four modes, then removes the fault and checks that the
conversation goes on; docs/reliability.md shows the same table (``python
tests/faultmatrix.py`` prints it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import fakeopenai as fo

MODES = ("send", "stream", "async-send", "async-stream")


@dataclass(frozen=True)
class Outcome:
    """What the caller sees (an exception name, or "reply") and what the store then holds."""

    raised: str
    stored: tuple[str, ...]  # "role:status" along the branch

    def describe(self) -> str:
        what = "the reply" if self.raised == "reply" else f"`{self.raised}`"
        return f"{what}; stored: {', '.join(self.stored) or 'nothing'}"


@dataclass(frozen=True)
class Fault:
    name: str
    replies: tuple[Any, ...]
    send: Outcome
    stream: Outcome
    client_options: dict[str, Any] = field(default_factory=lambda: {"max_retries": 0})
    refused_port: bool = False
    store_fault: str | None = None  # "locked", "full", "read-only": injected around the turn
    prompt: str = "hello"

    def outcome(self, mode: str) -> Outcome:
        return self.stream if mode.endswith("stream") else self.send

    @property
    def kept(self) -> str:
        """Where the user's message is after the fault."""
        if self.store_fault:
            return "not stored, nothing sent: refused before the call (the CLI keeps it at the prompt)"
        return "stored"


UNANSWERED = Outcome("", ("user:error",))


def _lost(raised: str) -> Outcome:
    return Outcome(raised, ("user:error",))


PARTIAL = ("user:complete", "assistant:incomplete")
ANSWERED = Outcome("reply", ("user:complete", "assistant:complete"))

FAULTS: list[Fault] = [
    Fault("429 rate limit, then success (SDK retries)", (fo.error(429), fo.text("ok")), ANSWERED, ANSWERED,
          client_options={"max_retries": 2}),
    Fault("429 rate limit, retries exhausted", (fo.error(429),) * 3, _lost("RateLimitError"), _lost("RateLimitError"),
          client_options={"max_retries": 2}),
    Fault("500 server error", (fo.error(500),), _lost("InternalServerError"), _lost("InternalServerError")),
    Fault("503 overloaded", (fo.error(503),), _lost("InternalServerError"), _lost("InternalServerError")),
    Fault("reply slower than the client's timeout", (fo.slow(3.0),), _lost("APITimeoutError"),
          _lost("APITimeoutError"), client_options={"max_retries": 0, "timeout": 0.3}),
    Fault("connection refused", (), _lost("APIConnectionError"), _lost("APIConnectionError"), refused_port=True),
    Fault("connection dropped mid-reply", (fo.drop_after(4),), _lost("APIConnectionError"),
          Outcome("APIConnectionError", PARTIAL)),
    Fault("malformed JSON body", (fo.malformed_json(),), _lost("JSONDecodeError"), _lost("ResponseError")),
    Fault("malformed SSE event", (fo.malformed_sse(after=3),), _lost("JSONDecodeError"),
          Outcome("JSONDecodeError", PARTIAL)),
    Fault("a reply with no choices", (fo.no_choices(),), _lost("ResponseError"), _lost("ResponseError")),
    Fault("HTTP 200 with an HTML page", (fo.html_200(),), _lost("ResponseError"), _lost("ResponseError")),
    Fault("reply ends without finish_reason (stream: nor [DONE])", (fo.end_without_done("Half a th"),),
          Outcome("ResponseError", PARTIAL), Outcome("ResponseError", PARTIAL)),
    Fault("server ignores stream=true and answers JSON", (fo.json_for_stream(),), ANSWERED, _lost("ResponseError")),
    Fault("connection dropped in the middle of a tool call", (fo.drop_mid_call(3),), _lost("APIConnectionError"),
          Outcome("APIConnectionError", PARTIAL)),
    Fault("content filter stop: content null, no tool calls", (fo.filtered(),), ANSWERED, ANSWERED),
    Fault("SQLite write lock held by another process past the busy timeout", (),
          Outcome("StoreError", ()), Outcome("StoreError", ()), store_fault="locked"),
    Fault("disk full while saving the message", (), Outcome("StoreError", ()),
          Outcome("StoreError", ()), store_fault="full", prompt="x" * 300_000),
    Fault("read-only database file", (), Outcome("StoreError", ()), Outcome("StoreError", ()),
          store_fault="read-only"),
]


def render() -> str:
    """The Markdown table of the matrix."""
    lines = ["| fault | send, async send | stream, async stream | user's message | usable afterwards |",
             "|---|---|---|---|---|"]
    for fault in FAULTS:
        lines.append(f"| {fault.name} | {fault.send.describe()} | {fault.stream.describe()} | {fault.kept} | yes |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
