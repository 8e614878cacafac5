"""The PostgreSQL store: the SQLite store's behaviour, shared by many processes and machines.

Open it with ``open_store("postgresql://user@host/dbname")`` or
``CHATKEEP_DB=postgresql://...``; it needs ``pip install 'chatkeep[postgres]'``.

Why it works this way:

- An append locks its conversation's row (``SELECT ... FOR UPDATE``) before
  reading the head, so appends from any number of processes to one
  conversation queue up and form one chain in one total order; appends to
  different conversations do not wait for each other.
- Message times come from the server's clock, read after that lock
  (``clock_timestamp()``), so machines with skewed clocks still agree on order.
- Durability is the server's: with ``synchronous_commit`` on (PostgreSQL's
  default) a returned append has been flushed to the write-ahead log on disk.
- JSON is kept as text, byte for byte (see :mod:`.postgres_schema`), and the
  tables live in the connection's current schema.
- Connections come from a pool, one per call (see :mod:`.postgres_pool`), so a
  store can be shared between threads, and ``AsyncChat`` can use it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import datetime, timezone
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConversationNotFound, HeadMoved, MessageNotFound, StoreError
from ..messages import MessageDict
from ..redact import Redactor
from .base import (
    ANY,
    HEAD,
    PARENT,
    ConversationRecord,
    Draft,
    MessageKind,
    MessageStatus,
    StoredMessage,
    check_conversation_id,
    check_status,
    dumps,
)
from .bulk import ImportConversation, ImportSummary, checked_first
from .bulk_values import json_text
from .calibrations import Calibration, observe
from .conversation import ConversationAccess
from .heads import NewRow, fork_details, fork_plan, head_moves, prepare, stored_rows, undo_plan
from .organize import POSTGRES, Dialect, Organizing
from .pinned import INHERITED_SQL, chain_pinned, describe_mismatch, mismatches_sql
from .postgres_bulk import blobs_on, import_into, keep_attachments, without_nul
from .postgres_pool import Connections, require_psycopg
from .postgres_schema import SCHEMA_VERSION, migrate, schema_version
from .postgres_search import search_in, tsvector_text
from .protocol import Feature, OpenLease
from .redaction import redact_drafts
from .rows import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    PREFIXED_MESSAGE_COLUMNS,
    body_from,
    branch_of,
    conversation_from_row,
    loads,
    message_from_row,
    parse_json,
)
from .search import SearchHit, SearchOrder, newest_first

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["PostgresStore"]

T = TypeVar("T")
logger = logging.getLogger(__name__)
#: An import adding at least this many messages refreshes the planner's statistics (see ``_refresh_statistics``).
_ANALYZE_AFTER = 1_000




def _utc(moment: datetime) -> datetime:
    # timestamptz comes back in the session's time zone; chatkeep's times are UTC.
    return moment.astimezone(timezone.utc)




def _require_conversation(conn: Connection[Any], conversation_id: str, *, lock: bool = False) -> str | None:
    """The conversation's head id; with ``lock`` its row stays locked until the transaction ends."""
    row = conn.execute(
        "SELECT head_id FROM conversations WHERE id = %s" + (" FOR UPDATE" if lock else ""), (conversation_id,)
    ).fetchone()
    if row is None:
        raise ConversationNotFound(conversation_id)
    return row[0]  # type: ignore[no-any-return]


def _require_message_in(conn: Connection[Any], message_id: str, conversation_id: str) -> None:
    row = conn.execute("SELECT conversation_id FROM messages WHERE id = %s", (message_id,)).fetchone()
    if row is None or row[0] != conversation_id:
        raise MessageNotFound(message_id, conversation_id)


# Walk parent links from the head: the last K messages cost K index lookups.
_WALK = f"""
    WITH RECURSIVE walk AS (
        SELECT {MESSAGE_COLUMNS}, 1 AS depth FROM messages WHERE id = {{start}}
        UNION ALL
        SELECT {PREFIXED_MESSAGE_COLUMNS}, walk.depth + 1
        FROM walk JOIN messages m ON m.id = walk.parent_id
        WHERE %(last)s::integer IS NULL OR walk.depth < %(last)s::integer
    )
    SELECT {MESSAGE_COLUMNS} FROM walk ORDER BY depth DESC
"""
_WALK_FROM_HEAD = _WALK.format(start="(SELECT head_id FROM conversations WHERE id = %(conversation)s)")
_WALK_FROM_MESSAGE = _WALK.format(start="%(head)s")
# The pinned messages before %(start)s (see .pinned), oldest first.
_PINNED_CHAIN = f"""
    WITH RECURSIVE chain AS (
        SELECT {MESSAGE_COLUMNS}, pinned_ancestor AS next, 1 AS depth FROM messages
        WHERE id = (SELECT pinned_ancestor FROM messages WHERE id = %(start)s)
        UNION ALL
        SELECT {PREFIXED_MESSAGE_COLUMNS}, m.pinned_ancestor, chain.depth + 1
        FROM chain JOIN messages m ON m.id = chain.next
    )
    SELECT {MESSAGE_COLUMNS} FROM chain ORDER BY depth DESC
"""


