"""Titles written by a model: asked for after a reply, off the turn's path, never failing it.

With ``Chat(..., title_model="gpt-4o-mini")`` (or ``AsyncChat``), the first
complete reply a chat receives starts one request to ``title_model`` through
the same client: a short title for the conversation, from its first user
message and that reply. ``Chat`` makes it in a background thread,
``AsyncChat`` in a task, so the reply is returned (or streamed) without
waiting. The title is saved only if the conversation still has none
(``Store.suggest_title``): one given meanwhile (``chatkeep rename``) wins.

Nothing about it fails a turn: an error (the model call, the store) is logged
on the ``chatkeep.titles`` logger, with keys removed, and the conversation
keeps its display title (the start of its first message). ``chat.close()``
(``await chat.close()``, or leaving ``with``) waits up to ``TITLE_TIMEOUT``
seconds for a title still being written, then gives up on it.
"""

from __future__ import annotations

import logging
from typing import Any

from ..redact import redact
from ..store.base import ConversationRecord, derive_title

__all__ = ["EXCERPT_CHARS", "TITLE_CHARS", "TITLE_PROMPT", "TITLE_TIMEOUT", "clean_title", "report", "title_request",
           "title_text", "wants_title"]

log = logging.getLogger("chatkeep.titles")

TITLE_PROMPT = (
    "Write a title for the conversation below: at most six words, in the conversation's language, "
    "without quotes or a final full stop. Reply with the title only."
)
#: How much of the first message and of the reply the title request quotes, in characters.
EXCERPT_CHARS = 2_000
#: The longest title kept, in characters (a longer answer is cut at a word).
TITLE_CHARS = 80
#: Seconds the title request may take, and that ``close()`` waits for it.
TITLE_TIMEOUT = 30.0

_WRAPPERS = "\"'`*_#“”‘’«»「」 "


def title_request(model: str, prompt: str, reply: str) -> dict[str, Any]:
    """The ``chat.completions.create`` keywords that ask ``model`` for a title."""
    quoted = f"User: {prompt[:EXCERPT_CHARS]}\n\nAssistant: {reply[:EXCERPT_CHARS]}"
    return {
        "model": model,
        "messages": [{"role": "system", "content": TITLE_PROMPT}, {"role": "user", "content": quoted}],
        "timeout": TITLE_TIMEOUT,
    }


def clean_title(text: str) -> str | None:
    """The title in a model's answer: its first line with text, without quotes, markup or a ``Title:`` label."""
    line = derive_title(text, limit=10 * TITLE_CHARS).strip(_WRAPPERS)
    if line.lower().startswith("title:"):
        line = line[len("title:"):]
    line = line.strip(_WRAPPERS).rstrip(".。").strip(_WRAPPERS)
    return derive_title(line, limit=TITLE_CHARS) or None


def title_text(completion: Any) -> str | None:
    """The cleaned title in a chat completion, or ``None`` when it holds none."""
    choices = getattr(completion, "choices", None) or []
    content = getattr(getattr(choices[0], "message", None), "content", None) if choices else None
    return clean_title(content) if isinstance(content, str) else None


def wants_title(record: ConversationRecord) -> str | None:
    """The first message to title the conversation from, or ``None`` when it has a title (or nothing to go on)."""
    if record.title:
        return None
    return record.first_prompt or None


def report(conversation_id: str, exc: BaseException, secrets: tuple[str, ...]) -> None:
    """Log why a title could not be written (the turn it followed is unaffected)."""
    log.warning("chatkeep could not write a title for conversation %s: %s", conversation_id,
                redact(f"{type(exc).__name__}: {exc}", secrets))

