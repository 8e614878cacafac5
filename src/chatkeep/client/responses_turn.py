"""One Responses API turn's logic, without I/O: what to send, what to store, the stream fold.

``ResponsesChat`` and ``AsyncResponsesChat`` are thin shells around this
module; they differ only where they wait. Nothing here imports ``openai``:
responses and events are read by attribute, so any object of the SDK's shape
works. Every item is stored as it came, one stored message per item, with
``kind="response_item"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ChatkeepError, PendingToolCalls, ResponseError
from ..items import (
    ITEM_KIND,
    Item,
    NoChatShape,
    as_item,
    chat_to_items,
    item_type,
    pending_calls,
    widen_window,
)
from ..store.base import Draft, MessageStatus, StoredMessage
from ..store.conversation import Conversation
from ..store.protocol import Lease
from .plan import interruption_text

__all__ = [
    "OutputRecord",
    "ResponseAccumulator",
    "ResponsesTurn",
    "branch_items",
    "record_from_response",
]

Operation = Callable[[], Any]


@dataclass
class OutputRecord:
    """What to store for one response: its output items and what the server said about it.

    ``status`` is chatkeep's: ``complete`` once the server ended the response
    (``completed``, or ``incomplete`` with a reason, as a chat reply cut by
    ``length`` is complete); ``incomplete`` when the stream broke first.
    """

    items: list[Item]
    response_id: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    status: MessageStatus = "complete"
    finish_reason: str | None = None


def _dump(value: Any) -> Any:
    if value is None or isinstance(value, (dict, list, str, int, float)):
        return value
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_unset=True, warnings=False)
    return value


def _finish_reason(response: Any) -> str | None:
    details = _dump(getattr(response, "incomplete_details", None))
    if isinstance(details, Mapping) and details.get("reason"):
        return str(details["reason"])
    status = getattr(response, "status", None)
    return str(status) if status else None


def _failure(response: Any) -> ResponseError | None:
    if getattr(response, "status", None) != "failed":
        return None
    error = _dump(getattr(response, "error", None)) or {}
    reason = error.get("message") if isinstance(error, Mapping) else None
    return ResponseError(f"the response failed: {reason or 'the server gave no reason'}")


def record_from_response(response: Any) -> OutputRecord:
    """Turn a ``Response`` into what is stored; raise ``ResponseError`` when it is unusable."""
    if not hasattr(response, "output"):
        preview = str(response)[:80].replace("\n", " ")
        raise ResponseError(f"the server's answer is not a Responses API response: {preview!r}")
    failure = _failure(response)
    if failure is not None:
        raise failure
    items = [as_item(item) for item in response.output or ()]
    if not items:
        raise ResponseError("the server's response has no output items")
    return OutputRecord(
        items=items,
        response_id=getattr(response, "id", None),
        model=getattr(response, "model", None),
        usage=_dump(getattr(response, "usage", None)),
        finish_reason=_finish_reason(response),
    )


class ResponseAccumulator:
    """Folds streamed Responses API events into output items.

    Each item is what ``response.output_item.done`` said, or, for one still
    arriving when the stream broke, what ``output_item.added`` and the text and
    argument deltas built so far (its ``status`` then says ``incomplete``). The
    ``response.completed`` event's own output is the final word.
    """

    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self.finished: set[int] = set()
        self.response_id: str | None = None
        self.model: str | None = None
        self.final: Any = None
        self.error: str | None = None
        self.events = 0
        self.first_token_ms: float | None = None

    @property
    def done(self) -> bool:
        """True once the server ended the response (completed, incomplete or failed)."""
        return self.final is not None

    @property
    def started(self) -> bool:
        return bool(self.items) or bool(self.final is not None and self.final.output)

    def feed(self, event: Any) -> str | None:
        """Fold one event; return the output text it adds, if any."""
        self.events += 1
        kind = getattr(event, "type", None)
        index = getattr(event, "output_index", None)
        if kind in ("response.created", "response.in_progress"):
            self.response_id = self.response_id or getattr(event.response, "id", None)
            self.model = self.model or getattr(event.response, "model", None)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = event.response
        elif kind == "error":
            self.error = str(getattr(event, "message", "") or "the server sent an error event")
        elif index is None:
            return None
        elif kind == "response.content_part.added" and index in self.items:
            parts = self.items[index].setdefault("content", [])
            at = int(getattr(event, "content_index", len(parts)) or 0)
            parts[at:at + 1] = [as_item(event.part)]
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self.items[index] = as_item(event.item)
            if kind == "response.output_item.done":
                self.finished.add(index)
        elif kind == "response.output_text.delta":
            self._part(index, event, "output_text", "text")["text"] += event.delta
            return str(event.delta)
        elif kind == "response.refusal.delta":
            self._part(index, event, "refusal", "refusal")["refusal"] += event.delta
        elif kind == "response.function_call_arguments.delta" and index in self.items:
            item = self.items[index]
            item["arguments"] = str(item.get("arguments") or "") + event.delta
        return None

    def _part(self, index: int, event: Any, part_type: str, key: str) -> dict[str, Any]:
        item = self.items.setdefault(index, {"type": "message", "role": "assistant", "content": []})
        parts = item.setdefault("content", [])
        at = int(getattr(event, "content_index", 0) or 0)
        while len(parts) <= at:
            parts.append({"type": part_type, key: ""})
        if not isinstance(parts[at].get(key), str):
            parts[at][key] = ""
        return parts[at]  # type: ignore[no-any-return]

    def problem(self) -> ResponseError | None:
        """The error to raise once the stream ended, if the response is not usable as it stands."""
        if self.final is not None:
            return _failure(self.final)
        if self.error is not None:
            return ResponseError(f"the server reported an error mid-stream: {self.error}")
        if not self.events:
            return ResponseError("the server's stream held no events (it may not support stream=true)")
        return ResponseError(
            "the stream ended before the server said the response was finished; what arrived is saved as incomplete"
        )

    def finish(self) -> OutputRecord:
        """What to store: the final response's items, or (cut off) what arrived, marked incomplete."""
        final = self.final
        if final is not None and final.output:
            items = [as_item(item) for item in final.output]
        else:
            items = [self.items[i] for i in sorted(self.items)]
            for index, item in zip(sorted(self.items), items):
                if index not in self.finished:
                    item["status"] = "incomplete"
        complete = final is not None and getattr(final, "status", None) != "failed"
        return OutputRecord(
            items=items,
            response_id=getattr(final, "id", None) or self.response_id,
            model=getattr(final, "model", None) or self.model,
            usage=_dump(getattr(final, "usage", None)),
            status="complete" if complete else "incomplete",
            finish_reason=_finish_reason(final) if final is not None else None,
        )


