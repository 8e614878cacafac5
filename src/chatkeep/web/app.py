"""The web application: settings, templates, and the Starlette app behind the guard.

``create_app(WebConfig(store=...))`` gives an ASGI application; ``chatkeep
serve`` runs it with uvicorn. Every page is another face of the library calls
the CLI makes (``list_conversations``, ``path``, ``search``, ``Chat``...),
never a second way into the store.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any
from urllib.parse import quote

from .. import __version__
from .security import Guard, GuardSettings
from .turns import ChatFactory, TurnRunner, Turns

__all__ = ["DEFAULT_MODEL", "WebApp", "WebConfig", "create_app"]

DEFAULT_MODEL = "gpt-4o"


@dataclass
class WebConfig:
    """How a server runs: its store, who answers turns, and what the guard lets in."""

    store: Any
    guard: GuardSettings
    #: The model for a new conversation (a conversation keeps the one it was started with).
    model: str = DEFAULT_MODEL
    #: An OpenAI-compatible server; None: ``$OPENAI_BASE_URL``, then OpenAI.
    base_url: str | None = None
    #: What a turn sends when the conversation outgrows the context window: all, trim or summarize.
    context: str = "all"
    context_window: int | None = None
    models: list[str] = field(default_factory=list)


def conversation_url(conversation_id: str) -> str:
    """The page of a conversation (any id: it is escaped, slashes kept as the route expects)."""
    return "/c/" + quote(conversation_id, safe="/")


def _local_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _css_name(text: str) -> str:
    """A class name made of letters only (stored roles are text like any other)."""
    return "".join(c for c in text.lower() if "a" <= c <= "z") or "unknown"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


class WebApp:
    """What every request handler shares: the store, the templates, the chats and the running turns."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.store = config.store
        self.chats = ChatFactory(base_url=config.base_url, context=config.context,
                                 context_window=config.context_window)
        self.turns = Turns()
        self.runner = TurnRunner(self.store, self.chats, self.render_messages)

    @cached_property
    def templates(self) -> Any:
        """The Jinja environment; autoescape is on for every template, whatever its name."""
        import jinja2

        env = jinja2.Environment(loader=jinja2.PackageLoader("chatkeep.web", "templates"), autoescape=True,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.globals.update(conversation_url=conversation_url, version=__version__,
                           csrf=self.config.guard.csrf)
        env.filters.update(local_time=_local_time, iso=_iso, css_name=_css_name)
        return env

    def render(self, name: str, **context: Any) -> str:
        return str(self.templates.get_template(name).render(**context))

    def render_messages(self, views: list[Any]) -> str:
        return self.render("_messages.html", views=views)

    def warm(self) -> None:
        """Compile the templates and load the renderer before the first page is asked for.

        Otherwise the first visitor waits for Jinja, markdown-it, nh3 and a Pygments lexer to load (about a
        second on a small machine).
        """
        from .markdown import markdown_html

        for name in ("conversation.html", "home.html", "_sidebar_items.html", "_search.html", "_window.html"):
            self.templates.get_template(name)
        markdown_html("*warm*\n\n```python\nwarm = True\n```")


def create_app(config: WebConfig) -> Any:
    """The ASGI application for ``config``: routes and static files behind the :class:`.security.Guard`."""
    from starlette.applications import Starlette

    from .routes import EXCEPTION_HANDLERS, routes

    web = WebApp(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(web.warm)
        yield
        # A turn still streaming keeps what arrived (as incomplete) before the server exits.
        await run_in_threadpool(web.turns.stop_all)
        web.chats.close()

    app = Starlette(routes=routes(web), lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    app.state.web = web
    return Guard(app, config.guard)
