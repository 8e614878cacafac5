"""The default store: one SQLite file, safe for many processes at once.

Why these settings:

- WAL lets readers work while one writer commits, and makes a commit one
  append to the log instead of a rewrite.
- ``synchronous=NORMAL`` (the default here): a returned append survives the
  process being killed; ``synchronous=FULL`` also survives power loss, at one
  fsync per commit. Pass ``durability="full"`` for it.
- ``BEGIN IMMEDIATE`` takes the write lock up front, so two writers never
  deadlock upgrading a read lock; the busy timeout makes the second one wait.
- Foreign keys keep messages inside existing conversations.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

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
    format_time,
    parse_time,
    utcnow,
)
from .bulk import ImportConversation, ImportSummary, checked_first
from .bulk_values import json_text
from .calibrations import Calibration, observe
from .conversation import ConversationAccess
from .encryption import is_db_error, is_encrypted, open_connection
from .files import touch_private_file
from .heads import (
    NewRow,
    expected_head,
    fork_details,
    fork_plan,
    head_moves,
    prepare,
    resolve_parent,
    stored_rows,
    undo_plan,
)
from .organize import SQLITE, SQLITE_WAITING, Dialect, Organizing
from .pinned import describe_mismatch, mismatches_sql, pinned_of
from .protocol import Feature, OpenLease
from .redaction import redact_drafts
from .rows import (
    CONVERSATION_COLUMNS,
    ID_SEPARATOR,
    MESSAGE_COLUMNS,
    PREFIXED_MESSAGE_COLUMNS,
    body_from,
    branch_of,
    branch_positions,
    conversation_from_row,
    loads,
    message_from_row,
    parse_json,
)
from .search import SearchHit, SearchOrder, newest_first
from .sqlite_bulk import import_into, keep_attachments, search_in
from .sqlite_files import ErrorGuard, cannot_write, connect, is_busy, refuse_foreign, translate
from .sqlite_schema import SCHEMA_VERSION, add_functions, migrate, schema_version
from .sqlite_search_backlog import BACKLOG_LIMIT, backlog_start, index_backlog, index_waiting
from .sqlite_transaction import WriteTransaction

__all__ = ["SQLiteStore"]

Durability = Literal["normal", "full"]
T = TypeVar("T")


def _insert_values(conversation_id: str, row: NewRow, parent: str | None, created_at: str) -> tuple[Any, ...]:
    d = row.draft
    usage, token_counts, metadata = d.usage, d.token_counts, d.metadata
    return (
        row.id, conversation_id, parent, d.kind, row.role, json_text(row.stored), row.text, created_at,
        d.status, d.model, None if usage is None else dumps(dict(usage)), d.latency_ms, d.finish_reason,
        d.error, None if token_counts is None else dumps(dict(token_counts)),
        dumps(dict(metadata)) if metadata else "{}", row.refs_json,
    )



# The last value, the nearest pinned ancestor (see .pinned), is read from the parent row (?3).
_INSERT_MESSAGE = (
    "INSERT INTO messages (id, conversation_id, parent_id, kind, role, body, text, created_at, status, model, usage,"
    " latency_ms, finish_reason, error, token_counts, metadata, attachments, pinned_ancestor)"
    f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {pinned_of('?3')})"
)


# The pinned messages before :start, newest first in the walk, oldest first in the result (see .pinned).
_PINNED_CHAIN = f"""
    WITH RECURSIVE chain(step_seq, step_next, depth) AS (
        SELECT NULL, pinned_ancestor, 0 FROM messages WHERE id = :start
        UNION ALL
        SELECT m.seq, m.pinned_ancestor, chain.depth + 1 FROM chain JOIN messages m ON m.id = chain.step_next
    )
    SELECT {MESSAGE_COLUMNS} FROM chain JOIN messages ON messages.seq = chain.step_seq
    ORDER BY chain.depth DESC
