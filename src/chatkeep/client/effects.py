"""A turn written once, run sync or async: the turn is a generator of effects, the shells carry them out.

A turn's logic (when the prompt is saved, what is marked when a call fails,
how a stream cut short is kept) lives in one generator that yields *effects*
instead of doing I/O: a blocking store call, an SDK call, the next event of a
stream, a text delta for the caller. ``run`` and ``stream`` carry the effects
out directly; ``arun`` and ``astream`` await them, running store calls in a
worker thread. So ``Chat`` and ``AsyncChat`` (and the Responses pair) differ
only in which driver they hand the same generator to.

An exception an effect raises is thrown back into the generator at its
``yield``, so the turn handles failures where it would with plain calls. A
consumer who stops a stream early (``close()``, ``break``, Ctrl-C, a
cancelled task) has the interruption thrown in the same way: the turn saves
what arrived, then the interruption goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "END", "Blocking", "Call", "Close", "Effect", "Emit", "Next", "Steps", "StreamClosed", "arun", "astream", "run",
    "stream",
]

R = TypeVar("R")


@dataclass(frozen=True)
class Blocking:
    """A blocking store call: made directly, or in a worker thread (shielded from cancellation) when async."""

    operation: Callable[[], Any]


@dataclass(frozen=True)
class Call:
    """An SDK call, ``function(**kwargs)``; awaited when async."""

    function: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Next:
    """The next event of an SDK stream, or ``END`` once it is over."""

    stream: Any


@dataclass(frozen=True)
class Close:
    """Close an SDK stream (its HTTP response)."""

    stream: Any


@dataclass(frozen=True)
class Emit:
    """A text delta for whoever iterates the stream."""

    text: str


Effect = Blocking | Call | Next | Close | Emit
Steps = Generator[Effect, Any, R]

#: What ``Next`` gives once a stream has no more events.
END: Any = object()


class StreamClosed(BaseException):
    """Thrown into a turn when whoever iterated its stream closed it early.

    It stands for the consumer's ``GeneratorExit``, which cannot be thrown in
    as it is: inside ``yield from`` Python would close the turn's inner steps
    instead of letting them save what arrived. The driver re-raises the
    original once the turn is done.
    """


def _perform(effect: Effect) -> Any:
    if isinstance(effect, Blocking):
        return effect.operation()
    if isinstance(effect, Call):
        return effect.function(**effect.kwargs)
    if isinstance(effect, Next):
        return next(effect.stream, END)
    if isinstance(effect, Close):
        return effect.stream.close()
    raise TypeError(f"a turn that is not streamed cannot emit text: {effect!r}")


class _Finished(BaseException):
    """A store call that finished although its task was cancelled meanwhile: its result, then the cancellation."""

    def __init__(self, result: Any, cancelled: BaseException) -> None:
        self.result, self.cancelled = result, cancelled


async def _aperform(effect: Effect) -> Any:
    if isinstance(effect, Blocking):
        from ..store.threads import run_blocking

        try:
            return await run_blocking(effect.operation)
        except BaseException as exc:
            done = getattr(exc, "finished", None)
            if done is not None:  # the turn must learn what was saved before it hears of the cancellation
                raise _Finished(done[0], exc) from None
            raise
    if isinstance(effect, Call):
        return await effect.function(**effect.kwargs)
    if isinstance(effect, Next):
        try:
            return await effect.stream.__anext__()
        except StopAsyncIteration:
            return END
    if isinstance(effect, Close):
        return await effect.stream.close()
    raise TypeError(f"a turn that is not streamed cannot emit text: {effect!r}")


def _advance(steps: Steps[R], value: Any, error: BaseException | None) -> Effect:
    """The turn's next effect, after giving it the last one's result or exception."""
    return steps.throw(error) if error is not None else steps.send(value)


def run(steps: Steps[R]) -> R:
    """Carry out a turn that is not streamed, synchronously, and return its result."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = _advance(steps, value, error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            value = _perform(effect)
        except BaseException as exc:  # handed to the turn, which decides
            error = exc


def stream(steps: Steps[R]) -> Iterator[str]:
    """Carry out a streamed turn synchronously, yielding its text deltas."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = _advance(steps, value, error)
        except (StopIteration, StreamClosed):
            return
        value, error = None, None
        if isinstance(effect, Emit):
            try:
                yield effect.text
            except GeneratorExit:  # close(): the turn keeps what arrived, then the stream ends
                error = StreamClosed()
            except BaseException as exc:  # thrown in by the consumer
                error = exc
            continue
        try:
            value = _perform(effect)
        except BaseException as exc:
            error = exc


async def arun(steps: Steps[R]) -> R:
    """Carry out a turn that is not streamed on the event loop, and return its result."""
    value: Any = None
    error: BaseException | None = None
    deferred: BaseException | None = None
    while True:
        try:
            effect = _advance(steps, value, error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        value, error = None, None
        if deferred is not None:  # the turn has what its last store call did: now it hears of the cancellation
            error, deferred = deferred, None
            continue
        try:
            value = await _aperform(effect)
        except _Finished as finished:
            value, deferred = finished.result, finished.cancelled
        except BaseException as exc:
            error = exc


async def astream(steps: Steps[R]) -> AsyncIterator[str]:
    """Carry out a streamed turn on the event loop, yielding its text deltas."""
    value: Any = None
    error: BaseException | None = None
    deferred: BaseException | None = None
    while True:
        try:
            effect = _advance(steps, value, error)
        except (StopIteration, StreamClosed):
            return
        value, error = None, None
        if deferred is not None:
            error, deferred = deferred, None
            continue
        if isinstance(effect, Emit):
            try:
                yield effect.text
            except GeneratorExit:  # aclose(): the turn keeps what arrived, then the stream ends
                error = StreamClosed()
            except BaseException as exc:  # the task was cancelled, or something was thrown in
                error = exc
            continue
        try:
            value = await _aperform(effect)
        except _Finished as finished:
            value, deferred = finished.result, finished.cancelled
        except BaseException as exc:
            error = exc
