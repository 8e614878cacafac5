"""The guard in front of every request: Host header, access token, CSRF token, and the headers every answer carries.

A page on any web site can make the browser send requests to
``http://127.0.0.1:PORT``, and with DNS rebinding it can even read the
answers (its own host name then points at 127.0.0.1). So:

- every request must name an allowed host in its ``Host`` header (rebinding
  leaves the attacker's host name there, and is refused);
- every request that changes something (any method but GET and HEAD) must
  carry the CSRF token, which only pages served by this server know, in the
  ``X-CSRF-Token`` header; a request whose ``Origin`` is another site is
  refused too;
- bound to anything but the loopback address, every request must also carry
  the access token the server printed (once given in the URL it is kept in a
  cookie that only this host's pages send);
- every answer forbids loading anything from elsewhere and running any
  script but the server's own files (Content-Security-Policy), framing, and
  content-type sniffing.
"""

from __future__ import annotations

import hmac
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["CSP", "Guard", "GuardSettings", "new_token"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: Files a message carries are served under this policy: nothing in them may run, even opened on their own.
ATTACHMENT_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
COOKIE = "chatkeep_token"
SAFE_METHODS = frozenset({"GET", "HEAD"})

_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def new_token() -> str:
    """A random token, unguessable and safe in a URL."""
    return secrets.token_urlsafe(24)


@dataclass
class GuardSettings:
    """What the guard allows: host names (with the port), the CSRF token, and the access token when one is needed."""

    hosts: set[str]
    csrf: str = field(default_factory=new_token)
    token: str | None = None


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> set[str]:
    """The ``Host`` values a server bound to ``host``:``port`` answers: its loopback names and ``host`` itself."""
    names = {"127.0.0.1", "localhost", "[::1]", *extra}
    if host not in ("0.0.0.0", "::", ""):
        names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    allowed = {f"{name.lower()}:{port}" for name in names}
    if port == 80:  # a browser leaves the default port out of the Host header
        allowed |= {name.lower() for name in names}
    return allowed


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Guard:
    """ASGI middleware that refuses what :mod:`.security` describes and adds the security headers."""

    def __init__(self, app: Any, settings: GuardSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _plain(send, *refusal)
            return
        token = self.settings.token
        if token is not None and not self._has_cookie(scope):
            given = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get("token", "")
            if scope["method"] in SAFE_METHODS and hmac.compare_digest(given.encode(), token.encode()):
                await self._redirect_with_cookie(scope, send)
                return
            await _plain(send, 403, "chatkeep serve: open the address with ?token=... that chatkeep serve printed")
            return
        started = False
        headed = _with_headers(send)

        async def sending(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await headed(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # a bug: one line on the server's terminal, never a traceback
            from ..cli.errors import unexpected_text

            line = unexpected_text(exc)
            print(f"chatkeep serve: {line}", file=sys.stderr)
            if not started:
                await _plain(send, 500, line)

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        host = (_header(scope, b"host") or "").lower()
        if host not in self.settings.hosts:
            return 421, ("chatkeep serve: refused a request for another host name (Host header); "
                         f"open {sorted(self.settings.hosts)[0]} instead")
        if scope["method"] in SAFE_METHODS:
            return None
        origin = _header(scope, b"origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host:
            return 403, "chatkeep serve: refused a request from another site (Origin header)"
        given = _header(scope, b"x-csrf-token") or ""
        if not hmac.compare_digest(given.encode(), self.settings.csrf.encode()):
            return 403, "chatkeep serve: refused a change without this page's CSRF token; reload the page"
        return None

    def _has_cookie(self, scope: dict[str, Any]) -> bool:
        cookie = SimpleCookie()
        try:
            cookie.load(_header(scope, b"cookie") or "")
        except Exception:  # a malformed cookie header is no token
            return False
        morsel = cookie.get(COOKIE)
        token = self.settings.token or ""
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), token.encode())

    async def _redirect_with_cookie(self, scope: dict[str, Any], send: Any) -> None:
        """Keep the token in a cookie and take it out of the address bar (and so out of history and screenshots)."""
        query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k != "token"]
        location = scope["path"] + (f"?{urlencode(query)}" if query else "")
        cookie = f"{COOKIE}={self.settings.token}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode("latin-1")),
            (b"content-length", b"0"), *_HEADERS]})
        await send({"type": "http.response.body", "body": b""})


def _with_headers(send: Any) -> Any:
    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {key.lower() for key, _ in headers}
            headers += [(key, value) for key, value in _HEADERS if key not in present]
            if b"content-security-policy" not in present:
                headers.append((b"content-security-policy", CSP.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return sending


async def _plain(send: Any, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"content-security-policy", CSP.encode()), *_HEADERS]})
    await send({"type": "http.response.body", "body": body})
