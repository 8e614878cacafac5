"""The one way async code calls the blocking stores: in a worker thread, and never half-cancelled.

Every backend is written sync-first. ``run_blocking`` gives any store call an
async face: it runs in a worker thread (``asyncio.to_thread``, so the event
loop keeps serving), and once started it always finishes. A task cancelled
while its write runs waits for the write to end, then the cancellation goes
on, carrying what the call returned (``exc.finished``, a one-tuple) so the
code that handles it knows what was saved (a prompt, say, to mark unanswered).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["run_blocking"]

T = TypeVar("T")


async def run_blocking(operation: Callable[[], T]) -> T:
    """Run ``operation`` in a worker thread; if the task is cancelled meanwhile, finish it first."""
    import asyncio

    task = asyncio.ensure_future(asyncio.to_thread(operation))
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done():
                raise
            cancelled = exc  # the store call cannot be stopped halfway: wait for it, then go on cancelling
            continue
        if cancelled is not None:
            cancelled.finished = (result,)  # type: ignore[attr-defined]
            raise cancelled
        return result
