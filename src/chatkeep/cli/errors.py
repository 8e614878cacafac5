"""Turning failures into one readable line and a documented exit code.

Exit codes: 0 success; 1 a chatkeep error (bad input, not found, store);
2 a usage error; 3 the model call failed (your message is saved, unanswered);
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from ..errors import ChatkeepError
from ..redact import redact

__all__ = ["EXIT_API", "EXIT_ERROR", "EXIT_INTERRUPTED", "fail", "handle_errors"]

EXIT_ERROR = 1
EXIT_API = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print ``chatkeep: message`` on stderr (keys redacted) and exit with ``code``."""
    click.echo(f"chatkeep: {redact(message)}", err=True)
    sys.exit(code)


def api_error_text(exc: BaseException) -> str | None:
    """One line for an SDK error (keys redacted), or None when ``exc`` is not one."""
    text = _api_error_text(exc)
    return None if text is None else redact(text)


def _api_error_text(exc: BaseException) -> str | None:
    # openai is only looked up when it is already loaded: other commands never import it.
    openai = sys.modules.get("openai")
    if openai is None or not isinstance(exc, openai.OpenAIError):
        return None
    if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
        request = getattr(exc, "request", None)
        where = f" at {request.url.scheme}://{request.url.host}:{request.url.port}" if request is not None else ""
        return f"cannot reach the model server{where}: {exc}"
    if isinstance(exc, openai.APIStatusError):
        body = getattr(exc, "body", None)
        message = body.get("message") if isinstance(body, dict) else None
        return f"the model server answered {exc.status_code}: {message or exc.message}"
    return f"{type(exc).__name__}: {exc}"


def handle_errors(command: F) -> F:
    """Run a command so that every expected failure becomes one line and an exit code."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except ChatkeepError as exc:
            fail(str(exc))
        except Exception as exc:
            text = api_error_text(exc)
            if text is None:
                raise
            fail(text, EXIT_API)

    return run  # type: ignore[return-value]
