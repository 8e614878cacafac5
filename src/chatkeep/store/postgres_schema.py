"""The PostgreSQL schema as numbered migrations, recorded in the ``chatkeep_schema`` table.

Each migration is a small function run inside the migration transaction. Add
new ones at the end; never edit a released one. Tables are created in the
connection's current schema (the first one on ``search_path``), so a database
can hold chatkeep beside other applications: put
``?options=-csearch_path%3Dchatkeep`` on the URL to give it its own schema.

JSON (message bodies, usage, metadata, token counts) is stored as ``text``,
not ``jsonb``: jsonb reorders keys, drops duplicate keys, and refuses
``\\u0000`` and lone surrogates, while chatkeep promises every message back
exactly as it was stored (exports are compared byte for byte).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import MigrationError
from .postgres_search import tsvector_text

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version"]

#: Any fixed number: the first half of the advisory lock's key (the second is the schema).
_LOCK_CLASS = 0x63_6B_70  # "ckp"


def _run(conn: Connection[Any], script: str) -> None:
    conn.execute(script)  # several statements in one call: allowed when there are no parameters


def m001_initial(conn: Connection[Any]) -> None:
    """Conversations, and messages forming a tree inside each conversation."""
    _run(
        conn,
        """
        CREATE TABLE conversations (
            id          text PRIMARY KEY,
            title       text,
            owner       text,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            metadata    text NOT NULL DEFAULT '{}',
            head_id     text,
            source_key  text
        );
        CREATE INDEX conversations_updated ON conversations (updated_at DESC, id DESC);
        CREATE INDEX conversations_owner ON conversations (owner, updated_at DESC, id DESC);
        CREATE UNIQUE INDEX conversations_source ON conversations (source_key) WHERE source_key IS NOT NULL;

        -- seq keeps insertion order (appends to one conversation are serialized by
        -- its row lock, so there it is also the order of the chain), while id is
        -- the public, time-sortable identifier.
        CREATE TABLE messages (
            seq             bigint GENERATED ALWAYS AS IDENTITY,
            id              text PRIMARY KEY,
            conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            parent_id       text REFERENCES messages (id),
            kind            text NOT NULL DEFAULT 'chat',
            role            text,
            body            text NOT NULL,
            text            text NOT NULL DEFAULT '',
            created_at      timestamptz NOT NULL,
            status          text NOT NULL DEFAULT 'complete'
                            CHECK (status IN ('complete', 'incomplete', 'error')),
            model           text,
            usage           text,
            latency_ms      double precision,
            finish_reason   text,
            error           text,
            token_counts    text,
            metadata        text NOT NULL DEFAULT '{}',
            source_key      text
        );
        CREATE INDEX messages_conversation ON messages (conversation_id, seq);
        CREATE INDEX messages_parent ON messages (parent_id, seq);
        CREATE INDEX messages_kind ON messages (conversation_id, kind, seq) WHERE kind <> 'chat';
        CREATE UNIQUE INDEX messages_source ON messages (conversation_id, source_key)
            WHERE source_key IS NOT NULL;

        -- Added after messages exist: the two tables refer to each other. The index
        -- keeps deleting a message from scanning every conversation for its head.
        ALTER TABLE conversations ADD CONSTRAINT conversations_head_fkey
            FOREIGN KEY (head_id) REFERENCES messages (id) ON DELETE SET NULL;
        CREATE INDEX conversations_head ON conversations (head_id)
        """,
    )


def m002_full_text_search(conn: Connection[Any]) -> None:
    """The words of each message's text as a tsvector, with a GIN index.

    chatkeep fills it when it stores a message, from the words it finds itself
    (see :mod:`.postgres_search`); a message's text never changes afterwards.
    """
    _run(
        conn,
        """
        ALTER TABLE messages ADD COLUMN search tsvector NOT NULL DEFAULT ''::tsvector;
        CREATE INDEX messages_search ON messages USING gin (search)
        """,
    )


def m003_import_heads(conn: Connection[Any]) -> None:
    """Remember where an import left each conversation's head, so a re-import never rewinds it.

    Conversations imported before this knew nothing of it: their head counts as
    the import's only while it is an imported message (nobody has added turns).
    """
    _run(
        conn,
        """
        ALTER TABLE conversations ADD COLUMN import_head text;
        UPDATE conversations SET import_head = head_id
        WHERE source_key IS NOT NULL AND head_id IN (SELECT id FROM messages WHERE source_key IS NOT NULL)
        """,
    )


def m004_search_words(conn: Connection[Any]) -> None:
    """Index every message again with the words chatkeep now finds: emoji and symbols, CJK a character at a time.

    The words are found in Python (:func:`.postgres_search.tsvector_text`), a
    thousand messages at a time, and written back through a temporary table,
    only where they changed: a message of plain words, without symbols, keeps
    its row and its place in the GIN index. ``messages_seq`` lets a search for
    a word in nearly every message read the latest matches first and stop.
    """
    _run(conn, "CREATE TEMPORARY TABLE search_rebuild (id text NOT NULL, search tsvector NOT NULL) ON COMMIT DROP")
    with conn.cursor(name="chatkeep_search_rebuild") as messages:
        messages.execute("SELECT id, text FROM messages")
        while batch := messages.fetchmany(1_000):
            with conn.cursor().copy("COPY search_rebuild (id, search) FROM STDIN") as copy:
                for message_id, text in batch:
                    copy.write_row((message_id, tsvector_text(text)))
    _run(conn, """
        ANALYZE search_rebuild;
        UPDATE messages m SET search = r.search FROM search_rebuild r WHERE r.id = m.id AND r.search <> m.search;
        CREATE INDEX messages_seq ON messages (seq)
    """)


def m005_calibrations(conn: Connection[Any]) -> None:
    """Per server and model: how its token counts compare with chatkeep's, and the window it stated."""
    _run(
        conn,
        """
        CREATE TABLE calibrations (
            server      text NOT NULL,
            model       text NOT NULL,
            samples     integer NOT NULL DEFAULT 0,
            worst       double precision NOT NULL DEFAULT 1.0,
            mean        double precision NOT NULL DEFAULT 1.0,
            "window"    integer,
            updated_at  timestamptz NOT NULL,
            PRIMARY KEY (server, model)
        )
        """,
    )


