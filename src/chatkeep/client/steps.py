"""One chat turn, written once: the effects ``Chat`` carries out directly and ``AsyncChat`` awaits.

The order the durability rules fix, in one place for every mode:

1. hold the conversation's tip (a lease), read the branch, save the user's message;
2. build the context (a summary call first, when the policy asks for one);
3. call the model, plain or streamed;
4. save the reply under its prompt, complete or (a stream cut short) incomplete,
   or mark the prompt unanswered when nothing arrived; release the tip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from ..context.overflow import Overflow, context_overflow
from ..context.policies import Context, ReadEarlier
from ..errors import ContextBudgetError, ReplyNotSaved, ResponseError, StoreError
from .effects import END, Blocking, Call, Close, Emit, Next, Steps
from .plan import Turn
from .responses_turn import OutputRecord, ResponseAccumulator, ResponsesTurn, lost_chain, record_from_response
from .streams import Slot
from .turn import (
    Reply,
    ReplyAccumulator,
    ReplyRecord,
    empty_stream_error,
    ms_since,
    reply_from_completion,
    unfinished_stream_error,
)

if TYPE_CHECKING:
    from .base import ChatBase
    from .responses import ResponsesReply, _ResponsesBase

__all__ = ["chat_turn", "read_stream", "responses_turn"]


def chat_turn(
    chat: ChatBase, create: Callable[..., Any], message: Any, overrides: Mapping[str, Any], *,
    regenerate: bool = False, streaming: bool = False, slot: Slot[Reply] | None = None,
) -> Steps[Reply]:
    """A whole turn; ``create`` is the client's ``chat.completions.create`` (sync or async)."""
    model = chat._options(overrides)[0]
    turn: Turn = yield Blocking(partial(chat._prepare, message, regenerate=regenerate, model=model))
    try:
        return (yield from _answer(chat, create, turn, overrides, streaming, slot))
    finally:
        chat._checkin(turn.history)
        yield Blocking(turn.release)


def _answer(
    chat: ChatBase, create: Callable[..., Any], turn: Turn, overrides: Mapping[str, Any], streaming: bool,
    slot: Slot[Reply] | None,
) -> Steps[Reply]:
    model, options = chat._options(overrides)
    acc = ReplyAccumulator()
    sent: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        context = yield from _context(chat, create, turn, model, options)
        sent = context.describe(turn.history)
        request = chat._request(context, model, options, stream=streaming)
        started = time.perf_counter()
        try:
            response = yield Call(create, request)
        except Exception as exc:
            overflow = context_overflow(exc)
            if overflow is None:
                raise
            # Too long for the server: learn its measure and limit, plan again, and try once more.
            yield Blocking(partial(chat._overflowed, model, context.tokens, overflow))
            if not chat.policy.needs_budget:
                raise _kept_too_long(model, overflow, context.tokens) from exc
            context = yield from _context(chat, create, turn, model, options)
            sent = {**context.describe(turn.history), "overflow": {"limit": overflow.limit,
                                                                  "prompt": overflow.prompt, "retried": True}}
            request = chat._request(context, model, options, stream=streaming)
            started = time.perf_counter()
            response = yield Call(create, request)
        if streaming:
            yield from read_stream(response, acc.feed, lambda: _first_token(acc, started))
            if not acc.started:
                raise empty_stream_error(acc)
            record = acc.finish()
        else:
            record = reply_from_completion(response)
    except BaseException as exc:
        if not acc.started:
            yield from _fail(turn, exc)
        else:  # a stream cut short: keep what arrived, marked incomplete
            yield from _save(chat, turn, acc.finish(), started, sent, slot, model)
        raise
    reply = yield from _save(chat, turn, record, started, sent, slot, model)
    if record.status == "incomplete":
        raise unfinished_stream_error(reply.message.id)  # saved, but the server never said it finished
    return reply


def read_stream(events: Any, feed: Callable[[Any], str | None], first: Callable[[], None]) -> Steps[None]:
    """Fold a stream's events with ``feed``, emitting the text they add; the stream is closed however it ends."""
    try:
        while (event := (yield Next(events))) is not END:
            text = feed(event)
            if text:
                first()
                yield Emit(text)
    finally:
        yield Close(events)


def _first_token(acc: ReplyAccumulator, started: float) -> None:
    acc.metadata.setdefault("first_token_ms", round(ms_since(started), 3))


def _context(
    chat: ChatBase, create: Callable[..., Any], turn: Turn, model: str, options: Mapping[str, Any]
) -> Steps[Context]:
    while True:
        choice = chat._select(turn.history, model, options)
        if isinstance(choice, Context):
            return choice
        if isinstance(choice, ReadEarlier):  # the branch was read only in part, and more may fit
            yield Blocking(partial(chat._read_earlier, turn, choice))
            continue
        record = reply_from_completion((yield Call(create, chat._summary_request(choice, model))))
        yield Blocking(chat._save_summary(turn, choice, record))


