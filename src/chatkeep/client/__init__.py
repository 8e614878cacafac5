"""Chat turns over the ``openai`` SDK: save the message, call the model, save the reply.

Nothing here imports ``openai``: you pass in the client you made.
"""

from __future__ import annotations

from .aio import AsyncChat, AsyncReplyStream
from .record import record_chunks, record_completion, recording
from .sync import Chat, ReplyStream
from .turn import Reply, ReplyAccumulator

__all__ = [
    "AsyncChat",
    "AsyncReplyStream",
    "Chat",
    "Reply",
    "ReplyAccumulator",
    "ReplyStream",
    "record_chunks",
    "record_completion",
    "recording",
]
