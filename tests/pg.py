"""PostgreSQL fixtures: a fresh schema per test on the server scripts/test started.

``postgres_url`` yields a URL whose ``search_path`` is a new, empty schema, so
every test starts with no tables and tests cannot see each other's data (a
schema is created in milliseconds; a database would take far longer). Without a
server the tests skip, saying why, except on CI, where they fail.
``pytest_terminal_summary`` prints how many PostgreSQL tests ran.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

if TYPE_CHECKING:
    from psycopg import Connection

# Read at import: the autouse isolated_environment fixture removes CHATKEEP_* variables.
SERVER = os.environ.get("CHATKEEP_TEST_POSTGRES", "").strip()
UNAVAILABLE = os.environ.get("CHATKEEP_TEST_POSTGRES_UNAVAILABLE", "").strip()
ON_CI = bool(os.environ.get("CI"))

_ran: set[str] = set()


def with_options(url: str, **params: str) -> str:
    """``url`` with query parameters set (``application_name``, ...); ``options`` adds to those there."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in params.items():
        query[name] = f"{query[name]} {value}" if name == "options" and name in query else value
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))  # libpq reads no "+"


def schema_url(url: str, schema: str) -> str:
    """``url`` with its connections' ``search_path`` set to ``schema``."""
    return with_options(url, options=f"-c search_path={schema}")


@cache
def _server_problem() -> str | None:
    """Why the server cannot be used, or None when it answers."""
    if not SERVER:
        return UNAVAILABLE or "CHATKEEP_TEST_POSTGRES is not set (scripts/test starts a server and sets it)"
    import psycopg

    try:
        with psycopg.connect(SERVER, connect_timeout=10):
            return None
    except psycopg.Error as exc:
        return f"cannot connect to {SERVER}: {exc}"


def require_server() -> str:
    """The server's URL; skips the test without one (fails it on CI)."""
    problem = _server_problem()
    if problem is not None:
        if ON_CI:
            pytest.fail(f"PostgreSQL is required on CI: {problem}")
        pytest.skip(f"PostgreSQL unavailable: {problem}")
    return SERVER


def admin(url: str | None = None) -> Connection[Any]:
    """A plain autocommit connection to the test server (or ``url`` on it), to set up and inspect."""
    import psycopg

    return psycopg.connect(url or require_server(), autocommit=True)


def start_failing(work: Callable[[], object]) -> tuple[threading.Thread, list[Exception]]:
    """Run ``work`` in a started thread; the list collects what it raises, the failure a test then checks."""
    failures: list[Exception] = []

    def run() -> None:
        try:
            work()
        except Exception as exc:  # the failure under test, checked by the caller
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failures


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL to the test server whose search_path is a fresh schema, dropped afterwards."""
    server = require_server()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with admin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    _ran.add(request.node.nodeid)
    try:
        yield schema_url(server, schema)
    finally:
        with admin() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many tests ran on PostgreSQL, and why none did when none did."""
    line = f"PostgreSQL tests run: {len(_ran)}"
    if not _ran and _server_problem() is not None:
        line += f" ({_server_problem()})"
    terminalreporter.write_line(line)
