"""Keeping API keys out of what chatkeep writes and prints."""

from __future__ import annotations

import re

__all__ = ["redact"]

# OpenAI-style keys (sk-..., sk-proj-...); servers echo a rejected key back in their error.
_KEY = re.compile(r"\b(sk-[A-Za-z0-9]{0,4})[A-Za-z0-9_*\-]{8,}")


def redact(text: str) -> str:
    """Replace anything that looks like an API key with its first characters and ``***``."""
    return _KEY.sub(r"\1***", text)