"""

# An append reads the head it writes under, and how far back the search index's backlog starts.
_HEAD_AND_BACKLOG = "SELECT head_id, (SELECT min(seq) FROM search_backlog) FROM conversations WHERE id = ?"


def _missing(conversation_id: str) -> Any:
    raise ConversationNotFound(conversation_id)


# A conversation's rows in one scan, as three joined strings (see branch_bodies). The
# three lists come from one pass, so they line up whatever order SQLite feeds them in.
_BRANCH_SCAN = (
    f"SELECT count(*), group_concat(id, '{ID_SEPARATOR}'),"
    f" group_concat(coalesce(parent_id, ''), '{ID_SEPARATOR}'), '[' || group_concat(body, ',') || ']',"
    " count(attachments)"
    " FROM (SELECT id, parent_id, body, attachments FROM messages WHERE conversation_id = ? ORDER BY seq)"
)


class SQLiteStore(ConversationAccess, Organizing):
    """A :class:`~chatkeep.store.Store` on one SQLite file (or ``":memory:"``)."""

    _dialect = SQLITE
    #: Redacts every message before it is stored (the ``redact_on_write`` setting); ``None``: off.
    redactor: Redactor | None = None

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        durability: Durability = "normal",
        busy_timeout: float = 60.0,
        read_only: bool | None = None,
        key: str | None = None,
    ) -> None:
        if durability not in ("normal", "full"):
            raise StoreError(f"durability: expected 'normal' or 'full', got {durability!r}")
        self.file = str(path)
        self.url = f"sqlite:///{self.file}"
        self.durability = durability
        self.busy_timeout = busy_timeout
        self._lock = ErrorGuard(self.file, busy_timeout)
        #: Why the store was opened read-only (``None``: it can be written).
        self.read_only: str | None = None
        if self.file != ":memory:":
            reason = cannot_write(Path(self.file))
            self.read_only = "it was opened read-only" if read_only else reason if read_only is None else None
            self._create_if_missing()
        db = None
        try:
            # A key (given, $CHATKEEP_KEY or the keyring) opens an encrypted file through SQLCipher (store/encryption.py).
            db = open_connection(self.file, key=key, read_only=self.read_only is not None, busy_timeout=busy_timeout,
                                 plain=connect)
            #: Whether the file is encrypted (SQLCipher).
            self.encrypted = is_encrypted(db)
            refuse_foreign(db, self.file)  # before anything below writes to the file
            self._db = db
            self._configure(busy_timeout)
            if self.read_only is None:
                migrate(db, source=self.file)
            elif schema_version(db) != SCHEMA_VERSION:
                raise StoreError(f"{self.file}: the database needs upgrading to this chatkeep's schema, "
                                 f"but it is read-only ({self.read_only}); open it once with write access")
            else:
                add_functions(db)  # a search indexes what waits in the backlog (sqlite_search_backlog)
        except BaseException as exc:
            if db is not None:
                db.close()  # a failed open keeps no file descriptor
            if is_db_error(exc):
                raise translate(self.file, exc, busy_timeout=busy_timeout) from exc
            raise

    def _create_if_missing(self) -> None:
        file = Path(self.file)
        try:
            if file.exists():
                return
        except OSError as exc:
            raise StoreError(f"{file}: cannot be reached ({exc.strerror})") from exc
        if self.read_only is not None:
            raise StoreError(f"{file}: cannot create the database here ({self.read_only}); choose a folder you "
                             "can write (--db or $CHATKEEP_DB)")
        try:
            touch_private_file(file)
        except OSError as exc:
            raise StoreError(f"{file}: cannot create the database here ({exc.strerror}); choose a folder you "
                             "can write (--db or $CHATKEEP_DB)") from exc

    def _configure(self, busy_timeout: float) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if self.file != ":memory:" and self.read_only is None:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.file}: cannot switch the database to WAL mode ({mode})")
        db.execute(f"PRAGMA synchronous = {self.durability.upper()}")
        db.execute("PRAGMA foreign_keys = ON")

    # -- plumbing ---------------------------------------------------------------

    def _write(self) -> WriteTransaction:
        """One write transaction: all of it commits, or none of it (errors name the file)."""
        return WriteTransaction(self._db, self._lock, self.file, self.read_only)

    def _one(self, sql: str, params: tuple[Any, ...] | Mapping[str, Any] = ()) -> Any:
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...] | Mapping[str, Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _organize(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        with self._write() as db:
            return operation(db)

    def _survey(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return operation(self._db)

    def _index_read(self, operation: Callable[[sqlite3.Connection, bool], T]) -> T:
        """Run ``operation(db, waiting)``, a read of the search index, with every message searchable.

        A store that can write first moves the backlog into the index, if the
        write lock is free: a search never waits behind another writer (a long
        import, say). Then, in one read transaction, what still waits (a
        read-only store's backlog, one another writer held on to, or rows added
        meanwhile) goes into the connection's temporary index, and ``waiting``
        says whether it holds any.
        """
        with self._lock:
            db = self._db
            if self.read_only is None and backlog_start(db) is not None:
                self._index_backlog_unless_busy(db)
            db.execute("BEGIN")
            try:
                return operation(db, index_waiting(db))
            finally:
                db.execute("COMMIT")  # it only read (its temporary index is the connection's own)

    def _index_backlog_unless_busy(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA busy_timeout = 0")
        try:
            with self._write() as db:
                index_backlog(db)
        except StoreError as exc:
            if exc.__cause__ is None or not is_busy(exc.__cause__):
                raise  # else another writer holds the lock: the read indexes the backlog for itself
        finally:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    def _survey_matching(self, operation: Callable[[sqlite3.Connection, Dialect], T]) -> T:
        return self._index_read(lambda db, waiting: operation(db, SQLITE_WAITING if waiting else SQLITE))

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.file!r})"

    def check_integrity(self) -> list[str]:
        """Run SQLite's integrity and foreign-key checks; an empty list means sound."""
        try:
            problems = [str(row[0]) for row in self._all("PRAGMA integrity_check") if row[0] != "ok"]
            problems += [f"foreign key: {tuple(row)}" for row in self._all("PRAGMA foreign_key_check")]
            problems += [describe_mismatch(*row) for row in self._all(mismatches_sql("IS NOT"))]
        except StoreError as exc:  # too damaged to check at all
            return [str(exc)]
        return problems

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
        conversation_id = check_conversation_id(conversation_id)
        now = format_time(utcnow())
        with self._write() as db:
            try:
                db.execute(
                    "INSERT INTO conversations (id, title, owner, created_at, updated_at, metadata)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (conversation_id, title, owner, now, now, dumps(dict(metadata or {}))),
                )
            except db.IntegrityError as exc:
                raise StoreError(f"a conversation with id {conversation_id!r} already exists") from exc
        return self.get_conversation(conversation_id)

    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ConversationRecord:
        with self._write() as db:
            self._require_conversation(db, conversation_id)
            if title is not None:
                db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))
            if metadata is not None:
                db.execute(
                    "UPDATE conversations SET metadata = ? WHERE id = ?",
                    (dumps(dict(metadata)), conversation_id),
                )
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?",
                (format_time(utcnow()), conversation_id),
            )
        return self.get_conversation(conversation_id)

    def delete_conversation(self, conversation_id: str) -> None:
        with self._write() as db:
            self._require_conversation(db, conversation_id)
            # Clear the head first so the cascade does not fight the head's reference.
            db.execute("UPDATE conversations SET head_id = NULL WHERE id = ?", (conversation_id,))
            used = [row[0] for row in db.execute(
                "SELECT DISTINCT u.sha256 FROM attachment_uses u JOIN messages m ON m.id = u.message_id"
                " WHERE m.conversation_id = ?", (conversation_id,))]
            db.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            # An attachment nothing else uses goes with the last message that used it.
            db.executemany("DELETE FROM attachments WHERE sha256 = ? AND NOT EXISTS"
                           " (SELECT 1 FROM attachment_uses WHERE sha256 = ?)", [(sha, sha) for sha in used])

    @staticmethod
    def _require_conversation(db: sqlite3.Connection, conversation_id: str) -> str | None:
        row = db.execute("SELECT head_id FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise ConversationNotFound(conversation_id)
        return row[0]  # type: ignore[no-any-return]

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
        """Store a chain of messages in one transaction; the head moves by compare-and-set."""
        rows = prepare(redact_drafts(drafts, self.redactor))
        if not rows:
            return []
        with self._write() as db:
            return self._insert_chain(db, conversation_id, rows, parent_id, expect_head, move_head)

    def _insert_chain(
        self, db: sqlite3.Connection, conversation_id: str, rows: Sequence[NewRow], parent_id: str | None,
        expect_head: str | None, move_head: bool,
    ) -> list[StoredMessage]:
        found = db.execute(_HEAD_AND_BACKLOG, (conversation_id,)).fetchone()
        if found is None:
            raise ConversationNotFound(conversation_id)
        head, backlog_from = found
        parent = resolve_parent(parent_id, head)
        if parent is not None and parent_id != HEAD:
            self._require_message_in(db, parent, conversation_id)
        moved = head_moves(head, expected_head(expect_head, parent), move_head=move_head)
        times, values, before = [], [], parent
        for row in rows:  # each row under the one before it, the first under the parent
            times.append(moment := utcnow())
            created_at = format_time(moment)
            values.append(_insert_values(conversation_id, row, before, created_at))
            before = row.id
        if len(values) == 1:
            last_seq = db.execute(_INSERT_MESSAGE, values[0]).lastrowid  # an append: no batch machinery
        else:
            db.executemany(_INSERT_MESSAGE, values)
            last_seq = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        if backlog_from is not None and last_seq is not None and last_seq - backlog_from >= BACKLOG_LIMIT:
            index_backlog(db)  # one append in BACKLOG_LIMIT pays for indexing them together
        uses = [(row.id, row.blobs) for row in rows if row.blobs]
        if uses:
            keep_attachments(db, uses)
        updated_at = created_at  # the last message's time
        keyed = [(key, row.id, conversation_id) for row in rows for key in row.draft.keys]
        if keyed:
            db.executemany("INSERT INTO message_keys (key, message_id, conversation_id) VALUES (?, ?, ?)"
                           " ON CONFLICT (key) DO UPDATE SET message_id = excluded.message_id,"
                           " conversation_id = excluded.conversation_id", keyed)
        if moved:
            db.execute("UPDATE conversations SET updated_at = ?, head_id = ? WHERE id = ?",
                       (updated_at, rows[-1].id, conversation_id))
        else:
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (updated_at, conversation_id))
        return stored_rows(conversation_id, rows, parent, times, moved)

    def edit(self, conversation_id: str, message_id: str, message: Mapping[str, Any]) -> StoredMessage:
        """Store ``message`` as a sibling of ``message_id`` and move the head to it, in one transaction."""
        rows = prepare(redact_drafts([Draft(message)], self.redactor))
        with self._write() as db:
            found = db.execute(
                "SELECT parent_id FROM messages WHERE id = ? AND conversation_id = ?", (message_id, conversation_id)
            ).fetchone()
            if found is None:
                self._require_conversation(db, conversation_id)
                raise MessageNotFound(message_id, conversation_id)
            return self._insert_chain(db, conversation_id, rows, found[0], ANY, True)[0]

    def undo(self, conversation_id: str) -> StoredMessage | None:
        """Move the head to just before the last user message, in one transaction; return the new head."""
        with self._write() as db:
            head = self._require_conversation(db, conversation_id)
            moves, new_head = undo_plan(
                lambda size: [message_from_row(r, parse_time, self._blobs) for r in self._walk_rows(db, head, size)],
                self.get_message,
            )
            if moves:
                self._move_head(db, conversation_id, new_head.id if new_head else None)
            return new_head

    def pop(self, conversation_id: str) -> StoredMessage | None:
        """Move the head back one message, in one transaction, and return the message left behind."""
        with self._write() as db:
            head = self._require_conversation(db, conversation_id)
            if head is None:
                return None
            popped = message_from_row(db.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?",
                                                 (head,)).fetchone(), parse_time, self._blobs)
            self._move_head(db, conversation_id, popped.parent_id)
            return popped

    @staticmethod
    def _move_head(db: sqlite3.Connection, conversation_id: str, head: str | None) -> None:
        db.execute("UPDATE conversations SET head_id = ?, updated_at = ? WHERE id = ?",
                   (head, format_time(utcnow()), conversation_id))

    def fork_conversation(
        self, conversation_id: str, *, at: str | None = None, new_id: str | None = None, title: str | None = None
    ) -> ConversationRecord:
        """Copy the branch from the root to ``at`` (default: the head) into a new conversation, in one transaction."""
        target = check_conversation_id(new_id)
        with self._write() as db:
            source = conversation_from_row(db.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone() or _missing(conversation_id), parse_time)
            if at is not None:
                self._require_message_in(db, at, conversation_id)
            start = at or source.head_id
            path = [message_from_row(r, parse_time, self._blobs) for r in self._walk_rows(db, start, None)] if start else []
            copies = fork_plan(path)
            new_title, metadata = fork_details(source.title, source.metadata, conversation_id,
                                               path[-1].id if path else None, title)
            now = format_time(utcnow())
            try:
                db.execute(
                    "INSERT INTO conversations (id, title, owner, created_at, updated_at, metadata)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (target, new_title, source.owner, now, now, dumps(metadata)),
                )
            except db.IntegrityError as exc:
                raise StoreError(f"a conversation with id {target!r} already exists") from exc
            db.executemany(
                "INSERT INTO messages (id, conversation_id, parent_id, kind, role, body, text, created_at, status,"
                " model, usage, latency_ms, finish_reason, error, token_counts, metadata, attachments, pinned_ancestor)"
                " SELECT ?1, ?2, ?3, kind, role, body, text, created_at, status, model, usage, latency_ms,"
                f" finish_reason, error, token_counts, ?4, attachments, {pinned_of('?3')} FROM messages WHERE id = ?5",
                [(c.id, target, c.parent_id, dumps(c.metadata), c.source.id) for c in copies],
            )
            db.executemany("INSERT INTO attachment_uses (message_id, sha256)"
                           " SELECT ?, sha256 FROM attachment_uses WHERE message_id = ?",
                           [(c.id, c.source.id) for c in copies])
            db.execute("UPDATE conversations SET head_id = ? WHERE id = ?", (copies[-1].id if copies else None, target))
        return self.get_conversation(target)

    def find_keys(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        for start in range(0, len(keys), 500):  # under SQLite's parameter limit
            chunk = list(keys[start:start + 500])
            marks = ", ".join("?" * len(chunk))
            for key, conversation_id, message_id in self._all(
                    f"SELECT key, conversation_id, message_id FROM message_keys WHERE key IN ({marks})", tuple(chunk)):
                found[key] = (conversation_id, message_id)
        return found

    def _blobs(self, shas: list[str]) -> dict[str, bytes]:
        """Attachments' bytes by SHA-256 (only a message that has some asks)."""
        marks = ", ".join("?" * len(shas))
        return {row[0]: bytes(row[1]) for row in self._all(
            f"SELECT sha256, data FROM attachments WHERE sha256 IN ({marks})", tuple(shas))}

    def attachment_stats(self) -> dict[str, int]:
        """How many attachments the store keeps, and their bytes (each counted once)."""
        row = self._one("SELECT count(*), coalesce(sum(size), 0) FROM attachments")
        return {"attachments": int(row[0]), "attachment_bytes": int(row[1])}

    def calibration(self, server: str, model: str) -> Calibration:
        row = self._one("SELECT samples, worst, mean, window, updated_at FROM calibrations"
                        " WHERE server = ? AND model = ?", (server, model))
        if row is None:
            return Calibration(server, model)
        return Calibration(server, model, row[0], row[1], row[2], row[3], parse_time(row[4]))

    def record_calibration(
        self, server: str, model: str, counted: int, reported: int, *, window: int | None = None
    ) -> Calibration:
        """Add one observation in one transaction (two processes never lose each other's)."""
        if self.read_only is not None:
            return observe(self.calibration(server, model), counted, reported, window=window)
        with self._write():
            now = utcnow()
            updated = replace(observe(self.calibration(server, model), counted, reported, window=window),
                              updated_at=now)
            self._db.execute(
                "INSERT INTO calibrations (server, model, samples, worst, mean, window, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (server, model) DO UPDATE SET samples = excluded.samples,"
                " worst = excluded.worst, mean = excluded.mean, window = excluded.window,"
                " updated_at = excluded.updated_at",
                (server, model, updated.samples, updated.worst, updated.mean, updated.window, format_time(now)),
            )
        return updated

    def require(self, feature: Feature) -> None:
        """A SQLite store holds every branch and conversation: nothing is refused."""

    def lease(self, conversation_id: str) -> OpenLease:
        """No lock: a turn that loses a race keeps its messages on a branch (see ``Store.lease``)."""
        return OpenLease(self)

    @staticmethod
    def _require_message_in(db: sqlite3.Connection, message_id: str, conversation_id: str) -> None:
        row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None or row[0] != conversation_id:
            raise MessageNotFound(message_id, conversation_id)

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
        if token_counts is not None:
            changes["token_counts"] = dumps(dict(token_counts))
        if metadata is not None:
            changes["metadata"] = dumps(dict(metadata))
        with self._write() as db:
            if db.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is None:
                raise MessageNotFound(message_id)
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                db.execute(
                    f"UPDATE messages SET {assignments} WHERE id = ?", (*changes.values(), message_id)
                )
        return self.get_message(message_id)

    def get_message(self, message_id: str) -> StoredMessage:
        row = self._one(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,))
        if row is None:
            raise MessageNotFound(message_id)
        return message_from_row(row, parse_time, self._blobs)

    def path(
        self, conversation_id: str, *, last: int | None = None, head_id: str | None = None
    ) -> list[StoredMessage]:
        rows = self._walk(MESSAGE_COLUMNS, conversation_id, last, head_id)
        return [message_from_row(row, parse_time, self._blobs) for row in rows]

    def pinned_path(self, conversation_id: str, message_id: str) -> list[StoredMessage]:
        """The system and developer messages before ``message_id`` on its branch: a short chain, not a walk."""
        with self._lock:
            self._require_message_in(self._db, message_id, conversation_id)
            rows = self._db.execute(_PINNED_CHAIN, {"start": message_id}).fetchall()
        return [message_from_row(row, parse_time, self._blobs) for row in rows]

    def branch_bodies(self, conversation_id: str) -> list[MessageDict]:
        """Only the message dicts of the current branch: what ``conversation.messages`` needs.

        One scan of the conversation's rows and a walk in memory beat the recursive
        query's index lookups when the whole branch is wanted. SQLite joins the
        scan's ids, parents and bodies into three strings, so Python neither builds
        a row per message nor decodes bodies one by one: the bodies are one JSON
        array. Messages with attachments, and what the strings cannot carry, are
        read row by row.
        """
        with self._lock:
            head = self._require_conversation(self._db, conversation_id)
            if head is None:
                return []
            try:
                count, ids, parents, bodies, with_files = self._db.execute(
                    _BRANCH_SCAN, (conversation_id,)).fetchone()
            except sqlite3.DataError:  # the joined strings outgrow SQLite's longest string
                count = with_files = 0
            if count and not with_files:
                positions = branch_positions(ids, parents, count, head)
                try:
                    decoded = parse_json(bodies) if positions is not None else None
                except RecursionError:  # a body nested to the limit, one level deeper in the array
                    decoded = None
                if positions is not None and isinstance(decoded, list) and len(decoded) == count:
                    return decoded if isinstance(positions, range) else [decoded[at] for at in positions]
            rows = self._db.execute(
                "SELECT id, parent_id, body, attachments FROM messages WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
        return [body_from(row[2], row[3], self._blobs) if row[3] else parse_json(row[2])
                for row in branch_of(rows, head)]

    def _walk(self, columns: str, conversation_id: str, last: int | None, head_id: str | None) -> list[Any]:
        with self._lock:
            if head_id is None:
                head_id = self._require_conversation(self._db, conversation_id)
                if head_id is None:
                    return []
            else:
                self._require_message_in(self._db, head_id, conversation_id)
            return self._walk_rows(self._db, head_id, last, columns)

    @staticmethod
    def _walk_rows(db: sqlite3.Connection, head_id: str | None, last: int | None,
                   columns: str = MESSAGE_COLUMNS) -> list[Any]:
        """The rows from the root (or the last ``last``) to ``head_id``, oldest first."""
        if head_id is None or (last is not None and last <= 0):
            return []
        # Walk parent links from the head: the last K messages cost K index lookups.
        return db.execute(
            f"""
            WITH RECURSIVE walk(step_seq, step_parent, depth) AS (
                SELECT seq, parent_id, 1 FROM messages WHERE id = :head
                UNION ALL
                SELECT m.seq, m.parent_id, walk.depth + 1
                FROM walk JOIN messages m ON m.id = walk.step_parent
                WHERE :last IS NULL OR walk.depth < :last
            )
            SELECT {columns} FROM walk JOIN messages ON messages.seq = walk.step_seq
            ORDER BY walk.depth DESC
            """,
            {"head": head_id, "last": last},
        ).fetchall()

    def find_messages(self, conversation_id: str, *, kind: MessageKind) -> list[StoredMessage]:
        rows = self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND kind = ? ORDER BY seq",
            (conversation_id, kind),
        )
        return [message_from_row(row, parse_time, self._blobs) for row in rows]

    def save_token_counts(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        if not counts:
            return
        with self._write() as db:
            for message_id, per_encoding in counts.items():
                row = db.execute("SELECT token_counts FROM messages WHERE id = ?", (message_id,)).fetchone()
                if row is None:
                    raise MessageNotFound(message_id)
                merged = {**(loads(row[0]) or {}), **per_encoding}
                db.execute("UPDATE messages SET token_counts = ? WHERE id = ?", (dumps(merged), message_id))

    def import_conversations(
        self, conversations: Iterable[ImportConversation], *, progress: Callable[[ImportSummary], None] | None = None
    ) -> ImportSummary:
        """Import whole conversations in one transaction: all of them, or (on any error) none.

        Conversations and messages with source keys seen before are skipped, so
        importing the same file twice adds nothing.
        """
        checked = checked_first(conversations)
        first = next(checked, None)  # parse and check it all before taking the write lock
        with self._write() as db:
            return import_into(db, [] if first is None else itertools.chain([first], checked), progress)

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

        Words match as on PostgreSQL (:mod:`chatkeep.store.search`: ``cafe``
        finds ``Café``, ``☕`` and ``東京`` are found); when more than
        ``MAX_RANKED`` (10,000) messages match, the best are the best of the latest.
        """
        newest = newest_first(order)

        def search(db: sqlite3.Connection, waiting: bool) -> list[SearchHit]:
            return search_in(
                db, query, columns=PREFIXED_MESSAGE_COLUMNS,
                to_message=lambda row: message_from_row(row, parse_time, self._blobs),
                conversation_id=conversation_id, role=role, model=model, since=since, until=until,
                owner=owner, tags=tags, limit=limit, offset=offset, newest=newest, waiting=waiting,
            )

        return self._index_read(search)

    def usage_by_model(self, conversation_id: str | None = None) -> dict[str, dict[str, int]]:
        """Replies and prompt/completion tokens by model, over one conversation or the store.

        A reply is an assistant chat message, or the Responses API output item
        that carries its response's usage (input/output tokens count as
        prompt/completion tokens). A token field counts where it is a JSON
        number; PostgreSQL counts the same rows the same way.
        """
        def tokens(field: str, alias: str) -> str:
            return (f"CASE WHEN json_type(usage, '$.{field}') IN ('integer', 'real') THEN json_extract(usage, '$.{field}')"
                    f" WHEN json_type(usage, '$.{alias}') IN ('integer', 'real') THEN json_extract(usage, '$.{alias}') END")

        where = "role = 'assistant' AND (kind = 'chat' OR (kind = 'response_item' AND usage IS NOT NULL))"
        where += " AND conversation_id = ?" if conversation_id else ""
        rows = self._all(
            f"SELECT coalesce(model, 'unknown') AS name, count(*), sum({tokens('prompt_tokens', 'input_tokens')}),"
            f" sum({tokens('completion_tokens', 'output_tokens')}) FROM messages WHERE {where} GROUP BY name ORDER BY name",
            (conversation_id,) if conversation_id else (),
        )
        return {r[0]: {"replies": r[1], "prompt_tokens": int(r[2] or 0), "completion_tokens": int(r[3] or 0)}
                for r in rows}

    def set_head(self, conversation_id: str, message_id: str | None, *, expect_head: str | None = ANY) -> None:
        with self._write() as db:
            head = self._require_conversation(db, conversation_id)
            if message_id is not None:
                self._require_message_in(db, message_id, conversation_id)
            if not head_moves(head, expect_head):
                raise HeadMoved(conversation_id, expect_head, head)
            self._move_head(db, conversation_id, message_id)

    def children(self, message_id: str) -> list[StoredMessage]:
        rows = self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE parent_id = ? ORDER BY seq", (message_id,)
        )
        return [message_from_row(row, parse_time, self._blobs) for row in rows]

    def count_conversations(self) -> int:
        return int(self._one("SELECT count(*) FROM conversations")[0])

    def count_messages(self, conversation_id: str | None = None) -> int:
        if conversation_id is None:
            return int(self._one("SELECT count(*) FROM messages")[0])
        with self._lock:
            self._require_conversation(self._db, conversation_id)
            row = self._db.execute(
                "SELECT count(*) FROM messages WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()
        return int(row[0])

