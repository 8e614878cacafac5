"""Recognizing a server's "the request is longer than my context window" answer, and what it says.

OpenAI answers ``context_length_exceeded``; llama.cpp ``exceed_context_size_error``
with ``n_prompt_tokens`` and ``n_ctx``; vLLM (and LiteLLM, which passes it on)
a 400 whose message gives the limit and the tokens requested. Read by
attribute, so the ``openai`` SDK is never imported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Overflow", "context_overflow"]

_LIMIT = re.compile(r"maximum context length is (\d+)|available context size \((\d+) tokens\)|context window of (\d+)",
                    re.IGNORECASE)
_ASKED = re.compile(r"you requested (\d+) tokens \((\d+) in the messages, (\d+) in the completion\)"
                    r"|resulted in (\d+) tokens|request \((\d+) tokens\)", re.IGNORECASE)
_WORDS = ("context_length_exceeded", "exceed_context_size", "maximum context length", "exceeds the available context",
          "context window", "context length")


@dataclass(frozen=True)
class Overflow:
    """A refusal for length: the server's window and the prompt tokens it counted, where it said."""

    limit: int | None
    prompt: int | None
    message: str


def _first(match: re.Match[str] | None, *groups: int) -> int | None:
    if match is None:
        return None
    for group in groups:
        if match.group(group):
            return int(match.group(group))
    return None


def context_overflow(exc: BaseException) -> Overflow | None:
    """The overflow an SDK error stands for, or None when it is another error."""
    if getattr(exc, "status_code", None) not in (400, 413):
        return None
    body: Any = getattr(exc, "body", None)
    error = body.get("error", body) if isinstance(body, dict) else {}
    error = error if isinstance(error, dict) else {}
    message = str(error.get("message") or getattr(exc, "message", "") or exc)
    said = " ".join(str(v) for v in (error.get("code"), error.get("type"), message)).lower()
    if not any(word in said for word in _WORDS):
        return None
    limit = error.get("n_ctx") if isinstance(error.get("n_ctx"), int) else _first(_LIMIT.search(message), 1, 2, 3)
    prompt = error.get("n_prompt_tokens") if isinstance(error.get("n_prompt_tokens"), int) else None
    if prompt is None:
        prompt = _first(_ASKED.search(message), 2, 4, 5)
    return Overflow(limit, prompt, message)
