"""Reading other tools' SQLite databases: opened read-only, told apart by their tables.

A source database is opened with SQLite's read-only URI mode
(``file:...?mode=ro``) and ``query_only``, so importing it can never change
it, and read in one transaction, so what is imported is one consistent
snapshot even while the tool that owns it keeps writing.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from ..errors import FormatError
from ._source import PathLike

__all__ = ["SQLITE_MAGIC", "Tables", "database_format", "is_sqlite", "open_readonly"]

SQLITE_MAGIC = b"SQLite format 3\x00"


def is_sqlite(path: PathLike) -> bool:
    """Whether the file starts as an SQLite database does."""
    try:
        with open(path, "rb") as stream:
            return stream.read(16) == SQLITE_MAGIC
    except OSError:
        return False


class Tables:
    """The tables of a database and their columns."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.columns: dict[str, set[str]] = {}
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for name in names:
            quoted = name.replace('"', '""')
            self.columns[name] = {row[1] for row in connection.execute(f'PRAGMA table_info("{quoted}")')}

    def with_columns(self, *wanted: str) -> list[str]:
        """Tables having all these columns, in name order."""
        return sorted(name for name, columns in self.columns.items() if set(wanted) <= columns)

    def has(self, table: str, *columns: str) -> bool:
        return table in self.columns and set(columns) <= self.columns[table]


@contextmanager
def open_readonly(path: PathLike) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the database at ``path``, inside one read transaction."""
    label = os.fspath(path)
    uri = f"file:{quote(str(Path(label).resolve()))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise FormatError(f"cannot open the database read-only: {exc}", file=label) from exc
    try:
        connection.execute("PRAGMA query_only = ON")
        connection.execute("BEGIN")
        yield connection
    except sqlite3.DatabaseError as exc:
        raise FormatError(f"cannot read the database: {exc}", file=label) from exc
    finally:
        connection.close()


def database_format(path: PathLike) -> str:
    """Which tool's database this is, by its tables: ``llm-db``, ``agents-db`` or ``langchain-db``."""
    label = os.fspath(path)
    with open_readonly(path) as connection:
        tables = Tables(connection)
    if tables.has("responses", "prompt", "response", "conversation_id") or tables.has(
            "threads", "tip_message_hash") and tables.has("parts", "message_hash"):
        return "llm-db"
    if tables.with_columns("session_id", "message_data"):
        return "agents-db"
    if tables.with_columns("id", "session_id", "message"):
        return "langchain-db"
    listed = ", ".join(sorted(tables.columns)[:8]) or "none"
    raise FormatError(f"not a database chatkeep imports (tables: {listed}); it reads llm's logs.db, an Agents SDK"
                      " SQLiteSession and LangChain's SQLChatMessageHistory", file=label)
