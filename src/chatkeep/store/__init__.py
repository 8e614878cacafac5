"""Storage: the ``Store`` protocol, its backends, and ``open_store``.

This is the only layer that touches disk or a database.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..errors import StoreError
from .base import ANY, HEAD, PARENT, ConversationRecord, Draft, MessageStatus, StoredMessage
from .conversation import Conversation
from .files import ENV_VAR, default_database_path
from .protocol import Lease, Store

if TYPE_CHECKING:
    from .jsonfile import JSONFileStore
    from .postgres import PostgresStore
    from .sqlite import SQLiteStore

__all__ = [
    "ANY",
    "HEAD",
    "PARENT",
    "Conversation",
    "ConversationRecord",
    "Draft",
    "JSONFileStore",
    "Lease",
    "MessageStatus",
    "SQLiteStore",
    "Store",
    "StoredMessage",
    "open_store",
    "resolve_target",
]

AnyStore = Union["SQLiteStore", "JSONFileStore", "PostgresStore"]


def __getattr__(name: str) -> Any:
    # The backends load when first named (PEP 562): a command that opens SQLite never imports
    # the JSON file store's lock library, nor psycopg.
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    if name == "JSONFileStore":
        from .jsonfile import JSONFileStore

        return JSONFileStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_target(target: str | os.PathLike[str] | None = None) -> str:
    """Which store ``open_store(target)`` opens: the argument, ``$CHATKEEP_DB``, or the default."""
    if target is not None:
        return os.fspath(target)
    from_env = os.environ.get(ENV_VAR, "").strip()
    return from_env or str(default_database_path())


def _sqlite_path(url: str) -> str:
    """The file of a ``sqlite:`` URL, spelled as SQLAlchemy does: three slashes, then the path."""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return url[len("sqlite:///"):]  # sqlite:///relative.db, sqlite:////absolute.db
    raise StoreError(
        f"{url!r} names no SQLite file: write sqlite:///relative.db or sqlite:////absolute/path.db "
        "(or just the path); for a throwaway store that vanishes at exit, pass ':memory:'"
    )


def open_store(target: str | os.PathLike[str] | None = None, **options: Any) -> AnyStore:
    """Open a store: a SQLite file by default, the tutorial's JSON file for ``*.json``.

    ``target`` is a path or URL: ``path/to/file.db``, ``sqlite:///path``,
    ``sqlite:////absolute/path``, ``":memory:"``, ``conversation_history.json`` or
    ``postgresql://user@host/dbname`` (needs ``pip install 'chatkeep[postgres]'``). Without
    one, ``$CHATKEEP_DB`` is used, then ``chatkeep.db`` in the user data directory.
    ``options`` go to the backend, such as ``durability="full"`` for SQLite or
    ``pool_size=20`` for PostgreSQL.
    """
    where = resolve_target(target)
    if where.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore  # imports psycopg only when it is used

        return PostgresStore(where, **options)
    if where.startswith("sqlite:"):
        where = _sqlite_path(where)
    if "://" in where:
        scheme = where.split("://", 1)[0]
        raise StoreError(
            f"unsupported store URL scheme {scheme!r} (expected a path, sqlite://, postgresql:// or .json)"
        )
    if where.lower().endswith(".json"):
        if options:
            raise StoreError(f"the JSON file store takes no options (got {', '.join(options)})")
        from .jsonfile import JSONFileStore

        return JSONFileStore(Path(where).expanduser())
    from .sqlite import SQLiteStore

    if where == ":memory:":
        return SQLiteStore(where, **options)
    return SQLiteStore(Path(where).expanduser(), **options)
