"""Options and helpers every command shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..store import AnyStore, open_store

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["db_option", "json_option", "open_db"]


def db_option(command: F) -> F:
    """``--db PATH``: the store to use."""
    return click.option(
        "--db", metavar="PATH", envvar="CHATKEEP_DB", show_envvar=True,
        help="The store: a SQLite file, a .json file or a postgresql:// URL (default: chatkeep.db in the user data dir).",
    )(command)


def json_option(command: F) -> F:
    """``--json``: print machine-readable JSON instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)


def open_db(db: str | None) -> AnyStore:
    """Open the store named by ``--db`` (or the default)."""
    return open_store(db)
