"""One write transaction on a SQLite store's connection: all of it commits, or none of it.

A class rather than a ``contextlib.contextmanager`` generator: every write,
an append above all, goes through it, and the generator's machinery cost a
measurable part of an append's time (issue 17).
"""

from __future__ import annotations

import sqlite3
from types import TracebackType

from ..errors import StoreError
from .sqlite_files import ErrorGuard

__all__ = ["WriteTransaction"]


class WriteTransaction:
    """``with WriteTransaction(db, guard, file, read_only) as db:`` runs its body in ``BEGIN IMMEDIATE`` ... ``COMMIT``.

    The body runs under ``guard`` (the store's lock, which turns a SQLite error
    into a ``StoreError`` naming the file). An exception in the body rolls the
    transaction back and goes on up; a failed commit rolls back too.
    """

    __slots__ = ("_db", "_guard", "_file", "_read_only")

    def __init__(self, db: sqlite3.Connection, guard: ErrorGuard, file: str, read_only: str | None) -> None:
        self._db, self._guard, self._file, self._read_only = db, guard, file, read_only

    def __enter__(self) -> sqlite3.Connection:
        if self._read_only is not None:
            raise StoreError(f"{self._file} is read-only ({self._read_only}), so nothing was saved")
        self._guard.__enter__()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self._guard.__exit__(type(exc), exc, exc.__traceback__)  # a SQLite error leaves as a StoreError
            raise
        return self._db

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        db = self._db
        try:
            if exc is None:
                try:
                    db.execute("COMMIT")
                except db.Error:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            elif db.in_transaction:  # SQLite may have rolled it back already (a full disk, say)
                db.execute("ROLLBACK")
        except BaseException as error:
            self._guard.__exit__(type(error), error, error.__traceback__)
            raise
        self._guard.__exit__(kind, exc, traceback)  # the body's SQLite error leaves as a StoreError