def sendable(stored: StoredMessage) -> bool:
    """Whether a stored item goes back to the API.

    Calls and reasoning items from a stream cut off are kept but not sent: a
    half-written call would need an output, and a reasoning item's encrypted
    content is only whole once the item is done. Text cut off is sent, as a
    chat reply cut off is.
    """
    return stored.kind != ITEM_KIND or stored.status != "incomplete" or item_type(stored.message) == "message"


def branch_items(branch: Sequence[StoredMessage]) -> list[Item]:
    """The Responses input items for a stored branch; chat messages are converted, summaries skipped.

    A chat message with a part the Responses API cannot take is refused here,
    before anything is sent.
    """
    items: list[Item] = []
    for stored in branch:
        if stored.kind == ITEM_KIND:
            if sendable(stored):
                items.append(stored.message)
        elif stored.kind == "chat":
            try:
                items += chat_to_items(stored.message)
            except NoChatShape as exc:
                raise ChatkeepError(f"message {stored.id}: {exc}; nothing was sent: continue this conversation "
                                    "with Chat") from exc
    return items


def _chain_point(branch: Sequence[StoredMessage]) -> int | None:
    """The index of the last output item of the newest response the server keeps, if any."""
    for index in range(len(branch) - 1, -1, -1):
        meta = branch[index].metadata
        if meta.get("response_id"):
            if meta.get("stored_on_server") and branch[index].status == "complete":
                return index
            return None
    return None


def lost_chain(exc: BaseException) -> bool:
    """True when the server no longer has the previous response (expired, or another server)."""
    return getattr(exc, "code", None) == "previous_response_not_found" or (
        getattr(exc, "status_code", None) in (400, 404) and getattr(exc, "param", None) == "previous_response_id"
    )


