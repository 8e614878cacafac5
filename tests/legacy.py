"""Databases as an older chatkeep left them, for migration tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path


def sqlite_before(file: Path, migration: Callable[[sqlite3.Connection], None]) -> sqlite3.Connection:
    """``file`` at the schema version just before ``migration``, inside an open transaction (commit it).

    The connection has chatkeep's SQL functions, so the triggers of that version fire on inserts.
    """
    from chatkeep.store.sqlite_schema import MIGRATIONS, add_functions

    db = sqlite3.connect(file, isolation_level=None)
    add_functions(db)
    db.execute("BEGIN")
    before = MIGRATIONS.index(migration)
    for older in MIGRATIONS[:before]:
        older(db)
    db.execute(f"PRAGMA user_version = {before}")
    return db
