"""The SQLite schema as numbered migrations, applied in order under ``PRAGMA user_version``.

Each migration is a small function that takes a connection inside the
migration transaction. Add new ones at the end; never edit a released one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..errors import MigrationError
from .search import MAX_WORD_CHARS, search_words

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "add_functions", "migrate", "schema_version"]


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


def m006_search_words(db: sqlite3.Connection) -> None:
    """Index the words chatkeep finds itself: emoji and symbols, and CJK a character at a time.

    FTS5's unicode61 tokenizer drops symbols (``☕`` was unsearchable) and
    reads a Chinese or Japanese sentence as one word. Now the index holds each
    message's words as :func:`.search.search_words` finds them, joined by
    spaces, and FTS5's ascii tokenizer splits them there and nowhere else: it
    keeps every non-ASCII character, ASCII letters and digits, and (as
    tokenchars) the ASCII symbols, which are all a word is made of.
    PostgreSQL indexes the same words, so both find the same messages.

    The index keeps its own copy of those words (a regular FTS5 table, not
    external content): deleting a row then needs nothing but its rowid, so
    any SQLite client may delete messages, and the words never have to be
    found again, the same way, to be removed. Rows are added through
    ``chatkeep_search_words()``, which :func:`migrate` gives each connection.
    """
    _run(
        db,
        """
        DROP TRIGGER messages_fts_insert;
        DROP TRIGGER messages_fts_delete;
        DROP TRIGGER messages_fts_update;
        DROP TABLE messages_fts;
        CREATE VIRTUAL TABLE messages_fts USING fts5(words, tokenize = "ascii tokenchars '$+<=>^`|~'");
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, words) VALUES (new.seq, chatkeep_search_words(new.text))%
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            DELETE FROM messages_fts WHERE rowid = old.seq%
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
            UPDATE messages_fts SET words = chatkeep_search_words(new.text) WHERE rowid = new.seq%
        END;
        INSERT INTO messages_fts(rowid, words) SELECT seq, chatkeep_search_words(text) FROM messages
        """,
    )


def m007_calibrations(db: sqlite3.Connection) -> None:
    """Per server and model: how its token counts compare with chatkeep's, and the window it stated."""
    _run(
        db,
        """
        CREATE TABLE calibrations (
            server      TEXT NOT NULL,
            model       TEXT NOT NULL,
            samples     INTEGER NOT NULL DEFAULT 0,
            worst       REAL NOT NULL DEFAULT 1.0,
            mean        REAL NOT NULL DEFAULT 1.0,
            window      INTEGER,
            updated_at  TEXT NOT NULL,
            PRIMARY KEY (server, model)
        )
        """,
    )


def m008_attachments(db: sqlite3.Connection) -> None:
    """Images, audio and files kept once by content; a message lists where its payloads sat."""
    _run(
        db,
        """
        ALTER TABLE messages ADD COLUMN attachments TEXT;
        CREATE TABLE attachments (
            sha256      TEXT PRIMARY KEY,
            media_type  TEXT NOT NULL,
            size        INTEGER NOT NULL,
            data        BLOB NOT NULL,
            created_at  TEXT NOT NULL
        );
        CREATE TABLE attachment_uses (
            message_id  TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            sha256      TEXT NOT NULL REFERENCES attachments(sha256),
            PRIMARY KEY (message_id, sha256)
        ) WITHOUT ROWID;
        CREATE INDEX attachment_uses_sha256 ON attachment_uses(sha256)
        """,
    )


def m009_message_keys(db: sqlite3.Connection) -> None:
    """Keys that find a message again: a chained hash of the path to it, a response id (capture's threading)."""
    _run(
        db,
        """
        CREATE TABLE message_keys (
            key             TEXT PRIMARY KEY,
            message_id      TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            conversation_id TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX message_keys_message ON message_keys(message_id)
        """,
    )


def m010_organize(db: sqlite3.Connection) -> None:
    """Tags, pins and the archive: a conversation's tags in a table of their own, pins and archiving as times."""
    _run(
        db,
        """
        ALTER TABLE conversations ADD COLUMN pinned_at TEXT;
        ALTER TABLE conversations ADD COLUMN archived_at TEXT;
        CREATE TABLE conversation_tags (
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            tag             TEXT NOT NULL,
            PRIMARY KEY (conversation_id, tag)
        ) WITHOUT ROWID;
        CREATE INDEX conversation_tags_tag ON conversation_tags(tag, conversation_id)
        """,
    )


def m011_pinned_ancestors(db: sqlite3.Connection) -> None:
    """Each message names its nearest system or developer ancestor (see :mod:`.pinned`).

    A turn that reads only the newest messages finds the branch's pinned ones
    through this chain instead of walking the branch. Existing rows get theirs
    in one pass down every tree from its roots (UNION, not UNION ALL: a
    damaged file with a cycle of parents cannot loop).
    """
    _run(
        db,
        """
        ALTER TABLE messages ADD COLUMN pinned_ancestor TEXT;
        CREATE TEMP TABLE pinned_fill (id TEXT PRIMARY KEY, pinned TEXT NOT NULL);
        WITH RECURSIVE walk(id, role, pinned) AS (
            SELECT id, role, NULL FROM messages WHERE parent_id IS NULL
            UNION
            SELECT m.id, m.role, CASE WHEN walk.role IN ('developer', 'system') THEN walk.id ELSE walk.pinned END
            FROM walk JOIN messages m ON m.parent_id = walk.id
        )
        INSERT INTO pinned_fill (id, pinned) SELECT id, pinned FROM walk WHERE pinned IS NOT NULL;
        UPDATE messages SET pinned_ancestor = (SELECT pinned FROM pinned_fill WHERE pinned_fill.id = messages.id)
        WHERE id IN (SELECT id FROM pinned_fill);
        DROP TABLE pinned_fill
        """,
    )


