"""What the web tests share: a real ``chatkeep serve`` application on a loopback port, and a headless Chromium.

``WebServer`` runs the application with uvicorn in a thread of the test
process (the same ``create_app`` that ``chatkeep serve`` runs), over a store
the test fills; ``http`` is a plain HTTP client for it. ``chromium`` is
Debian's Chromium (``scripts/chromium`` installs it) driven by Playwright
with that system browser; without it the browser tests are skipped, saying
why, except on CI (``CI`` set), where they fail. One browser serves a whole
module; each test opens its own context (no shared cookies or storage).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ON_CI = bool(os.environ.get("CI"))
#: Screenshots for the README are written by the browser tests when this is set (CI leaves them alone).
SCREENSHOTS = bool(os.environ.get("CHATKEEP_SCREENSHOTS"))
SCREENSHOT_DIR = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
# Read at import: the autouse isolated_environment fixture removes CHATKEEP_* variables.
CHROMIUM = os.environ.get("CHATKEEP_CHROMIUM", "").strip() or shutil.which("chromium") or "/usr/bin/chromium"
UNAVAILABLE = os.environ.get("CHATKEEP_CHROMIUM_UNAVAILABLE", "").strip()


class WebServer:
    """The web application over ``store``, served on 127.0.0.1 from a background thread."""

    def __init__(self, store: Any, *, base_url: str | None = None, token: str | None = None,
                 model: str = "gpt-4o-mini", context: str = "all") -> None:
        import uvicorn

        from chatkeep.web.app import WebConfig, create_app
        from chatkeep.web.security import GuardSettings, allowed_hosts

        self.store = store
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.guard = GuardSettings(hosts=allowed_hosts("127.0.0.1", self.port), token=token)
        self.config = WebConfig(store=store, guard=self.guard, model=model, base_url=base_url, context=context)
        self.app = create_app(self.config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name=f"chatkeep-web:{self.port}")
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.01)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base + path

    @property
    def csrf(self) -> str:
        return self.guard.csrf

    def http(self, **options: Any) -> Any:
        """An ``httpx.Client`` for this server (no CSRF header unless asked)."""
        import httpx

        return httpx.Client(base_url=self.base, timeout=30, **options)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _browser_problem() -> str | None:
    if UNAVAILABLE:
        return UNAVAILABLE
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (bash scripts/chromium installs Debian's; CHATKEEP_CHROMIUM names another)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


def require_browser() -> None:
    """Skip the test without a browser (fail it on CI)."""
    problem = _browser_problem()
    if problem is not None:
        if ON_CI:
            pytest.fail(f"the browser tests need Chromium on CI: {problem}")
        pytest.skip(f"browser unavailable: {problem}")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module (Debian's, driven by Playwright)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            # No calls home: this machine's network is closed, and tests must stay on loopback.
            args=["--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """A page with everything that must never happen recorded: dialogs, page errors, CSP reports."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


def open_page(browser: Any, *, dark: bool = False, bypass_csp: bool = False, width: int = 1200,
              height: int = 800) -> Watched:
    """A fresh context and page (its own cookies and storage)."""
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme="dark" if dark else "light",
                                  bypass_csp=bypass_csp, accept_downloads=True)
    context.set_default_timeout(15_000)
    return Watched(context.new_page())


def screenshot(page: Any, name: str) -> None:
    """Save a small PNG of the page into docs/screenshots when CHATKEEP_SCREENSHOTS is set."""
    if not SCREENSHOTS:
        return
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(target))
    try:  # a palette of 128 colours keeps a UI screenshot sharp and about a fifth of the size
        from PIL import Image

        with Image.open(target) as image:
            image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    except ImportError:
        pass
