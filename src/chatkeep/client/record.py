"""Bring your own call: record a completion or a stream you obtained from the SDK yourself.

```python
conv.append({"role": "user", "content": "Hi"})
completion = client.chat.completions.create(model="gpt-4o", messages=conv.messages)
record_completion(conv, completion)
```
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..store.base import StoredMessage
from ..store.conversation import Conversation
from .turn import ReplyAccumulator, ReplyRecord, empty_stream_error, reply_from_completion

__all__ = ["record_chunks", "record_completion", "recording"]


def _save(conversation: Conversation, record: ReplyRecord, latency_ms: float | None) -> StoredMessage:
    return conversation.append(
        record.message, model=record.model, usage=record.usage, latency_ms=latency_ms,
        finish_reason=record.finish_reason, status=record.status, metadata=record.metadata,
    )


def record_completion(
    conversation: Conversation, completion: Any, *, latency_ms: float | None = None
) -> StoredMessage:
    """Store the reply of a ``ChatCompletion`` after the conversation's head, with its usage and model."""
    return _save(conversation, reply_from_completion(completion), latency_ms)


def record_chunks(
    conversation: Conversation, chunks: Iterable[Any], *, latency_ms: float | None = None
) -> StoredMessage:
    """Fold a finished stream's ``ChatCompletionChunk`` objects into one reply and store it.

    A stream that ended without a ``finish_reason`` is stored as ``incomplete``.
    """
    acc = ReplyAccumulator()
    for chunk in chunks:
        acc.feed(chunk)
    if not acc.started:
        raise empty_stream_error(acc)
    return _save(conversation, acc.finish(), latency_ms)


def recording(conversation: Conversation, chunks: Iterable[Any]) -> Iterator[Any]:
    """Pass a live stream's chunks through, and store the reply when it ends or is cut off."""
    acc = ReplyAccumulator()
    try:
        for chunk in chunks:
            acc.feed(chunk)
            yield chunk
    finally:
        if acc.started:
            _save(conversation, acc.finish(), None)
