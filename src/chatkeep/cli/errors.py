"""Turning failures into one readable line and a documented exit code.

Exit codes: 0 success; 1 a chatkeep error (bad input, not found, store);
2 a usage error; 3 the model call failed (your message is saved, unanswered);
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from ..errors import ChatkeepError, ResponseError
from ..redact import redact

__all__ = ["EXIT_API", "EXIT_ERROR", "EXIT_INTERRUPTED", "api_error_text", "fail", "handle_errors", "unexpected_text"]

EXIT_ERROR = 1
EXIT_API = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print ``chatkeep: message`` on stderr (keys redacted, controls shown) and exit with ``code``."""
    from .output import terminal_text

    click.echo(f"chatkeep: {terminal_text(redact(message))}", err=True)
    sys.exit(code)


def api_error_text(exc: BaseException) -> str | None:
    """One line for an SDK error (keys redacted), or None when ``exc`` is not one."""
    text = _api_error_text(exc)
    return None if text is None else redact(text)


def _api_error_text(exc: BaseException) -> str | None:
    if isinstance(exc, ResponseError):  # the server answered, but not with anything usable
        return str(exc)
    if isinstance(exc, json.JSONDecodeError):  # the SDK lets a 200 with a broken body or event through
        return f"the model server's answer is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
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


def unexpected_text(exc: BaseException) -> str:
    """One line for an error chatkeep did not foresee (a bug to report); what was saved stays saved."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"unexpected error, please report it: {type(exc).__name__}"
            + (f": {first}" if first else "") + " (everything saved before it is kept)")


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
        except click.ClickException:
            raise  # usage errors: click prints them and exits 2
        except Exception as exc:
            text = api_error_text(exc)
            if text is None:  # a bug: still one line, never a traceback
                fail(unexpected_text(exc))
            else:
                fail(text, EXIT_API)

    return run  # type: ignore[return-value]
