"""Connections to PostgreSQL: one pool per store, a connection per call, errors that name the server.

Why it works this way:

- One ``psycopg_pool.ConnectionPool`` per store and a connection per call make
  the store safe to share between threads (``AsyncChat`` calls it from
  ``asyncio.to_thread``): no connection is ever used by two threads at once.
- Connections the server dropped while idle (a restart, ``pg_terminate_backend``,
  a firewall's timeout) are found and replaced, all at once (``pool.check()``):
  a read that finds its connection dead runs once more on a fresh one (reading
  twice is harmless), and so does a write whose ``BEGIN`` failed (nothing was
  sent yet).
- A write whose connection is lost once it has started is not retried, because
  its commit may have happened: it fails with a ``StoreError`` that names the
  server (never the password) and says whether anything can have been saved.
  Deadlocks and serialization failures are retried: the server rolled them back.
- A write that is one statement (an append) goes in one round trip on a warm
  connection: one that finished a round trip less than :data:`WARM_SECONDS`
  ago and has heard nothing from the server since. The statement is its own
  transaction (BEGIN and COMMIT travel with it), so there is no separate BEGIN
  to prove the connection alive first; the two checks stand in for it. A server
  that closes a connection (a restart, ``pg_terminate_backend``, its idle
  timeouts) says so on the socket, which the second check reads without a round
  trip; a firewall forgets a connection only after minutes of silence, which the
  first rules out. Any other connection proves itself with a BEGIN, as every
  other write does. Once sent, the outcome is told as for any write: an error
  the server reported means the statement rolled back (PostgreSQL never reports
  one for a transaction it committed; it drops the connection instead), and a
  connection lost without one means the commit may or may not have happened.

psycopg is imported only when a PostgreSQL store is opened, so chatkeep works
without it; :func:`require_psycopg` says which extra to install.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import BackendUnavailable, StoreError

if TYPE_CHECKING:
    from psycopg import Connection

    from .postgres_connection import PooledConnection

__all__ = ["WARM_SECONDS", "Connections", "describe_server", "hide_password", "require_psycopg"]

T = TypeVar("T")

#: Attempts for a write the server rolled back on its own (deadlock, serialization failure).
_WRITE_ATTEMPTS = 3

#: A connection that finished a round trip this recently sends a one-statement write without a BEGIN first.
#: Firewalls and NAT gateways forget idle connections after minutes (AWS 350 s, Azure 4 min, GCP 10 min).
WARM_SECONDS = 10.0

_PASSWORD_IN_URL = re.compile(r"(://[^:/@?#]*):[^@/?#]*@")
_PASSWORD_PARAMETER = re.compile(r"(?i)([?&;\s]password=)[^&;\s]*")

# The pool logs a warning for each dead connection it replaces, which chatkeep
# handles; without this, an application that configured no logging would see
# them on stderr. Configured handlers still receive them.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


def _rolled_back() -> tuple[type[Exception], ...]:
    """Errors after which the server has rolled the transaction back, so running it again is safe."""
    from psycopg import errors

    return (errors.TransactionRollback, errors.SerializationFailure, errors.DeadlockDetected)


def _reported_by_server(exc: BaseException) -> bool:
    """Whether the server reported this error itself (an ERROR or FATAL with its SQLSTATE): then it rolled
    the statement's transaction back. A PANIC, or a connection lost without a word, leaves the commit unknown."""
    from psycopg import Error

    if not isinstance(exc, Error) or exc.sqlstate is None:
        return False
    return exc.diag.severity_nonlocalized in ("ERROR", "FATAL")


def require_psycopg() -> None:
    """Import psycopg and its pool, or raise ``BackendUnavailable`` naming the extra to install."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(
            f"the PostgreSQL backend needs psycopg 3 and psycopg-pool ({exc}): "
            "pip install 'chatkeep[postgres]'"
        ) from exc


def hide_password(text: str, password: str | None = None) -> str:
    """``text`` with any password in a URL (and ``password`` itself) replaced by ``***``."""
    text = _PASSWORD_IN_URL.sub(r"\1:***@", text)
    text = _PASSWORD_PARAMETER.sub(r"\1***", text)
    if password:
        text = text.replace(password, "***")
    return text


def describe_server(url: str) -> str:
    """The URL without its password or options: ``postgresql://user@host:port/dbname``."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:  # an unparsable URL: show what can be shown safely
        return hide_password(url.split("?", 1)[0])
    user = f"{params['user']}@" if params.get("user") else ""
    host = str(params.get("host") or "")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"


