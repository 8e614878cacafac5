"""Bring your own call: record a completion or a stream you obtained from the SDK yourself.

```python
prompt = conv.append({"role": "user", "content": "Hi"})
completion = client.chat.completions.create(model="gpt-4o", messages=conv.messages)
record_completion(conv, completion, reply_to=prompt)
```

The reply is saved under the message it answers (``reply_to``; by default the
conversation's head when the recording starts), and the head follows only if
it is still there, so a reply never lands under someone else's prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..store.base import StoredMessage
from ..store.conversation import Conversation
from .turn import ReplyAccumulator, ReplyRecord, empty_stream_error, reply_from_completion

__all__ = ["record_chunks", "record_completion", "recording"]

#: What a reply answers: a stored message, its id, or ``None`` for the head as it is now.
ReplyTo = StoredMessage | str | None


def _parent(conversation: Conversation, reply_to: ReplyTo) -> str | None:
    if isinstance(reply_to, StoredMessage):
        return reply_to.id
    if reply_to is not None:
        return reply_to
    return conversation.record.head_id


def _save(conversation: Conversation, record: ReplyRecord, latency_ms: float | None, parent: str | None) -> StoredMessage:
    return conversation.append(
        record.message, parent_id=parent, model=record.model, usage=record.usage, latency_ms=latency_ms,
        finish_reason=record.finish_reason, status=record.status, metadata=record.metadata,
    )


def record_completion(
    conversation: Conversation, completion: Any, *, latency_ms: float | None = None, reply_to: ReplyTo = None
) -> StoredMessage:
    """Store the reply of a ``ChatCompletion`` under ``reply_to`` (default: the head), with its usage and model."""
    return _save(conversation, reply_from_completion(completion), latency_ms, _parent(conversation, reply_to))


def record_chunks(
    conversation: Conversation, chunks: Iterable[Any], *, latency_ms: float | None = None, reply_to: ReplyTo = None
) -> StoredMessage:
    """Fold a finished stream's ``ChatCompletionChunk`` objects into one reply and store it under ``reply_to``.

    A stream that ended without a ``finish_reason`` is stored as ``incomplete``.
    """
    parent = _parent(conversation, reply_to)
    acc = ReplyAccumulator()
    for chunk in chunks:
        acc.feed(chunk)
    if not acc.started:
        raise empty_stream_error(acc)
    return _save(conversation, acc.finish(), latency_ms, parent)


def recording(conversation: Conversation, chunks: Iterable[Any], *, reply_to: ReplyTo = None) -> Iterator[Any]:
    """Pass a live stream's chunks through, and store the reply when it ends or is cut off.

    The reply goes under ``reply_to``, by default the head as it is when
    ``recording`` is called (the prompt the stream answers), not when it ends.
    """
    return _passing(conversation, chunks, _parent(conversation, reply_to))


def _passing(conversation: Conversation, chunks: Iterable[Any], parent: str | None) -> Iterator[Any]:
    acc = ReplyAccumulator()
    try:
        for chunk in chunks:
            acc.feed(chunk)
            yield chunk
    finally:
        if acc.started:
            _save(conversation, acc.finish(), None, parent)
