"""The context window: exact offline token counts, and the policies that decide what a turn sends.

Pure functions and objects; the summary's model call is made by the chat.
"""

from __future__ import annotations

from .history import History
from .policies import Context, ContextPolicy, KeepAll, Summarize, SummaryRequest, TrimToBudget
from .tokens import TokenCounter, encoding_for_model, get_encoding
from .windows import CONTEXT_WINDOWS, DEFAULT_REPLY_RESERVE, context_window

__all__ = [
    "CONTEXT_WINDOWS",
    "DEFAULT_REPLY_RESERVE",
    "Context",
    "ContextPolicy",
    "History",
    "KeepAll",
    "Summarize",
    "SummaryRequest",
    "TokenCounter",
    "TrimToBudget",
    "context_window",
    "encoding_for_model",
    "get_encoding",
]