@dataclass
class ResponsesTurn:
    """One turn over a branch: saves the new input, builds the request, stores the output.

    ``new`` is the input to add (``None``: answer the branch as it stands, after
    tool outputs, say). With ``chain``, the request names the previous response
    and sends only what came after it, when the server keeps that response.
    With ``server`` (a server conversation the request names), it sends what
    follows ``server_point``, the last message that conversation holds; the
    output items are marked as held there, and ``link`` (conversation metadata
    linking it, when it was not linked yet) is saved with them.
    """

    conversation: Conversation
    branch: list[StoredMessage]
    new: list[Item] | None
    chain: bool = False
    max_items: int | None = None
    lease: Lease | None = None
    secrets: tuple[str, ...] = ()
    saved: list[StoredMessage] = field(default_factory=list)
    server: str | None = None
    server_point: int = -1
    link: dict[str, Any] | None = None

    overflow: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.new is None and not self.branch:
            raise ChatkeepError("the conversation is empty: send a message first")
        if self.new is None and self.branch[-1].metadata.get("response_id"):
            raise ChatkeepError("the last item is already the model's: send new input (text, items or tool outputs)")
        items = branch_items(self.branch) + list(self.new or ())
        pending = pending_calls(items)
        if pending:
            raise PendingToolCalls(pending)
        self._point = _chain_point(self.branch) if self.chain and self.server is None else None
        self.sent_items = 0

    def save_input(self) -> list[StoredMessage]:
        """Store the new input items under the tip this turn read, before the call, in one transaction."""
        if self.new:
            tip = self.branch[-1].id if self.branch else None
            self.saved = self.conversation.store.append_many(
                self.conversation.id, [Draft(item, kind=ITEM_KIND) for item in self.new], parent_id=tip
            )
            self.branch += self.saved
        return self.saved

    def release(self) -> None:
        """Let other turns in (a store that holds one branch keeps them out until now)."""
        if self.lease is not None:
            self.lease.release()

    def shrink(self, overflow: Any) -> None:
        """Send a window the server can take, after it refused the whole as too long (see ``Overflow``).

        The window keeps the share of items the server's numbers allow (less a
        tenth), or half of them when it gave no numbers.
        """
        sent = max(self.sent_items, 1)
        share = overflow.limit / overflow.prompt if overflow.limit and overflow.prompt else 0.5
        self.max_items = max(1, int(sent * min(share, 1.0) * 0.9))
        self.overflow = {"limit": overflow.limit, "prompt": overflow.prompt, "retried": True, "items": self.max_items}
        self.unchain()

    def unchain(self) -> None:
        """Send the whole branch from now on: the server lost the previous response."""
        self._point = None

    @property
    def previous_response_id(self) -> str | None:
        return None if self._point is None else str(self.branch[self._point].metadata["response_id"])

    def request(self, model: str, options: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        """The keyword arguments for ``client.responses.create``."""
        request: dict[str, Any] = {"model": model, **options}
        if self.server is not None:  # the server conversation holds the rest
            request["input"] = branch_items(self.branch[self.server_point + 1:])
        elif self._point is not None:
            request["input"] = branch_items(self.branch[self._point + 1:])
            request["previous_response_id"] = self.previous_response_id
        else:
            items = branch_items(self.branch)
            request["input"] = widen_window(items, self.max_items) if self.max_items else items
        if self.chain:
            request["store"] = True
        if stream:
            request["stream"] = True
        else:
            request.pop("stream", None)
        self.sent_items = len(request["input"])
        return request

    def save_output(self, record: OutputRecord, *, latency_ms: float, first_token_ms: float | None = None) -> Operation:
        """The store operation that keeps the output items; the last one carries usage and timing."""
        base: dict[str, Any] = {"response_id": record.response_id}
        if self.chain:
            base["stored_on_server"] = True
        prompt = self.saved[-1] if self.saved else (self.branch[-1] if self.branch else None)
        last = len(record.items) - 1
        held: tuple[Callable[[str, Any], dict[str, Any]], str] | None = None
        if self.server is not None and record.status == "complete":
            from ..remote.link import conversation_key, item_marker

            # The server conversation holds these items; the key finds this conversation from its id.
            held = item_marker, conversation_key(self.server)

        drafts = []
        for index, item in enumerate(record.items):
            extra: dict[str, Any] = {}
            if index == last:
                extra = {"usage": record.usage, "latency_ms": round(latency_ms, 3), "finish_reason": record.finish_reason}
                meta = {**base, "output_index": index, "sent_items": self.sent_items,
                        "previous_response_id": self.previous_response_id, "first_token_ms": first_token_ms,
                        "overflow": self.overflow}
            else:
                meta = {**base, "output_index": index}
            keys: tuple[str, ...] = ()
            if held is not None and self.server is not None:
                meta.update(held[0](self.server, item.get("id")))
                keys = (held[1],) if index == last else ()
            drafts.append(Draft(item, kind=ITEM_KIND, model=record.model, status=record.status,
                                metadata={k: v for k, v in meta.items() if v is not None}, keys=keys, **extra))

        def save() -> list[StoredMessage]:
            # Under the input they answer, all in one transaction: a reasoning item
            # is never kept without the item it precedes.
            stored_items = self.conversation.store.append_many(
                self.conversation.id, drafts, parent_id=prompt.id if prompt is not None else None
            )
            self.branch += stored_items
            if prompt is not None and prompt.status == "error":
                self.conversation.store.update_message(prompt.id, status="complete", error=None)
            if self.link is not None and record.status == "complete":
                self.conversation.store.update_conversation(self.conversation.id, metadata=self.link)
            return stored_items

        return save

    def save_failure(self, exc: BaseException) -> Operation | None:
        """Mark the input this turn answers as unanswered, with the error's one-line summary."""
        prompt = self.saved[-1] if self.saved else (self.branch[-1] if self.branch else None)
        if prompt is None:
            return None
        error = interruption_text(exc, self.secrets)
        prompt_id = prompt.id

        def mark() -> StoredMessage:
            updated = self.conversation.store.update_message(prompt_id, status="error", error=error)
            # keep the branch (which the chat reuses while the head stays) in step with the store
            self.branch[:] = [updated if m.id == prompt_id else m for m in self.branch]
            return updated

        return mark
