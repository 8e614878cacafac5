"""Leaving no trace of removed text in a SQLite store's files, and giving the space back.

Deleting or rewriting rows leaves the old bytes behind in several places: in
the free space of the pages that held them, on pages moved to the freelist
(earlier deletions and the search index's own merges included), in older
segments of the FTS5 index (a deletion only adds a marker), and in the
write-ahead log until a checkpoint. ``scrub`` clears all of them:

1. the search index is merged into one segment (FTS5 ``optimize``), which
   drops the entries of removed and rewritten messages;
2. ``VACUUM`` rebuilds the database from its live rows only, under
   ``secure_delete``: no free page and no old byte is left, and the file
   shrinks to what it holds;
3. ``wal_checkpoint(TRUNCATE)`` writes the log into the file and truncates
   the log to nothing.

A process reading the store at that moment can keep the last step from
finishing; the result says so (scrub again once that process is done).
Copies made before (backups, file-system snapshots) still hold the old text.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .sqlite import SQLiteStore

__all__ = ["Scrubbed", "scrub", "secure_delete"]


@dataclass(frozen=True)
class Scrubbed:
    """What scrubbing did: the files' size before and after, and whether the log was emptied."""

    bytes_before: int
    bytes_after: int
    log_cleared: bool


def _size(file: str) -> int:
    return sum(os.stat(f"{file}{suffix}").st_size for suffix in ("", "-wal") if Path(f"{file}{suffix}").exists())


@contextmanager
def secure_delete(store: SQLiteStore) -> Iterator[None]:
    """Have SQLite overwrite what the store's connection deletes or rewrites with zeros, meanwhile."""
    with store._lock:
        db = store._db
        previous = int(db.execute("PRAGMA secure_delete").fetchone()[0])
        db.execute("PRAGMA secure_delete = ON")
        try:
            yield
        finally:
            db.execute(f"PRAGMA secure_delete = {previous}")


def scrub(store: SQLiteStore) -> Scrubbed:
    """Rebuild ``store``'s file so removed text is gone from it (and its log), and the space given back."""
    before = _size(store.file) if store.file != ":memory:" else 0
    with secure_delete(store):
        db = store._db
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'").fetchone():
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        db.execute("VACUUM")
        busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    after = _size(store.file) if store.file != ":memory:" else 0
    return Scrubbed(before, after, log_cleared=not busy)