class Connections:
    """A pool of connections to one server, lent one per call; see the module's docstring."""

    def __init__(self, url: str, *, pool_size: int, timeout: float, connect_timeout: float) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
        from psycopg_pool import ConnectionPool

        from .postgres_connection import PooledConnection

        self.server = describe_server(url)
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreError(f"{hide_password(url)}: not a PostgreSQL URL: {hide_password(str(exc))}") from exc
        self._password = str(given.get("password") or "") or None
        self.timeout = timeout
        defaults: dict[str, str | int] = {
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": "chatkeep",
        }
        self._conninfo = make_conninfo(url, **{k: v for k, v in defaults.items() if k not in given})
        self._pool: ConnectionPool[PooledConnection] = ConnectionPool(
            self._conninfo, connection_class=PooledConnection, min_size=1, max_size=pool_size, open=False,
            timeout=timeout, kwargs={"autocommit": True}, name=self.server,
        )
        self.closed = False
        #: How recently a connection must have finished a round trip to write without a BEGIN first.
        self.warm_seconds = WARM_SECONDS

    def connect(self) -> Connection[Any]:
        """One connection outside the pool (the caller closes it); connection errors are explained."""
        import psycopg

        try:
            return psycopg.Connection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"{self.server}: cannot connect: {self._clean(exc)}") from exc

    def open(self) -> None:
        """Start the pool with its first connection ready.

        Left to the background, that connection would not be ready for the
        first call, the pool would add a second one for it, and from then on
        lend the two in turn (it gives out the one idle longest), each with
        its caches cold, the server process's and psycopg's: single appends
        measured 7 % slower.
        """
        from psycopg_pool import PoolTimeout

        try:
            self._pool.open(wait=True, timeout=self.timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise self._no_connection(exc) from exc

    def close(self) -> None:
        self.closed = True
        self._pool.close()

    def _clean(self, exc: BaseException) -> str:
        return hide_password(str(exc).strip(), self._password).replace("\n", " ")

    def _check_open(self) -> None:
        if self.closed:
            raise StoreError(f"{self.server}: the store is closed")

    @contextmanager
    def _lent(self) -> Iterator[PooledConnection]:
        """A connection from the pool, given back afterwards (rolled back, or replaced when broken).

        ``pool.connection()`` does the same and also commits on the way out,
        which costs a lock and a check per call, and nothing here needs it.
        """
        conn = self._pool.getconn()
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    def _sweep(self) -> None:
        """Replace every pooled connection the server has dropped (after a restart, all of them)."""
        self._pool.check()

    def read(self, operation: Callable[[Connection[Any]], T]) -> T:
        """Run a read on a pooled connection; if the connection is lost, run it once more on a fresh one."""
        import psycopg
        from psycopg_pool import PoolTimeout

        self._check_open()
        for attempt in (1, 2):
            try:
                with self._lent() as conn:
                    result = operation(conn)
                    conn.confirm()
                    return result
            except PoolTimeout as exc:
                raise self._no_connection(exc) from exc
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise StoreError(f"{self.server}: read failed twice: {self._clean(exc)}") from exc
                self._sweep()
            except psycopg.Error as exc:
                raise StoreError(f"{self.server}: {self._clean(exc)}") from exc
        raise AssertionError("unreachable")

    def write(self, operation: Callable[[Connection[Any]], T], *, replayable: bool = True) -> T:
        """Run ``operation`` in one transaction: all of it commits, or none of it.

        A transaction the server rolled back (a deadlock) runs again only when
        ``replayable``: an operation that consumes an iterator cannot run twice.
        """
        return self._write(operation, replayable=replayable, one_statement=False)

    def write_statement(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """Run one statement as a transaction of its own and return its rows: one round trip on a warm connection.

        The rules are :meth:`write`'s; see the module's docstring for how a
        connection dropped while idle is still found before anything is sent.
        """
        return self._write(lambda conn: conn.statements().execute(sql, params).fetchall(), replayable=True,
                           one_statement=True)

    def _warm(self, conn: PooledConnection) -> bool:
        """Whether ``conn`` may send a statement without a BEGIN to prove it alive first (see ``WARM_SECONDS``)."""
        return time.monotonic() - conn.confirmed_at < self.warm_seconds and not conn.heard_from_server()

    def _write(self, operation: Callable[[PooledConnection], T], *, replayable: bool, one_statement: bool) -> T:
        import psycopg
        from psycopg_pool import PoolTimeout

        self._check_open()
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            stage = "idle"
            try:
                with self._lent() as conn:
                    if one_statement and self._warm(conn):
                        stage = "sent"  # BEGIN, the statement and COMMIT, all at once
                        result = operation(conn)
                    else:
                        with conn.transaction():  # BEGIN fails on a connection dropped while idle
                            stage = "writing"
                            result = operation(conn)
                            stage = "committing"
                    conn.confirm()
                    return result
            except PoolTimeout as exc:
                raise self._no_connection(exc) from exc
            except _rolled_back() as exc:
                if not replayable or attempt == _WRITE_ATTEMPTS:
                    raise StoreError(f"{self.server}: the server rolled the write back, nothing was saved"
                                     f" (try again): {self._clean(exc)}") from exc
            except psycopg.OperationalError as exc:
                if stage == "idle" and attempt < _WRITE_ATTEMPTS:
                    self._sweep()  # dropped while idle: nothing was sent, so try on a fresh one
                    continue
                unknown = stage == "committing" or (stage == "sent" and not _reported_by_server(exc))
                outcome = ("the commit was sent but not confirmed, so it may or may not have been saved"
                           if unknown else "nothing was saved")
                raise StoreError(f"{self.server}: the connection failed during a write ({outcome}): "
                                 f"{self._clean(exc)}") from exc
            except psycopg.Error as exc:
                raise StoreError(f"{self.server}: {self._clean(exc)}") from exc
        raise AssertionError("unreachable")

    def _no_connection(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"{self.server}: no connection within {self.timeout:g} s (is the server up, "
            f"or are all {self._pool.max_size} pooled connections busy?): {self._clean(exc)}"
        )
