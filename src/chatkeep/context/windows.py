"""Context windows of OpenAI model families, in tokens; extend or override ``CONTEXT_WINDOWS``."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ChatkeepError

__all__ = ["CONTEXT_WINDOWS", "DEFAULT_REPLY_RESERVE", "UnknownContextWindow", "context_window"]

#: Model name prefix -> context window; the longest matching prefix wins.
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-5": 400_000,
    "gpt-5-chat": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.5": 128_000,
    "gpt-4o": 128_000,
    "chatgpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4-1106": 128_000,
    "gpt-4-0125": 128_000,
    "gpt-4-32k": 32_768,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o1-preview": 128_000,
    "o3": 200_000,
    "o3-mini": 200_000,
    "o4-mini": 200_000,
    "codex-mini": 200_000,
}

#: Tokens kept free for the reply when the request does not say (max_completion_tokens).
DEFAULT_REPLY_RESERVE = 4_096


class UnknownContextWindow(ChatkeepError, KeyError):
    """The model's context window is not known; the message names the setting to pass."""

    def __str__(self) -> str:
        return str(self.args[0])


def context_window(model: str, overrides: Mapping[str, int] | None = None) -> int:
    """The context window of ``model``, from ``overrides`` first, then ``CONTEXT_WINDOWS``."""
    name = model.split(":", 2)[1] if model.startswith("ft:") else model
    name = name.rsplit("/", 1)[-1]
    table = {**CONTEXT_WINDOWS, **(overrides or {})}
    matches = [prefix for prefix in table if name.startswith(prefix)]
    if not matches:
        raise UnknownContextWindow(
            f"the context window of model {model!r} is not known: pass context_window=<tokens> "
            "(or add it to chatkeep.context.CONTEXT_WINDOWS)"
        )
    return table[max(matches, key=len)]
