"""Context policies: which stored messages a turn sends. The store always keeps everything.

- ``KeepAll`` (the default) sends the whole branch and refuses, before the API
  call, when it cannot fit.
- ``TrimToBudget`` keeps system and developer messages and fills the rest of the
  budget with the newest messages, never splitting a tool call from its results.
- ``Summarize`` replaces the oldest part with a summary made by a model call,
  stored once and extended as the conversation grows.

Policies are pure: ``select`` returns a ``Context``, or a ``SummaryRequest``
that the chat answers with a model call before asking again, or, given a
history that holds only the newest part of the branch (see :mod:`.loading`),
a ``ReadEarlier`` that the chat answers by reading further back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ..errors import ChatkeepError, ContextBudgetError
from ..messages import MessageDict
from ..store.base import StoredMessage
from .history import History, stored_count
from .tokens import REPLY_PRIMING

__all__ = [
    "Context",
    "ContextBudgetError",
    "ContextPolicy",
    "KeepAll",
    "ReadEarlier",
    "Summarize",
    "SummaryRequest",
    "TrimToBudget",
]


@dataclass(frozen=True)
class Context:
    """What a turn sends: the messages, which stored ones they are, and their tokens."""

    messages: list[MessageDict]
    start: int
    pinned: list[int]
    tokens: int
    budget: int | None
    summary: StoredMessage | None = None

    def describe(self, history: History) -> dict[str, Any]:
        """A compact record of what was sent, kept with the reply."""
        record: dict[str, Any] = {"tokens": self.tokens, "budget": self.budget, "count": len(self.messages)}
        if history.items[self.start:]:
            record["from"] = history.items[self.start].id
            record["to"] = history.items[-1].id
        if self.pinned:
            record["pinned"] = [history.items[i].id for i in self.pinned]
        if self.summary is not None:
            record["summary"] = self.summary.id
        return record


@dataclass(frozen=True)
class SummaryRequest:
    """Ask the chat to summarize ``messages`` (after ``previous``, if any) and store the result."""

    messages: list[MessageDict]
    previous: StoredMessage | None
    first_id: str
    last_id: str
    end: int


@dataclass(frozen=True)
class ReadEarlier:
    """Ask the chat to read the branch further back (the history ``skipped`` messages), then ask again.

    ``tokens``: until the droppable messages read hold that many (``None``: back to the root).
    """

    tokens: int | None


class ContextPolicy(Protocol):
    """Chooses what a turn sends from the branch's ``History``.

    A policy whose class sets ``reads_tail = True`` (``TrimToBudget``) is given,
    on a new process's first turn, only the newest part of a long branch and its
    pinned messages, and answers ``ReadEarlier`` when its window could reach
    further back; any other policy is given the whole branch.
    """

    needs_budget: bool

    def select(
        self, history: History, budget: int | None, *, extra: int = 0, summary: StoredMessage | None = None
    ) -> Context | SummaryRequest | ReadEarlier:
        """``extra`` is what the request spends outside the messages (tool definitions)."""
        ...


def _too_big(needed: int, budget: int, what: str) -> ContextBudgetError:
    return ContextBudgetError(
        f"{what} needs {needed:,} tokens but the budget is {budget:,}: "
        "use TrimToBudget() or Summarize(), or raise the budget",
        needed=needed, budget=budget,
    )


@dataclass
class KeepAll:
    """Send the whole branch; refuse before the API call when it does not fit the budget."""

    needs_budget: bool = False

    def select(
        self, history: History, budget: int | None, *, extra: int = 0, summary: StoredMessage | None = None
    ) -> Context | ReadEarlier:
        if history.skipped:
            return ReadEarlier(None)  # every message is sent: all of them must be read
        tokens = history.total + REPLY_PRIMING + extra
        if budget is not None and tokens > budget:
            raise _too_big(tokens, budget, f"the conversation ({len(history):,} messages)")
        return Context(history.messages(range(len(history))), 0, [], tokens, budget)


def _fit(history: History, room: int, floor: int = 0) -> int:
    """Where the newest messages that fit ``room`` start, never with a tool result cut from its call.

    A window starting on tool results moves past them; when nothing but tool
    results would be left, it moves back to their call instead (and the
    budget check then says whether that fits), because the newest message
    must be sent and the API refuses a result without its call.
    """
    start = history.start_for(room, floor=floor)
    items = history.items
    forward = start
    while forward < len(items) and items[forward].role == "tool":
        forward += 1
    if forward < len(items) or start >= len(items):
        return forward
    while start > floor and items[start].role == "tool":
        start -= 1  # back to the assistant message that made the calls
    return start


def _assemble(history: History, start: int, budget: int, extra: int, prefix: list[MessageDict],
              prefix_tokens: int, summary: StoredMessage | None = None) -> Context:
    pinned = history.pinned_before(start)
    messages = history.messages(pinned) + prefix + history.messages(range(start, len(history)))
    tokens = (sum(history.tokens[i] for i in history.pinned) + history.free_tokens(start)
              + prefix_tokens + REPLY_PRIMING + extra)
    if tokens > budget:
        raise _too_big(tokens, budget, "the system messages and the newest message")
    return Context(messages, start, pinned, tokens, budget, summary)


@dataclass
class TrimToBudget:
    """Keep system and developer messages; fill the rest of the budget with the newest messages.

    Given a history that skipped the older messages (only their pinned ones are
    in it), it asks to ``ReadEarlier`` whenever everything read would fit, since
    more might: what it sends is always what the whole branch would give.
    """

    needs_budget: bool = True
    #: It needs only the newest messages and the pinned ones (see :mod:`.loading`).
    reads_tail: ClassVar[bool] = True

    def select(
        self, history: History, budget: int | None, *, extra: int = 0, summary: StoredMessage | None = None
    ) -> Context | ReadEarlier:
        if budget is None:
            raise ChatkeepError("TrimToBudget needs a budget: pass context_window= or budget=")
        room = budget - history.pinned_tokens - REPLY_PRIMING - extra
        if history.skipped and history.free_tokens(history.loaded_from) <= room:
            return ReadEarlier(max(budget, 1))
        start = min(_fit(history, room), max(len(history) - 1, 0))
        while start > 0 and history.items[start].role == "tool":
            start -= 1  # the newest message is sent even when alone it is too big, and a result with its call
        return _assemble(history, start, budget, extra, [], 0)


SUMMARY_PROMPT = (
    "You keep a running summary of a conversation between a user and an assistant. "
    "Write a concise summary of the conversation below that keeps every fact, decision, name, "
    "number and open question needed to continue it. If an earlier summary is given, extend it "
    "with the new messages instead of starting over. Reply with the summary only."
)


@dataclass
class Summarize:
    """Summarize the oldest part once the branch passes the budget; keep the newest messages as they are.

    When it summarizes, it keeps only ``keep`` (a fraction of the budget) of newest
    messages, so the next summary is needed only after the branch has grown again.
    ``model`` and ``prompt`` set the summary call; the summary is stored as a
    message that names the messages it covers, and later summaries extend it.
    """

    model: str | None = None
    prompt: str = SUMMARY_PROMPT
    keep: float = 0.5
    max_summary_tokens: int = 1_000
    needs_budget: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def select(
        self, history: History, budget: int | None, *, extra: int = 0, summary: StoredMessage | None = None
    ) -> Context | SummaryRequest | ReadEarlier:
        if budget is None:
            raise ChatkeepError("Summarize needs a budget: pass context_window= or budget=")
        if history.skipped:
            return ReadEarlier(None)  # what a summary covers is found among all the messages
        covered = _covered_end(history, summary)
        prefix, prefix_tokens = _summary_prefix(history, summary)
        room = budget - history.pinned_tokens - prefix_tokens - REPLY_PRIMING - extra
        if history.free_tokens(covered) <= room:
            return _assemble(history, covered, budget, extra, prefix, prefix_tokens, summary)
        target = int((budget - history.pinned_tokens - self.max_summary_tokens - REPLY_PRIMING - extra) * self.keep)
        end = min(_fit(history, target, floor=covered), len(history) - 1)
        while end > covered and history.items[end].role == "tool":
            end -= 1  # the newest message stays unsummarized with the call it answers
        dropped = [history.items[i] for i in range(covered, end) if history.items[i].role not in ("system", "developer")]
        if not dropped:
            return _assemble(history, covered, budget, extra, prefix, prefix_tokens, summary)
        return SummaryRequest(
            messages=[m.message for m in dropped], previous=summary,
            first_id=dropped[0].id, last_id=history.items[end - 1].id, end=end,
        )

    def request(self, ask: SummaryRequest, model: str) -> dict[str, Any]:
        """The ``chat.completions.create`` arguments of the summary call."""
        transcript = "\n\n".join(_line(m) for m in ask.messages)
        earlier = str(ask.previous.message.get("content")) if ask.previous is not None else ""
        user = (f"Earlier summary:\n{_strip_label(earlier)}\n\nNew messages:\n{transcript}" if earlier
                else f"Conversation:\n{transcript}")
        request: dict[str, Any] = {
            "model": self.model or model,
            "messages": [{"role": "system", "content": self.prompt}, {"role": "user", "content": user}],
            **self.options,
        }
        if "max_tokens" not in request:  # the plan counted on this limit: the call must keep to it
            request.setdefault("max_completion_tokens", self.max_summary_tokens)
        return request


SUMMARY_LABEL = "Summary of the earlier conversation:\n"


def summary_message(text: str) -> MessageDict:
    """The message that stands for the summarized messages in later requests."""
    return {"role": "system", "content": SUMMARY_LABEL + text.strip()}


def _strip_label(text: str) -> str:
    return text[len(SUMMARY_LABEL):] if text.startswith(SUMMARY_LABEL) else text


def _line(message: MessageDict) -> str:
    from ..messages import message_text

    return f"{message.get('role', '?')}: {message_text(message)}"


def _covered_end(history: History, summary: StoredMessage | None) -> int:
    """The index just after the last message the summary covers (0 without one)."""
    if summary is None:
        return 0
    last = summary.metadata.get("summary", {}).get("to")
    index = history.index.get(last) if isinstance(last, str) else None
    return 0 if index is None else index + 1


def _summary_prefix(history: History, summary: StoredMessage | None) -> tuple[list[MessageDict], int]:
    if summary is None:
        return [], 0
    counted = stored_count(summary, history.key)
    return [summary.message], counted if counted is not None else history.tokens_of(summary.message)
