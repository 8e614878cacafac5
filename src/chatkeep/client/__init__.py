"""Chat turns over the ``openai`` SDK: save the message, call the model, save the reply.

Nothing here imports ``openai``: you pass in the client you made.
"""

from __future__ import annotations

from .aio import AsyncChat, AsyncReplyStream
from .capture import capture
from .record import record_chunks, record_completion, recording
from .responses import AsyncResponsesChat, AsyncResponsesStream, ResponsesChat, ResponsesReply, ResponsesStream
from .sync import Chat, ReplyStream
from .turn import Reply, ReplyAccumulator

__all__ = [
    "AsyncChat",
    "AsyncReplyStream",
    "AsyncResponsesChat",
    "AsyncResponsesStream",
    "Chat",
    "Reply",
    "ReplyAccumulator",
    "ReplyStream",
    "ResponsesChat",
    "ResponsesReply",
    "ResponsesStream",
    "capture",
    "record_chunks",
    "record_completion",
    "recording",
]
