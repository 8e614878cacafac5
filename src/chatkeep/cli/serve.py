"""``chatkeep serve``: the conversations in a browser, on this machine.

Nothing from ``chatkeep.web`` (nor Starlette, uvicorn, Jinja) is imported
until the command runs, so other commands start as fast as before.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

import click

from ..errors import BackendUnavailable, ChatkeepError
from .common import db_option, open_db
from .errors import handle_errors

__all__ = ["serve"]

DEFAULT_PORT = 8765


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is printed, so a busy port is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ChatkeepError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _web_modules() -> None:
    try:
        import jinja2  # noqa: F401
        import markdown_it  # noqa: F401
        import nh3  # noqa: F401
        import pygments  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(
            f"chatkeep serve needs the web extra ({exc.name} is missing): pip install 'chatkeep[web]'"
        ) from exc


@click.command()
@click.option("-p", "--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="The port to listen on (0: any free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on. Any address but the loopback one requires the access token "
                   "printed at start.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Another host name the browser may use to reach the server (repeat for several).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--model", help="The model of new conversations (default: $CHATKEEP_MODEL, then the 'model' setting, "
                               "else gpt-4o); a conversation keeps its own.")
@click.option("--base-url", metavar="URL",
              help="An OpenAI-compatible server (default: $OPENAI_BASE_URL, then the 'base_url' setting, then OpenAI).")
@click.option("--context", type=click.Choice(["all", "trim", "summarize"]),
              help="What to send when a conversation outgrows the context window (default: the 'context' setting, "
                   "else all).")
@click.option("--context-window", type=int, metavar="TOKENS",
              help="The model's context window (default: what the server says, else chatkeep's tables).")
@db_option
@handle_errors
def serve(port: int, host: str, allow_hosts: tuple[str, ...], open_browser: bool, model: str | None,
          base_url: str | None, context: str | None, context_window: int | None, db: str | None) -> None:
    """Look at, search and continue conversations in a browser.

    Serves http://127.0.0.1:8765/ (the pages and their scripts come from this
    machine only). The API key is read from $OPENAI_API_KEY here and never
    sent to the page. Needs the web extra: pip install 'chatkeep[web]'.
    """
    _web_modules()
    from ..settings import load_settings
    from ..web.app import WebConfig, create_app
    from ..web.security import GuardSettings, allowed_hosts, new_token

    settings = load_settings()  # flags first, then environment variables, the settings file, the defaults

    store = open_db(db)
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    names = list(allow_hosts)
    if host in ("0.0.0.0", "::"):  # every address: the machine's own name reaches it
        names.append(socket.gethostname())
        shown = socket.gethostname()
    else:
        shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    token = None if _loopback(host) else new_token()
    guard = GuardSettings(hosts=allowed_hosts(host, port, names), token=token)
    config = WebConfig(store=store, guard=guard, model=model or settings.get("model"),
                       base_url=base_url or settings.get("base_url"),  # $OPENAI_BASE_URL, then the file
                       context=context or settings.get("context"), context_window=context_window)
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"chatkeep serve: {url}  (Ctrl-C stops)")
    if token:
        click.echo("chatkeep serve: listening beyond this machine: the address above carries the access token, "
                   "keep it to yourself", err=True)
    sys.stdout.flush()
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    _run(create_app(config), sock)


def _run(app: Any, sock: socket.socket) -> None:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=30))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
