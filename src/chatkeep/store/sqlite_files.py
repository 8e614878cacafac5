"""The SQLite store's file: opening it safely, and turning SQLite's errors into ones a user can act on.

- A file that is not chatkeep's (another application's database, or not a
  database at all) is refused before a byte of it changes: chatkeep only
  adds its tables to a new, empty database.
- A file or folder chatkeep may not write (its mode, the user's rights,
  read-only media) opens read-only, in SQLite's read-only mode, and every
  write then says so instead of failing halfway.
- Every ``sqlite3.Error`` leaves the store as a ``StoreError`` that names the
  file and what to do; the transaction it happened in was rolled back.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from ..errors import StoreError
from .encryption import is_db_error

__all__ = ["ErrorGuard", "cannot_write", "connect", "is_busy", "refuse_foreign", "translate"]


def cannot_write(path: Path) -> str | None:
    """Why chatkeep must not write ``path`` (its mode, the user's rights, its folder), or None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        return f"it cannot be examined ({exc.strerror})"
    if mode is not None and (not mode & stat.S_IWUSR or not os.access(path, os.W_OK)):
        return f"the file is read-only (mode {stat.S_IMODE(mode):04o})"
    folder = path.parent
    if folder.exists() and (not folder.stat().st_mode & stat.S_IWUSR or not os.access(folder, os.W_OK | os.X_OK)):
        return f"its folder {folder} is read-only"
    return None


def connect(file: str, *, read_only: bool, busy_timeout: float) -> sqlite3.Connection:
    """A connection to ``file``; read-only ones use SQLite's read-only mode (never create or write anything)."""
    options = {"isolation_level": None, "check_same_thread": False, "timeout": busy_timeout}
    if not read_only:
        return sqlite3.connect(file, **options)  # type: ignore[arg-type]
    uri = f"file:{quote(os.path.abspath(file))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, **options)  # type: ignore[arg-type]
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        if Path(f"{file}-wal").exists():
            raise  # a writer is active: its log must be read, which needs the shared-memory file
        # A folder chatkeep cannot write has no room for SQLite's shared-memory file; with no
        # write-ahead log left behind, the main file alone is the whole database.
        return sqlite3.connect(f"{uri}&immutable=1", uri=True, **options)  # type: ignore[arg-type]


def refuse_foreign(db: sqlite3.Connection, file: str) -> None:
    """Raise ``StoreError`` when the database holds tables and is not chatkeep's (it is left untouched)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = [row[0] for row in db.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name"
    )]
    if not tables or (version > 0 and {"conversations", "messages"} <= set(tables)):
        return
    shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    raise StoreError(
        f"{file} is not a chatkeep database (it holds {shown}); it was left untouched: "
        "give chatkeep a file of its own (--db or $CHATKEEP_DB)"
    )


def is_busy(exc: BaseException) -> bool:
    """Whether a SQLite error says another connection holds the lock it needed."""
    return str(getattr(exc, "sqlite_errorname", "") or "").startswith("SQLITE_BUSY") or "database is locked" in str(exc)


def translate(file: str, exc: Exception, *, busy_timeout: float) -> StoreError:
    """A ``StoreError`` for a SQLite error: what happened to which file, and what to do."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if is_busy(exc):
        return StoreError(
            f"{file}: another process has held the database's write lock for more than {busy_timeout:g} s, "
            "so nothing was saved; try again once it is done (or find the process that keeps it busy)"
        )
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return StoreError(f"{file}: the disk is full, so nothing was saved; free some space and try again")
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return StoreError(f"{file}: the database cannot be written (read-only), so nothing was saved")
    if name.startswith("SQLITE_NOTADB") or "not a database" in text:
        return StoreError(f"{file} is not a SQLite database; it was left untouched: give chatkeep a file of its own "
                          "(--db or $CHATKEEP_DB)")
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text:
        return StoreError(
            f"{file}: the database is damaged ({text}); nothing was changed. Restore it from a backup, "
            "or recover what is readable with: sqlite3 FILE .recover"
        )
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return StoreError(f"{file}: the file cannot be read or written ({text}); nothing was saved")
    return StoreError(f"{file}: {text}")


class ErrorGuard:
    """The store's lock, which also turns any ``sqlite3.Error`` raised under it into a ``StoreError``."""

    def __init__(self, file: str, busy_timeout: float) -> None:
        self.file, self.busy_timeout = file, busy_timeout
        self._lock = threading.RLock()

    def __enter__(self) -> ErrorGuard:
        self._lock.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._lock.release()
        if isinstance(exc, Exception) and is_db_error(exc):  # sqlite3's, or SQLCipher's own error classes
            raise translate(self.file, exc, busy_timeout=self.busy_timeout) from exc