def _kept_too_long(model: str, overflow: Overflow, counted: int) -> ContextBudgetError:
    limit = f"{overflow.limit:,} tokens" if overflow.limit else "smaller than this conversation"
    needed = overflow.prompt or counted
    return ContextBudgetError(
        f"the server's context window for {model} is {limit}, and the conversation takes {needed:,}: use "
        "TrimToBudget() or Summarize() (chatkeep chat --context trim); your message is kept, unanswered",
        needed=needed, budget=overflow.limit or 0,
    )


def _save(
    chat: ChatBase, turn: Turn, record: ReplyRecord, started: float, sent: Mapping[str, Any],
    slot: Slot[Reply] | None, model: str,
) -> Steps[Reply]:
    save = turn.save_reply(record, latency_ms=ms_since(started), sent=sent)

    def save_and_learn() -> Any:
        stored = save()
        chat._observe(model, sent, record.usage)  # how the server counted what was sent
        return stored

    try:
        stored = yield Blocking(save_and_learn)
    except StoreError as exc:  # paid for and arrived: hand it over rather than lose it
        raise ReplyNotSaved(record.message, exc) from exc
    reply = chat._settle(stored)
    if slot is not None:
        slot.reply = reply
    return reply


def _fail(turn: Turn | ResponsesTurn, exc: BaseException) -> Steps[None]:
    mark = turn.save_failure(exc)
    if mark is not None:
        yield Blocking(mark)


# -- the Responses API ------------------------------------------------------------------


def responses_turn(
    chat: _ResponsesBase, create: Callable[..., Any], message: Any, overrides: Mapping[str, Any], *,
    streaming: bool = False, slot: Slot[ResponsesReply] | None = None,
) -> Steps[ResponsesReply]:
    """A whole Responses API turn; ``create`` is the client's ``responses.create`` (sync or async)."""
    turn: ResponsesTurn = yield Blocking(partial(chat._prepare, message, overrides))
    try:
        return (yield from _respond(chat, create, turn, overrides, streaming, slot))
    finally:
        chat._keep(turn)
        yield Blocking(turn.release)


def _respond(
    chat: _ResponsesBase, create: Callable[..., Any], turn: ResponsesTurn, overrides: Mapping[str, Any],
    streaming: bool, slot: Slot[ResponsesReply] | None,
) -> Steps[ResponsesReply]:
    model, options = chat._options(overrides)
    acc = ResponseAccumulator()
    started = time.perf_counter()
    try:
        try:
            response = yield from _create_response(create, turn, model, options, streaming)
        except Exception as exc:
            overflow = context_overflow(exc)
            if overflow is None:
                raise
            # Too long for the server: send fewer of the newest items (calls keep their outputs), once.
            turn.shrink(overflow)
            started = time.perf_counter()
            response = yield from _create_response(create, turn, model, options, streaming)
        if streaming:
            yield from read_stream(response, acc.feed, lambda: _first_item_token(acc, started))
            problem = acc.problem()
            if not acc.started:
                raise problem or ResponseError("the server's response has no output items")
            record = acc.finish()
        else:
            problem, record = None, record_from_response(response)
    except BaseException as exc:
        if not acc.started:
            yield from _fail(turn, exc)
        else:  # a stream cut short: keep what arrived, marked incomplete
            yield from _save_output(turn, acc.finish(), started, acc.first_token_ms, slot)
        raise
    reply = yield from _save_output(turn, record, started, acc.first_token_ms, slot)
    if problem is not None:
        raise problem  # saved, but the response did not end as it should
    return reply


def _create_response(
    create: Callable[..., Any], turn: ResponsesTurn, model: str, options: Mapping[str, Any], streaming: bool
) -> Steps[Any]:
    try:
        return (yield Call(create, turn.request(model, options, stream=streaming)))
    except Exception as exc:
        if turn.previous_response_id is None or not lost_chain(exc):
            raise
    turn.unchain()  # the server no longer has the previous response: send the whole branch
    return (yield Call(create, turn.request(model, options, stream=streaming)))


def _first_item_token(acc: ResponseAccumulator, started: float) -> None:
    if acc.first_token_ms is None:
        acc.first_token_ms = round(ms_since(started), 3)


def _save_output(
    turn: ResponsesTurn, record: OutputRecord, started: float, first_token_ms: float | None,
    slot: Slot[ResponsesReply] | None,
) -> Steps[ResponsesReply]:
    from .responses import responses_reply

    try:
        stored = yield Blocking(turn.save_output(record, latency_ms=ms_since(started), first_token_ms=first_token_ms))
    except StoreError as exc:
        raise ReplyNotSaved({"output": record.items}, exc) from exc
    reply = responses_reply(stored)
    if slot is not None:
        slot.reply = reply
    return reply
