"""Calibrations: fitting chatkeep's token counts to what a server's own tokenizer says.

chatkeep counts tokens offline with tiktoken, which is exact for OpenAI's
models and only close for others (a llama or qwen tokenizer splits text
differently, and chat templates add their own tokens). Every reply's
``usage.prompt_tokens`` says how many tokens the server counted for what
chatkeep sent; the ratio of the two, kept per server and model in the store,
scales the budget so the window fits the server's tokenizer.

The budget uses the largest ratio seen, plus a safety margin that narrows as
evidence grows (10 % after one reply, 1 % after a hundred). A server that
refuses a request as too long (``context_length_exceeded``) states its limit
and usually the size it counted: both go into the calibration at once.
Counts that are exact (OpenAI's own models, servers and encodings) are never
scaled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

__all__ = ["Calibration", "margin", "observe", "openai_hosted", "server_of"]

#: The margin after one observation; it shrinks with the square root of their number.
FIRST_MARGIN = 0.10
#: The margin never goes below this: replies vary, and a turn refused costs more than a few tokens.
LEAST_MARGIN = 0.01


@dataclass(frozen=True)
class Calibration:
    """What a store knows about one server and model: the ratio of its counts to chatkeep's, and its window."""

    server: str
    model: str
    samples: int = 0
    worst: float = 1.0  # the largest ratio seen (server tokens / chatkeep tokens)
    mean: float = 1.0
    window: int | None = None  # the context window the server stated, when it did
    updated_at: datetime | None = None

    @property
    def factor(self) -> float:
        """What chatkeep's counts are multiplied by before they are held against the window."""
        if self.samples == 0:
            return 1.0
        return self.worst * (1.0 + margin(self.samples))


def margin(samples: int) -> float:
    """The safety margin after ``samples`` observations."""
    return max(LEAST_MARGIN, FIRST_MARGIN / math.sqrt(max(samples, 1)))


def observe(calibration: Calibration, counted: int, reported: int, *, window: int | None = None) -> Calibration:
    """The calibration after the server counted ``reported`` tokens for what chatkeep counted as ``counted``."""
    if counted <= 0 or reported <= 0:
        return calibration if window is None else replace(calibration, window=window)
    ratio = reported / counted
    samples = calibration.samples + 1
    mean = calibration.mean + (ratio - calibration.mean) / samples if calibration.samples else ratio
    worst = max(calibration.worst, ratio) if calibration.samples else ratio
    return replace(calibration, samples=samples, worst=worst, mean=mean,
                   window=window if window is not None else calibration.window)


def server_of(base_url: object) -> str:
    """A server's identity for calibration: scheme, host, port and path of its base URL (no credentials)."""
    parts = urlsplit(str(base_url or "https://api.openai.com/v1"))
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def openai_hosted(server: str) -> bool:
    """Whether the server is OpenAI's own (or Azure OpenAI), whose counts tiktoken reproduces exactly."""
    host = urlsplit(server).hostname or ""
    return host == "api.openai.com" or host.endswith(".openai.azure.com")
