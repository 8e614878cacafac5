"""Context windows in tokens: OpenAI's model families, common open models, and what a server says.

Extend or override ``CONTEXT_WINDOWS``. An open model served by llama.cpp,
Ollama or vLLM often runs with a smaller window than the model allows, so
when the model is not OpenAI's, chatkeep asks the server first (llama.cpp's
``/props``, vLLM's ``max_model_len`` in ``/v1/models``) and the table is the
fallback.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ChatkeepError

__all__ = ["CONTEXT_WINDOWS", "DEFAULT_REPLY_RESERVE", "OPEN_MODEL_WINDOWS", "UnknownContextWindow", "context_window",
           "open_model_window"]

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

#: Open models by name (lower case, "meta-" and an organisation prefix dropped): what they allow.
OPEN_MODEL_WINDOWS: dict[str, int] = {
    "llama-2": 4_096, "llama2": 4_096,
    "llama-3": 8_192, "llama3": 8_192,
    "llama-3.1": 131_072, "llama3.1": 131_072, "llama-3.2": 131_072, "llama3.2": 131_072,
    "llama-3.3": 131_072, "llama3.3": 131_072, "llama-4": 131_072,
    "mistral-7b-instruct-v0.1": 8_192, "mistral-7b-instruct-v0.2": 32_768, "mistral-7b-instruct-v0.3": 32_768,
    "mistral-nemo": 131_072, "mistral-small": 32_768, "mixtral-8x7b": 32_768, "mixtral-8x22b": 65_536,
    "qwen2": 32_768, "qwen2.5": 32_768, "qwen3": 40_960,
    "gemma-2": 8_192, "gemma2": 8_192, "gemma-3": 131_072, "gemma3": 131_072,
    "phi-3-mini-4k": 4_096, "phi-3-mini-128k": 131_072, "phi-3.5": 131_072, "phi-4": 16_384, "phi3": 4_096,
    "deepseek-r1": 131_072, "deepseek-v3": 131_072, "command-r": 131_072,
}

#: Tokens kept free for the reply when the request does not say (max_completion_tokens).
DEFAULT_REPLY_RESERVE = 4_096


class UnknownContextWindow(ChatkeepError, KeyError):
    """The model's context window is not known; the message names the setting to pass."""

    def __str__(self) -> str:
        return str(self.args[0])


def open_model_window(model: str) -> int | None:
    """What an open model allows, from ``OPEN_MODEL_WINDOWS`` (``None``: not in the table)."""
    name = model.rsplit("/", 1)[-1].lower().replace("_", "-").removeprefix("meta-")
    matches = [prefix for prefix in OPEN_MODEL_WINDOWS if name.startswith(prefix)]
    return OPEN_MODEL_WINDOWS[max(matches, key=len)] if matches else None


def context_window(model: str, overrides: Mapping[str, int] | None = None, *, open_models: bool = True) -> int:
    """The context window of ``model``: ``overrides``, then ``CONTEXT_WINDOWS``, then (``open_models``) the open models."""
    name = model.split(":", 2)[1] if model.startswith("ft:") else model
    name = name.rsplit("/", 1)[-1]
    table = {**CONTEXT_WINDOWS, **(overrides or {})}
    matches = [prefix for prefix in table if name.startswith(prefix)]
    if not matches and open_models and open_model_window(model) is not None:
        return int(open_model_window(model) or 0)
    if not matches:
        raise UnknownContextWindow(
            f"the context window of model {model!r} is not known: pass context_window=<tokens> "
            "(or add it to chatkeep.context.CONTEXT_WINDOWS)"
        )
    return table[max(matches, key=len)]

