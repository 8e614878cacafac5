"""The SQLite schema as numbered migrations, applied in order under ``PRAGMA user_version``.

Each migration is a small function that takes a connection inside the
migration transaction. Add new ones at the end; never edit a released one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..errors import MigrationError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]


def _run(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, which would split the migration's transaction.
    # Statements end with ";"; inside a trigger body they end with "%" instead.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement.replace("%", ";"))


def m001_initial(db: sqlite3.Connection) -> None:
    """Conversations, and messages forming a tree inside each conversation."""
    _run(
        db,
        """
        CREATE TABLE conversations (
            id          TEXT PRIMARY KEY,
            title       TEXT,
            owner       TEXT,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            metadata    TEXT NOT NULL DEFAULT '{}',
            head_id     TEXT REFERENCES messages(id) ON DELETE SET NULL
        );
        CREATE INDEX conversations_updated ON conversations(updated_at DESC);
        CREATE INDEX conversations_owner ON conversations(owner, updated_at DESC);

        -- seq (the rowid) keeps insertion order and makes an append an insert at the
        -- end of the table, while id is the public, time-sortable identifier.
        CREATE TABLE messages (
            seq             INTEGER PRIMARY KEY,
            id              TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id       TEXT REFERENCES messages(id),
            kind            TEXT NOT NULL DEFAULT 'chat',
            role            TEXT,
            body            TEXT NOT NULL,
            text            TEXT NOT NULL DEFAULT '',
            created_at      TEXT NOT NULL,
            status          TEXT NOT NULL DEFAULT 'complete'
                            CHECK (status IN ('complete', 'incomplete', 'error')),
            model           TEXT,
            usage           TEXT,
            latency_ms      REAL,
            finish_reason   TEXT,
            error           TEXT,
            token_counts    TEXT,
            metadata        TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX messages_conversation ON messages(conversation_id, seq);
        CREATE INDEX messages_parent ON messages(parent_id);
        """
    )


def m002_kind_index(db: sqlite3.Connection) -> None:
    """Find a conversation's summaries without scanning its messages."""
    _run(db, "CREATE INDEX messages_kind ON messages(conversation_id, kind) WHERE kind != 'chat'")


def m003_source_keys(db: sqlite3.Connection) -> None:
    """Remember imported conversations' and messages' own ids, so a second import adds nothing."""
    _run(
        db,
        """
        ALTER TABLE conversations ADD COLUMN source_key TEXT;
        CREATE UNIQUE INDEX conversations_source ON conversations(source_key) WHERE source_key IS NOT NULL;
        ALTER TABLE messages ADD COLUMN source_key TEXT;
        CREATE UNIQUE INDEX messages_source ON messages(conversation_id, source_key) WHERE source_key IS NOT NULL
        """,
    )


def m004_full_text_search(db: sqlite3.Connection) -> None:
    """An FTS5 index over every message's text, kept in step by triggers."""
    _run(
        db,
        """
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            text, content='messages', content_rowid='seq', tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, text) VALUES (new.seq, new.text)%
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.seq, old.text)%
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.seq, old.text)%
            INSERT INTO messages_fts(rowid, text) VALUES (new.seq, new.text)%
        END;
        INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')
        """,
    )


def m005_import_heads(db: sqlite3.Connection) -> None:
    """Remember where an import left each conversation's head, so a re-import never rewinds it.

    Conversations imported before this knew nothing of it: their head counts as
    the import's only while it is an imported message (nobody has added turns).
    """
    _run(
        db,
        """
        ALTER TABLE conversations ADD COLUMN import_head TEXT;
        UPDATE conversations SET import_head = head_id
        WHERE source_key IS NOT NULL AND head_id IN (SELECT id FROM messages WHERE source_key IS NOT NULL)
        """,
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_initial,
    m002_kind_index,
    m003_source_keys,
    m004_full_text_search,
    m005_import_heads,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, *, source: str) -> None:
    """Bring the schema up to :data:`SCHEMA_VERSION` in one transaction.

    ``db`` must be in autocommit mode (``isolation_level=None``). Two processes
    opening a new file at once are serialized by ``BEGIN IMMEDIATE``; the second
    finds the work done.
    """
    if _version(db) == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db)
        if version > SCHEMA_VERSION:
            raise MigrationError(
                f"{source}: database schema version {version} is newer than this chatkeep "
                f"understands ({SCHEMA_VERSION}); upgrade chatkeep"
            )
        for number in range(version, SCHEMA_VERSION):
            MIGRATIONS[number](db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
