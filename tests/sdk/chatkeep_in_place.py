"""A pytest plugin: the OpenAI Agents SDK's own session tests, run against ``ChatkeepSession``.

Loaded with ``-p chatkeep_in_place`` when pytest runs the SDK's
``tests/memory/test_session*.py`` (from the SDK's source distribution, see
scripts/sdk-session-tests): ``agents.SQLiteSession`` becomes a
``ChatkeepSession`` over a chatkeep SQLite store at the same path, before their
test modules import it, so every test they wrote for ``SQLiteSession`` drives
chatkeep's session instead. Their files are not changed.

A few of their tests examine ``SQLiteSession``'s own workings (its worker-thread
connections, its file-lock registry, rows it corrupts in its own tables, a
private helper); those cannot apply to another implementation and are
deselected here, each with the reason.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import agents
import agents.memory
import pytest

from chatkeep import open_store
from chatkeep.integrations import ChatkeepSession

#: SDK tests of SQLiteSession internals, and why each cannot apply to ChatkeepSession.
NOT_APPLICABLE = {
    "test_sqlite_session_close_closes_worker_thread_connections": "SQLiteSession's per-thread connections",
    "test_sqlite_session_reaps_connections_from_exited_worker_threads": "SQLiteSession's per-thread connections",
    "test_sqlite_session_closes_retired_connections_before_the_next_allocation": "SQLiteSession's per-thread connections",
    "test_sqlite_session_keeps_connections_of_live_worker_threads": "SQLiteSession's per-thread connections",
    "test_sqlite_session_file_lock_is_shared_across_instances": "SQLiteSession's class-level file-lock registry",
    "test_sqlite_session_pop_item_skips_corrupt_most_recent": "writes corrupt rows into SQLiteSession's own table",
    "test_sqlite_session_pop_item_returns_none_after_dropping_only_corrupt_rows": "writes corrupt rows into SQLiteSession's own table",
    "test_sqlite_session_get_items_limit_skips_corrupt_newest_rows": "writes corrupt rows into SQLiteSession's own table",
    "test_sqlite_session_get_items_session_settings_limit_skips_corrupt_rows": "writes corrupt rows into SQLiteSession's own table",
    "test_await_mutation_cancellation_hides_later_failure_without_loop_error": "a private helper of sqlite_session",
    "test_sqlite_session_failed_add_items_releases_write_lock": "SQLiteSession's own tables, by a probe connection",
    "test_sqlite_session_failed_clear_session_rolls_back": "drops SQLiteSession's own tables",
    "test_sqlite_session_failed_pop_item_releases_write_lock": "drops SQLiteSession's own tables",
    "test_sqlite_session_rollback_failure_evicts_connection": "SQLiteSession's per-thread connections",
    "test_sqlite_session_close_retries_quarantined_connection": "SQLiteSession's per-thread connections",
    "test_sqlite_session_post_commit_cancellation_propagates_after_known_outcome":
        "SQLiteSession's connection lock, around its own commit",
}


class SQLiteSession(ChatkeepSession):
    """``SQLiteSession(session_id, db_path, session_settings=...)``, kept by chatkeep."""

    def __init__(self, session_id: str, db_path: str | Path = ":memory:", session_settings: Any = None) -> None:
        self.db_path = db_path
        super().__init__(session_id, open_store(db_path), session_settings=session_settings)
        self._owns_store = True
        self._closed = False

    def close(self) -> None:
        self._closed = True
        super().close()

    async def add_items(self, items: list[Any]) -> None:
        if self._closed:  # as SQLiteSession, whose tests expect this exact error
            raise RuntimeError("SQLiteSession is closed")
        await super().add_items(items)


def pytest_configure(config: pytest.Config) -> None:
    agents.SQLiteSession = SQLiteSession  # type: ignore[misc]
    agents.memory.SQLiteSession = SQLiteSession  # type: ignore[misc]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = NOT_APPLICABLE.get(item.originalname if isinstance(item, pytest.Function) else item.name)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"not applicable to ChatkeepSession: tests {reason}"))


__all__ = ["SQLiteSession", "sqlite3"]
