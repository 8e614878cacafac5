"""Keeping API keys out of what chatkeep writes and prints."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

__all__ = ["client_secrets", "redact"]

# OpenAI-style keys (sk-..., sk-proj-...); servers echo a rejected key back in their error.
_KEY = re.compile(r"\b(sk-[A-Za-z0-9]{0,4})[A-Za-z0-9_*\-]{8,}")

#: Shorter strings are not treated as secrets: replacing them would garble ordinary text.
_MIN_SECRET = 6


def client_secrets(client: object) -> tuple[str, ...]:
    """The secrets an SDK client holds (its API key, whatever its shape), to keep out of anything stored."""
    key = getattr(client, "api_key", None)
    return (key,) if isinstance(key, str) and len(key) >= _MIN_SECRET else ()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and anything shaped like an OpenAI key replaced by ``***``.

    Known secrets are the ones given (a client's actual key: ``gsk_…``, an Azure
    hex key, anything) and ``$OPENAI_API_KEY``, which servers echo back when
    they reject it.
    """
    known = [*secrets, os.environ.get("OPENAI_API_KEY", "")]
    for secret in sorted({s for s in known if len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _KEY.sub(r"\1***", text)