def _pipelined(conn: Connection[Any]) -> AbstractContextManager[Any]:
    """Pipeline mode, where libpq has it: the statements inside go to the server in one round trip."""
    from psycopg import Pipeline

    return conn.pipeline() if Pipeline.is_supported() else nullcontext()


def _walk(conn: Connection[Any], head_id: str | None, last: int | None) -> list[StoredMessage]:
    """The messages from the root (or the last ``last``) to ``head_id``, oldest first."""
    if head_id is None or (last is not None and last <= 0):
        return []
    rows = conn.execute(_WALK_FROM_MESSAGE, {"head": head_id, "last": last}).fetchall()
    return [message_from_row(row, _utc, lambda shas: blobs_on(conn, shas)) for row in rows]



def _read_message(conn: Connection[Any], message_id: str) -> StoredMessage:
    row = conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = %s", (message_id,)).fetchone()
    if row is None:
        raise MessageNotFound(message_id)
    return message_from_row(row, _utc, lambda shas: blobs_on(conn, shas))


def _move_head(conn: Connection[Any], conversation_id: str, head: str | None) -> None:
    conn.execute("UPDATE conversations SET head_id = %s, updated_at = clock_timestamp() WHERE id = %s",
                 (head, conversation_id))


# The columns of the rows an append inserts: (name in the statement, parameter, type). A chain of one
# (nearly every append) passes each as a scalar, a longer chain as arrays, one element per message.
_NEW_ROW = [
    ("id", "ids", "text"), ("before", "befores", "text"), ("kind", "kinds", "text"), ("role", "roles", "text"),
    ("body", "bodies", "text"), ("text", "texts", "text"), ("search", "searches", "text"),
    ("status", "statuses", "text"), ("model", "models", "text"), ("usage", "usages", "text"),
    ("latency_ms", "latencies", "float8"), ("finish_reason", "finishes", "text"), ("error", "errors", "text"),
    ("token_counts", "counts", "text"), ("metadata", "metas", "text"), ("attachments", "refs", "text"),
    ("pinned", "pinneds", "text"),
]


def _new_rows(*, single: bool) -> str:
    """The rows to insert, ``r``, numbered ``n`` from 1: from scalars (a chain of one) or from arrays.

    Scalars because psycopg dumps a list in Python, element by element: for
    one message its seventeen one-element arrays took 76 µs to adapt, the same
    values as scalars 5 µs.
    """
    names = ", ".join(name for name, _, _ in _NEW_ROW)
    if single:
        return f"(VALUES ({', '.join(f'%({param})s::{kind}' for _, param, kind in _NEW_ROW)}, 1)) AS r({names}, n)"
    arrays = ", ".join(f"%({param})s::{kind}[]" for _, param, kind in _NEW_ROW)
    return f"unnest({arrays}) WITH ORDINALITY AS r({names}, n)"


@cache
def _append_sql(*, head: bool, check_parent: bool, condition: str, single: bool) -> str:
    """One statement that appends a chain of messages and moves the head by compare-and-set.

    Locking the conversation's row first (``FOR UPDATE``) makes appends to one
    conversation take turns; the one that waited reads the head its
    predecessor left (PostgreSQL re-reads a row it waited for). ``condition``
    (see :func:`_condition`) decides, against that head, whether the head moves
    to the chain's last message. Doing it all in one statement keeps the row
    locked for the shortest time, and lets it travel in one round trip.

    The parent's pinned ancestor (see :mod:`.pinned`) is read from the
    parent's row, joined. A parent committed while the statement waited for
    the lock is not in the statement's snapshot (the join finds no row): then
    a volatile function reads it, which sees it. A function call on every
    append would cost a third of the statement.
    """
    parent = "c.head_id" if head else "%(parent)s::text"
    return f"""
        WITH conversation AS (
            SELECT id, head_id FROM conversations WHERE id = %(conversation)s FOR UPDATE
        ), added AS (
            INSERT INTO messages (id, conversation_id, parent_id, kind, role, body, text, search, created_at,
                                  status, model, usage, latency_ms, finish_reason, error, token_counts, metadata,
                                  attachments, pinned_ancestor)
            SELECT r.id, c.id, CASE WHEN r.n = 1 THEN {parent} ELSE r.before END, r.kind, r.role,
                   r.body, r.text, r.search::tsvector, clock_timestamp(), r.status, r.model, r.usage,
                   r.latency_ms, r.finish_reason, r.error, r.token_counts, r.metadata, r.attachments,
                   coalesce(r.pinned, CASE WHEN p.id IS NULL AND {parent} IS NOT NULL
                                           THEN chatkeep_pinned_below({parent}) ELSE {INHERITED_SQL} END)
            FROM conversation c LEFT JOIN messages p ON p.id = {parent} CROSS JOIN {_new_rows(single=single)}
            {"WHERE p.conversation_id = c.id" if check_parent else ""}
            ORDER BY r.n
            RETURNING id, created_at
        ), moved AS (
            UPDATE conversations SET updated_at = (SELECT max(created_at) FROM added),
                   head_id = CASE WHEN {condition} THEN %(last)s ELSE conversations.head_id END
            FROM conversation c WHERE conversations.id = c.id AND EXISTS (SELECT 1 FROM added)
            RETURNING {parent} AS parent, {condition} AS moves
        )
        SELECT added.id, added.created_at, moved.parent, moved.moves FROM added CROSS JOIN moved
    """


