"""The stream objects ``stream()`` returns: text deltas to iterate, and the saved reply once done.

One generic pair serves chat completions and the Responses API alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["AsyncTextStream", "Slot", "TextStream"]

R = TypeVar("R")


@dataclass
class Slot(Generic[R]):
    """Where a stream's generator leaves the saved reply.

    The generator must not hold the stream object itself: the pair would form a
    cycle that only the garbage collector frees, and an abandoned stream would
    be saved late instead of the moment it is dropped.
    """

    reply: R | None = None


class TextStream(Generic[R]):
    """Text deltas as they arrive; ``reply`` is set once the reply is saved.

    Iterate it, or use it as a context manager so an early exit closes the
    connection and saves what arrived (marked incomplete) at once.
    """

    def __init__(self) -> None:
        self._slot: Slot[R] = Slot()
        self._events: Iterator[str] = iter(())

    @property
    def reply(self) -> R | None:
        """The saved reply, once the stream has ended (complete or not)."""
        return self._slot.reply

    def __iter__(self) -> TextStream[R]:
        return self

    def __next__(self) -> str:
        return next(self._events)

    def close(self) -> None:
        """Stop the stream: the connection closes and what arrived is saved."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> TextStream[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTextStream(Generic[R]):
    """Text deltas for ``async for``; ``reply`` is set once the reply is saved.

    Use ``async with`` (or ``await stream.aclose()``) so an early exit closes the
    connection and saves what arrived at once, not when the generator is collected.
    """

    def __init__(self) -> None:
        self._slot: Slot[R] = Slot()
        self._events: Any = None

    @property
    def reply(self) -> R | None:
        """The saved reply, once the stream has ended (complete or not)."""
        return self._slot.reply

    def __aiter__(self) -> AsyncTextStream[R]:
        return self

    async def __anext__(self) -> str:
        events: AsyncIterator[str] = self._events
        return str(await events.__anext__())

    async def aclose(self) -> None:
        """Stop the stream: the connection closes and what arrived is saved."""
        await self._events.aclose()

    async def __aenter__(self) -> AsyncTextStream[R]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