def m012_pinned_and_archived_lists(db: sqlite3.Connection) -> None:
    """Find the pinned and the archived conversations, newest first, without reading every conversation.

    They are few among many: ``chatkeep serve``'s sidebar reads them on every page, which took a scan of
    all conversations (100 ms with 100,000 of them) before these indexes.
    """
    _run(
        db,
        """
        CREATE INDEX conversations_pinned ON conversations(updated_at DESC, id DESC) WHERE pinned_at IS NOT NULL;
        CREATE INDEX conversations_archived ON conversations(updated_at DESC, id DESC) WHERE archived_at IS NOT NULL
        """,
    )


def m013_summaries_out_of_the_search_index(db: sqlite3.Connection) -> None:
    """Leave summaries out of the search index, so a search finds its matches without reading their rows.

    Every search excluded summaries by joining each match to its message; with ten thousand
    matches (a word in one message in a hundred, over a million) that join was half the search.
    The index still keeps its own words: deleting a message needs none of chatkeep's functions.
    """
    _run(
        db,
        """
        DROP TRIGGER messages_fts_insert;
        DROP TRIGGER messages_fts_update;
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind <> 'summary' BEGIN
            INSERT INTO messages_fts(rowid, words) VALUES (new.seq, chatkeep_search_words(new.text))%
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, kind ON messages BEGIN
            DELETE FROM messages_fts WHERE rowid = old.seq%
            INSERT INTO messages_fts(rowid, words) SELECT new.seq, chatkeep_search_words(new.text)
                WHERE new.kind <> 'summary'%
        END;
        DELETE FROM messages_fts WHERE rowid IN (SELECT seq FROM messages WHERE kind = 'summary')
        """,
    )


def m014_search_backlog(db: sqlite3.Connection) -> None:
    """New messages wait in a backlog for the search index, which takes them in batches.

    Adding one message to FTS5 in its own transaction writes a new index
    segment on commit: 40% of an append's SQL (issue 17). The insert trigger
    now notes only the new row's ``seq``; :mod:`.sqlite_search_backlog` moves
    the backlog into the index in one statement, before anything reads the
    index and whenever it grows past a limit, and a search reads what still
    waits through a small index of its own. PostgreSQL's GIN ``fastupdate``
    pending list works the same way. Neither trigger calls a chatkeep
    function any more: any SQLite client may insert, change or delete
    messages, and the next search indexes them.
    """
    _run(
        db,
        """
        CREATE TABLE search_backlog (seq INTEGER PRIMARY KEY);
        DROP TRIGGER messages_fts_insert;
        DROP TRIGGER messages_fts_delete;
        DROP TRIGGER messages_fts_update;
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind <> 'summary' BEGIN
            INSERT INTO search_backlog (seq) VALUES (new.seq)%
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            DELETE FROM messages_fts WHERE rowid = old.seq%
            DELETE FROM search_backlog WHERE seq = old.seq%
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, kind ON messages BEGIN
            DELETE FROM messages_fts WHERE rowid = old.seq%
            DELETE FROM search_backlog WHERE seq = old.seq%
            INSERT INTO search_backlog (seq) SELECT new.seq WHERE new.kind <> 'summary'%
        END
        """,
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_initial,
    m002_kind_index,
    m003_source_keys,
    m004_full_text_search,
    m005_import_heads,
    m006_search_words,
    m007_calibrations,
    m008_attachments,
    m009_message_keys,
    m010_organize,
    m011_pinned_ancestors,
    m012_pinned_and_archived_lists,
    m013_summaries_out_of_the_search_index,
    m014_search_backlog,
]
SCHEMA_VERSION = len(MIGRATIONS)


# ASCII text goes to the index as it is when FTS5's "ascii" tokenizer (the table's) splits it exactly as
# search_words would: into runs of letters and digits, folded to lower case. It cannot when the text
# holds a NUL, one of the symbols search_words keeps as words (the tokenizer's tokenchars), or a run
# longer than MAX_WORD_CHARS (search_words cuts it). Splitting words in Python cost each append and
# import ~10 times more than this check, made in one C pass over the text's bytes.
_ASCII_CLASSES = bytes(
    ord("a") if chr(code).isalnum() else ord("!") if chr(code) in "$+<=>^`|~\x00" else ord(" ")
    for code in range(128)
) + b"!" * 128
_LONG_RUN = b"a" * (MAX_WORD_CHARS + 1)


def _indexed_words(text: str | None) -> str:
    """What the search index is given for ``text``: words FTS5 splits as :func:`.search.search_words` does."""
    if not text:
        return ""
    if text.isascii():
        classes = text.encode("ascii").translate(_ASCII_CLASSES)
        if b"!" not in classes and _LONG_RUN not in classes:
            return text
    return " ".join(search_words(text))


def add_functions(db: sqlite3.Connection) -> None:
    """Give ``db`` the SQL functions the schema's triggers call (each connection needs its own)."""
    db.create_function("chatkeep_search_words", 1, _indexed_words, deterministic=True)


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def schema_version(db: sqlite3.Connection) -> int:
    """The schema version the database is at (0: no chatkeep tables yet)."""
    return _version(db)


def migrate(db: sqlite3.Connection, *, source: str) -> None:
    """Bring the schema up to :data:`SCHEMA_VERSION` in one transaction.

    ``db`` must be in autocommit mode (``isolation_level=None``). Two processes
    opening a new file at once are serialized by ``BEGIN IMMEDIATE``; the second
    finds the work done. ``db`` is first given the functions the triggers call
    (:func:`add_functions`), which writing a message needs.
    """
    add_functions(db)
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