def _condition(expect_head: str | None, *, head: bool, move_head: bool) -> str:
    """The compare-and-set of an append, in SQL over the locked conversation row ``c``."""
    if not move_head:
        return "FALSE"
    if expect_head == ANY or (expect_head == PARENT and head):
        return "TRUE"
    if expect_head == PARENT:
        return "c.head_id IS NOT DISTINCT FROM %(parent)s::text"
    return "c.head_id IS NOT DISTINCT FROM %(expected)s::text"


def _row_values(row: NewRow, before: str | None, pinned: str | None) -> tuple[Any, ...]:
    """One new row's values, in ``_NEW_ROW``'s order (``pinned``: its nearest pinned row within the chain)."""
    d = row.draft
    text = without_nul(row.text)  # the text prepare() found, as PostgreSQL can store it
    return (
        row.id, before, d.kind, row.role, json_text(row.stored), text, tsvector_text(text), d.status, d.model,
        None if d.usage is None else dumps(dict(d.usage)), d.latency_ms, d.finish_reason,
        None if d.error is None else d.error.replace("\x00", "\ufffd"),  # a diagnostic: NUL cannot be stored
        None if d.token_counts is None else dumps(dict(d.token_counts)),
        dumps(dict(d.metadata)) if d.metadata else "{}", row.refs_json, pinned,
    )


_PARAMS = [param for _, param, _ in _NEW_ROW]
_ERROR = _PARAMS.index("errors")


def _append_statement(
    conversation_id: str, rows: list[NewRow], parent_id: str | None, expect_head: str | None, move_head: bool
) -> tuple[str, dict[str, Any], list[str | None]]:
    """The append's SQL, its parameters, and the errors as stored (without NUL)."""
    head = parent_id == HEAD
    single = len(rows) == 1
    sql = _append_sql(head=head, check_parent=parent_id not in (HEAD, None),
                      condition=_condition(expect_head, head=head, move_head=move_head), single=single)
    ids = [row.id for row in rows]
    # within the chain, each row's nearest pinned predecessor (the rows are not visible to the statement itself)
    pinneds = chain_pinned([row.role for row in rows], ids)
    values = [_row_values(row, before, pinned) for row, before, pinned in zip(rows, [None, *ids[:-1]], pinneds)]
    params: dict[str, Any] = {
        "conversation": conversation_id, "parent": None if head else parent_id,
        "expected": None if expect_head in (ANY, PARENT) else expect_head, "last": ids[-1],
    }
    params.update(zip(_PARAMS, values[0] if single else [list(column) for column in zip(*values)]))
    return sql, params, [row[_ERROR] for row in values]


def _why_not_appended(conn: Connection[Any], conversation_id: str, parent_id: str | None) -> None:
    """Raise the reason an append inserted nothing: no such conversation, or no such parent in it."""
    _require_conversation(conn, conversation_id)
    raise MessageNotFound(str(parent_id), conversation_id)


def _appended(
    conversation_id: str, rows: list[NewRow], found: list[Any], errors: list[str | None]
) -> list[StoredMessage]:
    """The stored records of the rows the append statement returned (id, time, parent, whether the head moved)."""
    times = {row[0]: _utc(row[1]) for row in found}
    stored = stored_rows(conversation_id, rows, found[0][2], [times[row.id] for row in rows], bool(found[0][3]))
    return [m if m.error == errors[i] else replace(m, error=errors[i]) for i, m in enumerate(stored)]