def m006_attachments(conn: Connection[Any]) -> None:
    """Images, audio and files kept once by content; a message lists where its payloads sat."""
    _run(
        conn,
        """
        ALTER TABLE messages ADD COLUMN attachments text;
        CREATE TABLE attachments (
            sha256      text PRIMARY KEY,
            media_type  text NOT NULL,
            size        bigint NOT NULL,
            data        bytea NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE TABLE attachment_uses (
            message_id  text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            sha256      text NOT NULL REFERENCES attachments (sha256),
            PRIMARY KEY (message_id, sha256)
        );
        CREATE INDEX attachment_uses_sha256 ON attachment_uses (sha256)
        """,
    )


def m007_message_keys(conn: Connection[Any]) -> None:
    """Keys that find a message again: a chained hash of the path to it, a response id (capture's threading)."""
    _run(
        conn,
        """
        CREATE TABLE message_keys (
            key             text PRIMARY KEY,
            message_id      text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            conversation_id text NOT NULL
        );
        CREATE INDEX message_keys_message ON message_keys (message_id)
        """,
    )


def m008_organize(conn: Connection[Any]) -> None:
    """Tags, pins and the archive: a conversation's tags in a table of their own, pins and archiving as times."""
    _run(
        conn,
        """
        ALTER TABLE conversations ADD COLUMN pinned_at timestamptz;
        ALTER TABLE conversations ADD COLUMN archived_at timestamptz;
        CREATE TABLE conversation_tags (
            conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            tag             text NOT NULL,
            PRIMARY KEY (conversation_id, tag)
        );
        CREATE INDEX conversation_tags_tag ON conversation_tags (tag, conversation_id)
        """,
    )


