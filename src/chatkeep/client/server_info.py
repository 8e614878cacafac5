"""What an OpenAI-compatible server can tell about a model: its context window, and its own token counts.

vLLM lists ``max_model_len`` (some routers ``context_length``) for each model
in ``/v1/models``; llama.cpp's ``/props`` gives the ``n_ctx`` it was started
with. Both count tokens at ``POST /tokenize`` (llama.cpp takes ``content``,
vLLM ``prompt``). Plain HTTP through the standard library, blocking: the
chats call these from their store step, in a worker thread when async.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from ..errors import ChatkeepError

__all__ = ["server_tokenizer", "server_window"]


def _root(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _call(url: str, api_key: str | None, body: dict[str, Any] | None, timeout: float) -> Any:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own server
        return json.loads(response.read())


def server_window(base_url: str, model: str, api_key: str | None = None, *, timeout: float = 5.0) -> int | None:
    """The context window the server says it runs ``model`` with, or None when it does not say."""
    try:
        listed = _call(f"{base_url.rstrip('/')}/models", api_key, None, timeout)
        for entry in listed.get("data", []) if isinstance(listed, dict) else []:
            if isinstance(entry, dict) and entry.get("id") == model:
                for key in ("max_model_len", "context_length", "context_window"):
                    if isinstance(entry.get(key), int) and entry[key] > 0:
                        return int(entry[key])
    except (OSError, ValueError):
        pass
    try:
        props = _call(f"{_root(base_url)}/props", api_key, None, timeout)
    except (OSError, ValueError):
        return None
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    if not isinstance(n_ctx, int) and isinstance(props, dict):
        n_ctx = props.get("n_ctx")
    return int(n_ctx) if isinstance(n_ctx, int) and n_ctx > 0 else None


def server_tokenizer(base_url: str, model: str, api_key: str | None = None,
                     *, timeout: float = 10.0) -> Callable[[str], int]:
    """A text counter that asks the server's own ``/tokenize`` (llama.cpp and vLLM have one)."""
    url = f"{_root(base_url)}/tokenize"

    def count(text: str) -> int:
        try:
            answer = _call(url, api_key, {"content": text, "prompt": text, "model": model}, timeout)
        except (OSError, ValueError) as exc:
            raise ChatkeepError(f"the server's tokenizer at {url} did not answer ({exc}): "
                                "leave encoding= unset to count offline") from exc
        if isinstance(answer, dict) and isinstance(answer.get("count"), int):
            return int(answer["count"])
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        if isinstance(tokens, list):
            return len(tokens)
        raise ChatkeepError(f"the server's tokenizer at {url} answered something else than tokens")

    return count