class PostgresStore(ConversationAccess, Organizing):
    """A :class:`~chatkeep.store.Store` on a PostgreSQL database (12 or newer).

    ``pool_size`` caps the connections this store opens, ``timeout`` is how long
    a call waits for one, ``connect_timeout`` how long a connection attempt may take.
    """

    _dialect = POSTGRES
    #: Redacts every message before it is stored (the ``redact_on_write`` setting); ``None``: off.
    redactor: Redactor | None = None

    def __init__(
        self, url: str, *, pool_size: int = 10, timeout: float = 30.0, connect_timeout: float = 10.0
    ) -> None:
        require_psycopg()
        self._connections = Connections(
            url, pool_size=pool_size, timeout=timeout, connect_timeout=connect_timeout
        )
        #: Where the store is, without the password.
        self.url = self._connections.server
        conn = self._connections.connect()
        try:
            migrate(conn, source=self.url)
        finally:
            conn.close()
        self._connections.open()

    # -- plumbing ---------------------------------------------------------------

    def _read(self, operation: Callable[[Connection[Any]], T]) -> T:
        return self._connections.read(operation)

    def _write(self, operation: Callable[[Connection[Any]], T], *, replayable: bool = True) -> T:
        return self._connections.write(operation, replayable=replayable)

    def _one(self, sql: str, params: tuple[Any, ...] | Mapping[str, Any] = ()) -> Any:
        return self._read(lambda conn: conn.execute(sql, params).fetchone())

    def _all(self, sql: str, params: tuple[Any, ...] | Mapping[str, Any] = ()) -> list[Any]:
        return self._read(lambda conn: conn.execute(sql, params).fetchall())

    def _organize(self, operation: Callable[[Connection[Any]], T]) -> T:
        return self._write(operation)

    def _survey(self, operation: Callable[[Connection[Any]], T]) -> T:
        return self._read(operation)

    def _survey_matching(self, operation: Callable[[Connection[Any], Dialect], T]) -> T:
        return self._read(lambda conn: operation(conn, POSTGRES))  # the index is kept in each write

    def close(self) -> None:
        """Close every pooled connection; the store cannot be used afterwards."""
        self._connections.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    def check_integrity(self) -> list[str]:
        """Look for what the constraints cannot rule out; an empty list means sound.

        Heads and parents must stay inside their own conversation, every parent
        must exist, and the schema must be the one this chatkeep writes.
        """
        def run(conn: Connection[Any]) -> list[str]:
            problems = []
            version = schema_version(conn)
            if version != SCHEMA_VERSION:
                problems.append(f"schema version {version}, expected {SCHEMA_VERSION}")
            for sql, describe in _INTEGRITY_CHECKS:
                problems += [describe(*row) for row in conn.execute(sql)]
            return problems

        return self._read(run)

    # -- conversations ----------------------------------------------------------

    def create_conversation(
        self,
        conversation_id: str | None = None,
        *,
        title: str | None = None,
        owner: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ConversationRecord:
        """Create a conversation; raises ``StoreError`` when the id is taken."""
        from psycopg import errors

        conversation_id = check_conversation_id(conversation_id)

        def insert(conn: Connection[Any]) -> ConversationRecord:
            try:
                row = conn.execute(
                    "INSERT INTO conversations (id, title, owner, created_at, updated_at, metadata)"
                    " VALUES (%s, %s, %s, clock_timestamp(), clock_timestamp(), %s)"
                    f" RETURNING {CONVERSATION_COLUMNS}",
                    (conversation_id, title, owner, dumps(dict(metadata or {}))),
                ).fetchone()
            except errors.UniqueViolation as exc:
                raise StoreError(f"a conversation with id {conversation_id!r} already exists") from exc
            assert row is not None
            return conversation_from_row(row, _utc)

        return self._write(insert)

    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ConversationRecord:
        row = self._write(lambda conn: conn.execute(
            "UPDATE conversations SET title = coalesce(%s, title), metadata = coalesce(%s, metadata),"
            f" updated_at = clock_timestamp() WHERE id = %s RETURNING {CONVERSATION_COLUMNS}, {POSTGRES.extras}",
            (title, None if metadata is None else dumps(dict(metadata)), conversation_id),
        ).fetchone())
        if row is None:
            raise ConversationNotFound(conversation_id)
        return conversation_from_row(row, _utc)

    def delete_conversation(self, conversation_id: str) -> None:
        def delete(conn: Connection[Any]) -> None:
            # Clearing the head first (which also locks the row) keeps the
            # head's reference from holding on to a message being deleted.
            if conn.execute(
                "UPDATE conversations SET head_id = NULL WHERE id = %s RETURNING id", (conversation_id,)
            ).fetchone() is None:
                raise ConversationNotFound(conversation_id)
            used = [row[0] for row in conn.execute(
                "SELECT DISTINCT u.sha256 FROM attachment_uses u JOIN messages m ON m.id = u.message_id"
                " WHERE m.conversation_id = %s", (conversation_id,))]
            conn.execute("DELETE FROM messages WHERE conversation_id = %s", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id = %s", (conversation_id,))
            if used:  # an attachment nothing else uses goes with the last message that used it
                conn.execute("DELETE FROM attachments a WHERE a.sha256 = ANY(%s) AND NOT EXISTS"
                             " (SELECT 1 FROM attachment_uses u WHERE u.sha256 = a.sha256)", (used,))

        self._write(delete)

    # -- messages ---------------------------------------------------------------

    def append_many(
        self,
        conversation_id: str,
        drafts: Sequence[Draft],
        *,
        parent_id: str | None = HEAD,
        expect_head: str | None = PARENT,
        move_head: bool = True,
    ) -> list[StoredMessage]:
        """Store a chain of messages in one statement; the head moves by compare-and-set.

        The statement is the whole write (see :meth:`.Connections.write_statement`)
        unless a message brings attachments or keys, which need more statements.
        """
        rows = prepare(redact_drafts(drafts, self.redactor))
        if not rows:
            return []
        if any(row.blobs or row.draft.keys for row in rows):
            return self._write(lambda conn: self._insert_chain(conn, conversation_id, rows, parent_id, expect_head,
                                                              move_head))
        sql, params, errors = _append_statement(conversation_id, rows, parent_id, expect_head, move_head)
        found = self._connections.write_statement(sql, params)
        if not found:
            self._read(lambda conn: _why_not_appended(conn, conversation_id, parent_id))
        return _appended(conversation_id, rows, found, errors)

    @staticmethod
    def _insert_chain(
        conn: Connection[Any], conversation_id: str, rows: list[NewRow], parent_id: str | None,
        expect_head: str | None, move_head: bool,
    ) -> list[StoredMessage]:
        sql, params, errors = _append_statement(conversation_id, rows, parent_id, expect_head, move_head)
        found = conn.execute(sql, params).fetchall()
        if not found:
            _why_not_appended(conn, conversation_id, parent_id)
        if any(row.blobs for row in rows):
            keep_attachments(conn, [(row.id, row.blobs) for row in rows if row.blobs])
        keyed = [(key, row.id, conversation_id) for row in rows for key in row.draft.keys]
        if keyed:
            conn.cursor().executemany(
                "INSERT INTO message_keys (key, message_id, conversation_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (key) DO UPDATE SET message_id = excluded.message_id,"
                " conversation_id = excluded.conversation_id", keyed)
        return _appended(conversation_id, rows, found, errors)

    def edit(self, conversation_id: str, message_id: str, message: Mapping[str, Any]) -> StoredMessage:
        """Store ``message`` as a sibling of ``message_id`` and move the head to it, in one transaction."""
        rows = prepare(redact_drafts([Draft(message)], self.redactor))

        def edit(conn: Connection[Any]) -> StoredMessage:
            _require_conversation(conn, conversation_id, lock=True)
            found = conn.execute(
                "SELECT parent_id FROM messages WHERE id = %s AND conversation_id = %s", (message_id, conversation_id)
            ).fetchone()
            if found is None:
                raise MessageNotFound(message_id, conversation_id)
            return self._insert_chain(conn, conversation_id, rows, found[0], ANY, True)[0]

        return self._write(edit)

    def undo(self, conversation_id: str) -> StoredMessage | None:
        """Move the head to just before the last user message, in one transaction; return the new head."""
        def undo(conn: Connection[Any]) -> StoredMessage | None:
            head = _require_conversation(conn, conversation_id, lock=True)
            moves, new_head = undo_plan(lambda size: _walk(conn, head, size), lambda mid: _read_message(conn, mid))
            if moves:
                _move_head(conn, conversation_id, new_head.id if new_head else None)
            return new_head

        return self._write(undo)

    def pop(self, conversation_id: str) -> StoredMessage | None:
        """Move the head back one message, in one transaction, and return the message left behind."""
        def pop(conn: Connection[Any]) -> StoredMessage | None:
            head = _require_conversation(conn, conversation_id, lock=True)
            if head is None:
                return None
            popped = _read_message(conn, head)
            _move_head(conn, conversation_id, popped.parent_id)
            return popped

        return self._write(pop)

    def fork_conversation(
        self, conversation_id: str, *, at: str | None = None, new_id: str | None = None, title: str | None = None
    ) -> ConversationRecord:
        """Copy the branch from the root to ``at`` (default: the head) into a new conversation, in one transaction."""
        from psycopg import errors

        target = check_conversation_id(new_id)

        def fork(conn: Connection[Any]) -> ConversationRecord:
            row = conn.execute(f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = %s FOR SHARE",
                               (conversation_id,)).fetchone()
            if row is None:
                raise ConversationNotFound(conversation_id)
            source = conversation_from_row(row, _utc)
            if at is not None:
                _require_message_in(conn, at, conversation_id)
            start = at or source.head_id
            copies = fork_plan(_walk(conn, start, None) if start else [])
            new_title, metadata = fork_details(source.title, source.metadata, conversation_id,
                                               copies[-1].source.id if copies else None, title)
            try:
                conn.execute(
                    "INSERT INTO conversations (id, title, owner, created_at, updated_at, metadata)"
                    " VALUES (%s, %s, %s, clock_timestamp(), clock_timestamp(), %s)",
                    (target, new_title, source.owner, dumps(metadata)),
                )
            except errors.UniqueViolation as exc:
                raise StoreError(f"a conversation with id {target!r} already exists") from exc
            conn.cursor().executemany(
                "INSERT INTO messages (id, conversation_id, parent_id, kind, role, body, text, search, created_at,"
                " status, model, usage, latency_ms, finish_reason, error, token_counts, metadata, attachments,"
                " pinned_ancestor)"
                " SELECT %s, %s, %s, kind, role, body, text, search, created_at, status, model, usage, latency_ms,"
                " finish_reason, error, token_counts, %s, attachments, chatkeep_pinned_below(%s)"
                " FROM messages WHERE id = %s",
                [(c.id, target, c.parent_id, dumps(c.metadata), c.parent_id, c.source.id) for c in copies],
            )
            conn.cursor().executemany("INSERT INTO attachment_uses (message_id, sha256)"
                                      " SELECT %s, sha256 FROM attachment_uses WHERE message_id = %s",
                                      [(c.id, c.source.id) for c in copies])
            done = conn.execute(
                f"UPDATE conversations SET head_id = %s WHERE id = %s RETURNING {CONVERSATION_COLUMNS}, {POSTGRES.extras}",
                (copies[-1].id if copies else None, target),
            ).fetchone()
            assert done is not None
            return conversation_from_row(done, _utc)

        return self._write(fork)

    def find_keys(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        rows = self._all("SELECT key, conversation_id, message_id FROM message_keys WHERE key = ANY(%s)", (list(keys),))
        return {row[0]: (row[1], row[2]) for row in rows}

    def _blobs(self, shas: list[str]) -> dict[str, bytes]:
        return self._read(lambda conn: blobs_on(conn, shas))

    def attachment_stats(self) -> dict[str, int]:
        """How many attachments the store keeps, and their bytes (each counted once)."""
        row = self._one("SELECT count(*), coalesce(sum(size), 0) FROM attachments")
        return {"attachments": int(row[0]), "attachment_bytes": int(row[1])}

    def calibration(self, server: str, model: str) -> Calibration:
        row = self._one('SELECT samples, worst, mean, "window", updated_at FROM calibrations'
                        " WHERE server = %s AND model = %s", (server, model))
        if row is None:
            return Calibration(server, model)
        return Calibration(server, model, row[0], row[1], row[2], row[3], _utc(row[4]))

    def record_calibration(
        self, server: str, model: str, counted: int, reported: int, *, window: int | None = None
    ) -> Calibration:
        """Add one observation in one transaction (the row is locked, so no observation is lost)."""
        def record(conn: Connection[Any]) -> Calibration:
            conn.execute("INSERT INTO calibrations (server, model, updated_at) VALUES (%s, %s, clock_timestamp())"
                         " ON CONFLICT DO NOTHING", (server, model))
            row = conn.execute('SELECT samples, worst, mean, "window" FROM calibrations'
                               " WHERE server = %s AND model = %s FOR UPDATE", (server, model)).fetchone()
            assert row is not None
            updated = observe(Calibration(server, model, row[0], row[1], row[2], row[3]), counted, reported,
                              window=window)
            stamp = conn.execute(
                'UPDATE calibrations SET samples = %s, worst = %s, mean = %s, "window" = %s,'
                " updated_at = clock_timestamp() WHERE server = %s AND model = %s RETURNING updated_at",
                (updated.samples, updated.worst, updated.mean, updated.window, server, model),
            ).fetchone()
            return replace(updated, updated_at=_utc(stamp[0]) if stamp else None)

        return self._write(record)

    def require(self, feature: Feature) -> None:
        """A PostgreSQL store holds every branch and conversation: nothing is refused."""

    def lease(self, conversation_id: str) -> OpenLease:
        """No lock: a turn that loses a race keeps its messages on a branch (see ``Store.lease``)."""
        return OpenLease(self)

    def update_message(
        self,
        message_id: str,
        *,
        status: MessageStatus | None = None,
        error: str | None = None,
        token_counts: Mapping[str, int] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> StoredMessage:
        changes: dict[str, Any] = {}
        if status is not None:
            check_status(status)
            changes["status"] = status
            changes["error"] = error
        elif error is not None:
            changes["error"] = error
        if changes.get("error") is not None:
            changes["error"] = changes["error"].replace("\x00", "\ufffd")
        if token_counts is not None:
            changes["token_counts"] = dumps(dict(token_counts))
        if metadata is not None:
            changes["metadata"] = dumps(dict(metadata))
        if not changes:
            return self.get_message(message_id)
        assignments = ", ".join(f"{column} = %s" for column in changes)
        row = self._write(lambda conn: conn.execute(
            f"UPDATE messages SET {assignments} WHERE id = %s RETURNING {MESSAGE_COLUMNS}",
            (*changes.values(), message_id),
        ).fetchone())
        if row is None:
            raise MessageNotFound(message_id)
        return message_from_row(row, _utc, self._blobs)

    def get_message(self, message_id: str) -> StoredMessage:
        row = self._one(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = %s", (message_id,))
        if row is None:
            raise MessageNotFound(message_id)
        return message_from_row(row, _utc, self._blobs)

    def path(
        self, conversation_id: str, *, last: int | None = None, head_id: str | None = None
    ) -> list[StoredMessage]:
        def walk(conn: Connection[Any]) -> list[Any]:
            if head_id is not None and (last is not None and last <= 0):
                _require_message_in(conn, head_id, conversation_id)
                return []
            if head_id is None:
                if last is not None and last <= 0:
                    _require_conversation(conn, conversation_id)
                    return []
                rows = conn.execute(_WALK_FROM_HEAD, {"conversation": conversation_id, "last": last}).fetchall()
                if not rows:  # an empty conversation, or none at all
                    _require_conversation(conn, conversation_id)
                return rows
            rows = conn.execute(_WALK_FROM_MESSAGE, {"head": head_id, "last": last}).fetchall()
            if not rows or rows[-1][1] != conversation_id:
                raise MessageNotFound(head_id, conversation_id)
            return rows

        return [message_from_row(row, _utc, self._blobs) for row in self._read(walk)]

    def pinned_path(self, conversation_id: str, message_id: str) -> list[StoredMessage]:
        """The system and developer messages before ``message_id`` on its branch: a short chain, not a walk."""
        def chain(conn: Connection[Any]) -> list[Any]:
            _require_message_in(conn, message_id, conversation_id)
            return conn.execute(_PINNED_CHAIN, {"start": message_id}).fetchall()

        return [message_from_row(row, _utc, self._blobs) for row in self._read(chain)]

    def branch_bodies(self, conversation_id: str) -> list[MessageDict]:
        """Only the message dicts of the current branch: what ``conversation.messages`` needs.

        As on SQLite, one scan of the conversation's rows (in the order the
        index on conversation and seq keeps) and a walk in memory beat the
        recursive query's index lookup per message; the head and the rows are
        asked for in one round trip.
        """
        def scan(conn: Connection[Any]) -> tuple[Any, list[Any]]:
            with _pipelined(conn):
                head = conn.execute("SELECT head_id FROM conversations WHERE id = %s", (conversation_id,))
                rows = conn.execute("SELECT id, parent_id, body, attachments FROM messages"
                                    " WHERE conversation_id = %s ORDER BY seq", (conversation_id,))
                found = head.fetchone()
            return found, rows.fetchall()

        found, rows = self._read(scan)
        if found is None:
            raise ConversationNotFound(conversation_id)
        return [body_from(row[2], row[3], self._blobs) if row[3] else parse_json(row[2])
                for row in branch_of(rows, found[0])]

    def find_messages(self, conversation_id: str, *, kind: MessageKind) -> list[StoredMessage]:
        rows = self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s AND kind = %s ORDER BY seq",
            (conversation_id, kind),
        )
        return [message_from_row(row, _utc, self._blobs) for row in rows]

    def save_token_counts(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        if not counts:
            return

        def merge(conn: Connection[Any]) -> None:
            # Locked in id order, so two processes saving overlapping counts cannot deadlock.
            found = dict(conn.execute(
                "SELECT id, token_counts FROM messages WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (list(counts),)
            ).fetchall())
            for message_id in counts:
                if message_id not in found:
                    raise MessageNotFound(message_id)
            updates = [
                (dumps({**(loads(found[message_id]) or {}), **per_encoding}), message_id)
                for message_id, per_encoding in counts.items()
            ]
            conn.cursor().executemany("UPDATE messages SET token_counts = %s WHERE id = %s", updates)

        self._write(merge)

    def import_conversations(
        self, conversations: Iterable[ImportConversation], *, progress: Callable[[ImportSummary], None] | None = None
    ) -> ImportSummary:
        """Import whole conversations in one transaction: all of them, or (on any error) none.

        Conversations and messages with source keys seen before are skipped, so
        importing the same file twice adds nothing.
        """
        checked = checked_first(conversations)
        first = next(checked, None)  # parse and check it all before the transaction starts
        items = [] if first is None else itertools.chain([first], checked)
        summary = self._write(lambda conn: import_into(conn, items, progress), replayable=False)
        if summary.messages_added >= _ANALYZE_AFTER:
            self._refresh_statistics()
        return summary

    def _refresh_statistics(self) -> None:
        """ANALYZE the tables an import filled, as PostgreSQL's manual advises after a bulk load.

        Until autovacuum gets to it (a minute or more), the planner believes the
        tables as small as before, and a plan it cached then (a prepared walk of
        the branch, say) scans every message at each step: reading the last 20
        of a 100,000-message conversation took a second instead of a millisecond.
        The import is already committed, so a failure here is only logged.
        """
        try:
            self._write(lambda conn: conn.execute("ANALYZE messages, conversations"))
        except StoreError as exc:
            logger.warning("after the import, ANALYZE failed (reads may be slow until autovacuum runs): %s", exc)

    def search(
        self,
        query: str,
        *,
        conversation_id: str | None = None,
        role: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        owner: str | None = None,
        tags: Sequence[str] = (),
        limit: int = 20,
        offset: int = 0,
        order: SearchOrder = "relevance",
    ) -> list[SearchHit]:
        """Messages matching ``query``, best first (``order="newest"``: the latest saved first); any text
        is a valid query.

        Words match as on SQLite (:mod:`chatkeep.store.search`: ``cafe`` finds
        ``Café``, ``☕`` and ``東京`` are found); when more than ``MAX_RANKED``
        (10,000) messages match, the best are the best of the latest. A
        message's words are indexed while its tsvector has room (1 MB: about
        100,000 different words), and phrases are matched among its first
        16,383 words.
        """
        newest = newest_first(order)
        return self._read(lambda conn: search_in(
            conn, query, columns=PREFIXED_MESSAGE_COLUMNS, to_message=lambda row: message_from_row(row, _utc, self._blobs),
            conversation_id=conversation_id, role=role, model=model, since=since, until=until,
            owner=owner, tags=tags, limit=limit, offset=offset, newest=newest,
        ))

    def usage_by_model(self, conversation_id: str | None = None) -> dict[str, dict[str, int]]:
        """Replies and prompt/completion tokens by model, over one conversation or the store.

        A reply is an assistant chat message, or the Responses API output item
        that carries its response's usage (input/output tokens count as
        prompt/completion tokens). A token field counts where it is a JSON
        number, as on SQLite.
        """
        def tokens(field: str, alias: str) -> str:
            return (f"CASE WHEN json_typeof(u.usage -> '{field}') = 'number' THEN (u.usage ->> '{field}')::numeric"
                    f" WHEN json_typeof(u.usage -> '{alias}') = 'number' THEN (u.usage ->> '{alias}')::numeric END")

        where = "m.role = 'assistant' AND (m.kind = 'chat' OR (m.kind = 'response_item' AND m.usage IS NOT NULL))"
        where += " AND m.conversation_id = %s" if conversation_id else ""
        # PostgreSQL's JSON functions refuse the escapes \u0000 and lone surrogates (a reply's
        # usage may hold them in a string): each becomes an escaped space, which keeps the JSON
        # valid (an escaped backslash before "u0000" stays one) and leaves every number alone.
        usage = ("(CASE WHEN strpos(m.usage, '\\u') > 0 THEN regexp_replace(m.usage,"
                 " '\\\\u(0000|[dD][89abAB][0-9a-fA-F]{2})', '\\\\u0020', 'g') ELSE m.usage END)::json")
        rows = self._all(
            f"SELECT coalesce(m.model, 'unknown') COLLATE \"C\" AS name, count(*),"
            f" sum({tokens('prompt_tokens', 'input_tokens')}), sum({tokens('completion_tokens', 'output_tokens')})"
            f" FROM messages m, LATERAL (SELECT {usage} AS usage) u WHERE {where} GROUP BY name ORDER BY name",
            (conversation_id,) if conversation_id else (),
        )
        return {r[0]: {"replies": r[1], "prompt_tokens": int(r[2] or 0), "completion_tokens": int(r[3] or 0)}
                for r in rows}

    def set_head(self, conversation_id: str, message_id: str | None, *, expect_head: str | None = ANY) -> None:
        def move(conn: Connection[Any]) -> None:
            head = _require_conversation(conn, conversation_id, lock=True)
            if message_id is not None:
                _require_message_in(conn, message_id, conversation_id)
            if not head_moves(head, expect_head):
                raise HeadMoved(conversation_id, expect_head, head)
            _move_head(conn, conversation_id, message_id)

        self._write(move)

    def children(self, message_id: str) -> list[StoredMessage]:
        rows = self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE parent_id = %s ORDER BY seq", (message_id,)
        )
        return [message_from_row(row, _utc, self._blobs) for row in rows]

    def count_conversations(self) -> int:
        return int(self._one("SELECT count(*) FROM conversations")[0])

    def count_messages(self, conversation_id: str | None = None) -> int:
        if conversation_id is None:
            return int(self._one("SELECT count(*) FROM messages")[0])

        def count(conn: Connection[Any]) -> int:
            _require_conversation(conn, conversation_id)
            row = conn.execute(
                "SELECT count(*) FROM messages WHERE conversation_id = %s", (conversation_id,)
            ).fetchone()
            return int(row[0]) if row else 0

        return self._read(count)


# What the foreign keys cannot promise: each query finds the rows that break one rule.
_INTEGRITY_CHECKS: list[tuple[str, Callable[..., str]]] = [
    (
        ("SELECT c.id, c.head_id, m.conversation_id FROM conversations c"
         " JOIN messages m ON m.id = c.head_id WHERE m.conversation_id <> c.id LIMIT 100"),
        lambda c, h, o: f"conversation {c!r}: head {h!r} belongs to conversation {o!r}",
    ),
    (
        ("SELECT m.id, m.conversation_id, p.conversation_id FROM messages m"
         " JOIN messages p ON p.id = m.parent_id WHERE p.conversation_id <> m.conversation_id LIMIT 100"),
        lambda m, c, o: f"message {m!r} in conversation {c!r}: its parent is in conversation {o!r}",
    ),
    (
        ("SELECT m.id, m.parent_id FROM messages m LEFT JOIN messages p ON p.id = m.parent_id"
         " WHERE m.parent_id IS NOT NULL AND p.id IS NULL LIMIT 100"),
        lambda m, p: f"message {m!r}: parent {p!r} does not exist",
    ),
    (
        ("SELECT m.id, m.conversation_id FROM messages m"
         " LEFT JOIN conversations c ON c.id = m.conversation_id WHERE c.id IS NULL LIMIT 100"),
        lambda m, c: f"message {m!r}: conversation {c!r} does not exist",
    ),
    (
        ("SELECT c.id, c.head_id FROM conversations c LEFT JOIN messages m ON m.id = c.head_id"
         " WHERE c.head_id IS NOT NULL AND m.id IS NULL LIMIT 100"),
        lambda c, h: f"conversation {c!r}: head {h!r} does not exist",
    ),
    (
        "SELECT id, kind FROM messages WHERE kind NOT IN ('chat', 'summary', 'response_item') LIMIT 100",
        lambda m, k: f"message {m!r}: unknown kind {k!r}",
    ),
    (mismatches_sql("IS DISTINCT FROM"), describe_mismatch),
]
