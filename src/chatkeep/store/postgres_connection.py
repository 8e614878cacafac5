"""The connection a store's pool lends: psycopg's, plus what one-round-trip writes need to know about it.

Imported only with psycopg (see :class:`.postgres_pool.Connections`), so
opening a SQLite store never loads it.
"""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg
from psycopg.pq import ConnStatus

__all__ = ["PooledConnection"]


class PooledConnection(psycopg.Connection[Any]):
    """A pooled connection that knows when it last finished a round trip, and whether the server spoke since.

    It also keeps one cursor for one-statement writes: psycopg reuses a
    cursor's adaptation of a query it ran last, which a new cursor per call
    would build again each time.
    """

    #: ``time.monotonic()`` when a call on this connection last succeeded (never: minus infinity).
    confirmed_at: float = float("-inf")
    _statements: psycopg.Cursor[Any] | None = None
    _poll: Any = None

    def confirm(self) -> None:
        """Record that a round trip on this connection just succeeded."""
        self.confirmed_at = time.monotonic()

    def heard_from_server(self) -> bool:
        """Whether input is waiting on this idle connection (a server that closed it sends a last error, then
        end of file), asked of the socket without waiting; when it cannot be asked, the answer is yes."""
        if self.pgconn.status != ConnStatus.OK:  # libpq already found it broken
            return True
        try:
            if not hasattr(select, "poll"):  # Windows
                return bool(select.select([self.fileno()], [], [], 0)[0])
            if self._poll is None:
                self._poll = select.poll()
                self._poll.register(self.fileno(), select.POLLIN)
            return bool(self._poll.poll(0))
        except (OSError, ValueError, psycopg.Error):
            return True

    def statements(self) -> psycopg.Cursor[Any]:
        """The cursor kept for one-statement writes."""
        if self._statements is None or self._statements.closed:
            self._statements = self.cursor()
        return self._statements