def m009_pinned_ancestors(conn: Connection[Any]) -> None:
    """Each message names its nearest system or developer ancestor (see :mod:`.pinned`).

    A turn that reads only the newest messages finds the branch's pinned ones
    through this chain instead of walking the branch. Existing rows get theirs
    in one pass down every tree from its roots (UNION: a cycle cannot loop).
    """
    _run(
        conn,
        """
        ALTER TABLE messages ADD COLUMN pinned_ancestor text;
        -- VOLATILE: a fresh snapshot, so an append sees a parent committed while it waited for its lock.
        CREATE FUNCTION chatkeep_pinned_below(parent text) RETURNS text LANGUAGE sql VOLATILE AS $$
            SELECT CASE WHEN role IN ('developer', 'system') THEN id ELSE pinned_ancestor END
            FROM messages WHERE id = parent
        $$;
        WITH RECURSIVE walk(id, role, pinned) AS (
            SELECT id, role, NULL::text FROM messages WHERE parent_id IS NULL
            UNION
            SELECT m.id, m.role, CASE WHEN walk.role IN ('developer', 'system') THEN walk.id ELSE walk.pinned END
            FROM walk JOIN messages m ON m.parent_id = walk.id
        )
        UPDATE messages SET pinned_ancestor = walk.pinned FROM walk
        WHERE walk.id = messages.id AND walk.pinned IS NOT NULL
        """,
    )


def m010_pinned_and_archived_lists(conn: Connection[Any]) -> None:
    """Find the pinned and the archived conversations, newest first, without reading every conversation."""
    _run(
        conn,
        """
        CREATE INDEX conversations_pinned ON conversations (updated_at DESC, id DESC) WHERE pinned_at IS NOT NULL;
        CREATE INDEX conversations_archived ON conversations (updated_at DESC, id DESC) WHERE archived_at IS NOT NULL
        """,
    )


MIGRATIONS: list[Callable[[Connection[Any]], None]] = [
    m001_initial,
    m002_full_text_search,
    m003_import_heads,
    m004_search_words,
    m005_calibrations,
    m006_attachments,
    m007_message_keys,
    m008_organize,
    m009_pinned_ancestors,
    m010_pinned_and_archived_lists,
]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: Connection[Any]) -> int:
    """The version recorded in the current schema (0 when chatkeep has never run there)."""
    row = conn.execute("SELECT to_regclass('chatkeep_schema') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM chatkeep_schema").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: Connection[Any], *, source: str) -> None:
    """Bring the schema up to :data:`SCHEMA_VERSION` in one transaction.

    ``conn`` is in autocommit mode. Processes starting at once are serialized
    by a transaction-scoped advisory lock on the schema: the first migrates, the
    others wait for it and then find the work done.
    """
    import psycopg

    if schema_version(conn) == SCHEMA_VERSION:
        return
    try:
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(coalesce(current_schema(), '')))", (_LOCK_CLASS,)
            )
            _run(conn, """
                CREATE TABLE IF NOT EXISTS chatkeep_schema (
                    version     integer PRIMARY KEY,
                    name        text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
            """)
            version = schema_version(conn)
            if version > SCHEMA_VERSION:
                raise MigrationError(
                    f"{source}: database schema version {version} is newer than this chatkeep "
                    f"understands ({SCHEMA_VERSION}); upgrade chatkeep"
                )
            for number in range(version, SCHEMA_VERSION):
                MIGRATIONS[number](conn)
                conn.execute(
                    "INSERT INTO chatkeep_schema (version, name) VALUES (%s, %s)",
                    (number + 1, MIGRATIONS[number].__name__),
                )
    except psycopg.Error as exc:
        raise MigrationError(_explain(conn, source, exc)) from exc


def _explain(conn: Connection[Any], source: str, exc: BaseException) -> str:
    """Why chatkeep's tables could not be created, and what to do about it."""
    import psycopg

    schema = None
    if not conn.closed:
        try:
            row = conn.execute("SELECT current_schema()").fetchone()
            schema = row[0] if row else None
        except psycopg.Error:
            pass
    where = f"schema {schema!r}" if schema else "the database (no schema on search_path exists)"
    reason = str(exc).strip().splitlines()[0]
    hint = ""
    if isinstance(exc, psycopg.errors.DuplicateTable):
        hint = ("; another application's table has that name: give chatkeep its own schema "
                "with ?options=-csearch_path%3Dchatkeep on the URL (after CREATE SCHEMA chatkeep)")
    elif isinstance(exc, psycopg.errors.InsufficientPrivilege):
        hint = "; grant this user CREATE on the schema, or point search_path at a schema it owns"
    elif isinstance(exc, psycopg.errors.InvalidSchemaName) or schema is None:
        hint = "; create the schema named in search_path first"
    return f"{source}: cannot create chatkeep's tables in {where}: {reason}{hint}"
