"""Options and helpers every command shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..store import AnyStore, open_store

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["db_option", "json_option", "open_db", "store_target"]


def db_option(command: F) -> F:
    """``--db PATH``: the store to use."""
    return click.option(
        "--db", metavar="PATH", envvar="CHATKEEP_DB", show_envvar=True,
        help="The store: a SQLite file, a .json file or a postgresql:// URL (default: the 'store' setting, else "
             "chatkeep.db in the user data dir).",
    )(command)


def json_option(command: F) -> F:
    """``--json``: print machine-readable JSON instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)


def store_target(db: str | None) -> str | None:
    """The store to open: ``--db`` (or ``$CHATKEEP_DB``), else the settings file's ``store`` (``None``: the default)."""
    if db is not None and db.strip():
        return db
    from ..settings import load_settings

    configured = load_settings().values.get("store")
    return str(configured) if configured is not None else None


def open_db(db: str | None, *, writes: bool = True) -> AnyStore:
    """Open the store named by ``--db`` (or ``$CHATKEEP_DB``), else the settings' ``store``, else the default.

    With the ``redact_on_write`` setting, the store redacts every message before storing it. A command
    that only reads (``writes=False``) skips that setting, so with ``--db`` it never reads the settings file.
    """
    from ..settings import load_settings

    store = open_store(store_target(db))
    if writes and load_settings().get("redact_on_write") and hasattr(store, "redactor"):
        from ..redact import Redactor

        store.redactor = Redactor()
    return store
