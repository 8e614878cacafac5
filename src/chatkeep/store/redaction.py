"""Redacting what a store holds: secrets and personal data replaced where they were stored.

What is redacted: every text in a message's body (content and its text
parts, refusals, tool-call arguments, tool outputs, Responses items, file
names of attachments), its error, the conversation's title, and the search
index built from the message's text. What is not: the structure a message
needs (roles, types, ids, call ids, tool names) and attachments' bytes.

Each match becomes ``[redacted:DETECTOR]`` (see :class:`chatkeep.redact.Redactor`).
A JSON string inside a string (tool arguments) stays valid JSON: the stand-in
holds no quote or backslash, and the built-in detectors never match one.

After rewriting, a SQLite store is scrubbed (:mod:`.scrub`): the old text is
gone from the database file and its log, not only from the rows.
PostgreSQL keeps the old row versions until its own ``VACUUM`` reuses the
space (``VACUUM FULL messages, conversations`` rewrites the tables now);
the server's write-ahead log and backups keep them until they expire.

With a store's ``redactor`` set (the ``redact_on_write`` setting), every
message is redacted before it is stored, so nothing found ever reaches the
disk; imports are not (run ``chatkeep redact --all`` after one).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import StoreError, Unsupported
from .attachments import PLACEHOLDER
from .base import Draft, dumps, role_and_text, storable_text

if TYPE_CHECKING:  # the stores import this module for their write path: the rest is imported when used
    from ..redact import Redactor
    from .scrub import Scrubbed
    from .sqlite import SQLiteStore

__all__ = ["Hit", "RedactionReport", "redact_body", "redact_drafts", "redact_store"]

#: Keys whose values are the message's structure (or a payload's bytes), never its text.
STRUCTURAL = frozenset({
    "role", "type", "id", "call_id", "tool_call_id", "status", "format", "detail", "object", "index", "model",
    "media_type", "mime_type", "file_id", "file_data", "data",
})

_BATCH = 1_000


@dataclass(frozen=True)
class Hit:
    """Where matches were found: a conversation, a message (``None``: the title), a place in it, a detector."""

    conversation_id: str
    message_id: str | None
    place: str
    detector: str
    count: int


@dataclass(frozen=True)
class RedactionReport:
    """What ``redact_store`` found (and, unless a dry run, replaced)."""

    hits: tuple[Hit, ...]
    #: Messages and titles rewritten (or that would be, in a dry run).
    messages: int
    titles: int
    dry_run: bool
    #: The SQLite file's scrubbing, when it was rewritten.
    scrubbed: Scrubbed | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Matches per detector."""
        totals: Counter[str] = Counter()
        for hit in self.hits:
            totals[hit.detector] += hit.count
        return dict(sorted(totals.items()))

    @property
    def total(self) -> int:
        return sum(hit.count for hit in self.hits)


def _place(path: tuple[str | int, ...]) -> str:
    if "arguments" in path:
        return "tool arguments"
    if path and path[-1] == "filename":
        return "file name"
    if path and path[-1] == "error":
        return "error"
    return "content"


def redact_body(body: Any, redactor: Redactor) -> tuple[Any, list[tuple[str, Counter[str]]]]:
    """``body`` with its texts redacted (``body`` itself unchanged), and what was found where."""
    found: list[tuple[str, Counter[str]]] = []

    def text(value: str, path: tuple[str | int, ...]) -> str:
        if value == PLACEHOLDER or value.startswith("data:"):  # an attachment's reference or payload
            return value
        new, counts = redactor.redact(value)
        if counts:
            found.append((_place(path), counts))
        return new

    def walk(value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, str):
            return text(value, path)
        if isinstance(value, dict):
            calls_a_tool = "arguments" in value  # its "name" is the tool's, which the caller needs
            changed = {key: child if key in STRUCTURAL or (key == "name" and calls_a_tool)
                       else walk(child, (*path, key)) for key, child in value.items()}
            return value if all(changed[k] is value[k] for k in value) else changed
        if isinstance(value, list):
            items = [walk(child, (*path, index)) for index, child in enumerate(value)]
            return value if all(a is b for a, b in zip(items, value)) else items
        return value

    return walk(body, ()), found


def redact_drafts(drafts: Sequence[Draft], redactor: Redactor | None) -> Sequence[Draft]:
    """The drafts with their messages and errors redacted (as they are when ``redactor`` is None)."""
    if redactor is None:
        return drafts
    done = []
    for draft in drafts:
        message, _ = redact_body(draft.message, redactor)
        error = redactor.redact(draft.error)[0] if draft.error else draft.error
        done.append(draft if message is draft.message and error == draft.error
                    else replace(draft, message=message, error=error))
    return done


# -- a whole store ---------------------------------------------------------------


@dataclass(frozen=True)
class _Change:
    seq: int
    body: str
    kind: str
    error: str | None
    old_body: str


class _Database:
    """The statements redaction needs, for one database."""

    def __init__(self, store: Any) -> None:
        from .sqlite import SQLiteStore

        self.store = store
        self.sqlite = isinstance(store, SQLiteStore)
        self.param = "?" if self.sqlite else "%s"

    def sql(self, statement: str) -> str:
        return statement if self.sqlite else statement.replace("?", "%s")

    def rows(self, statement: str, params: tuple[Any, ...]) -> list[Any]:
        return list(self.store._all(self.sql(statement), params))

    def messages(self, conversation_id: str | None) -> Iterator[tuple[Any, ...]]:
        last = -1
        where = " AND conversation_id = ?" if conversation_id else ""
        while True:
            batch = self.rows(f"SELECT seq, id, conversation_id, kind, body, error FROM messages WHERE seq > ?{where}"
                              f" ORDER BY seq LIMIT {_BATCH}", (last, conversation_id) if conversation_id else (last,))
            yield from batch
            if len(batch) < _BATCH:
                return
            last = batch[-1][0]

    def apply(self, changes: list[_Change], titles: list[tuple[str, str]]) -> None:
        if self.sqlite:
            self._apply_sqlite(changes, titles)
        else:
            self._apply_postgres(changes, titles)

    def _apply_sqlite(self, changes: list[_Change], titles: list[tuple[str, str]]) -> None:
        from .scrub import secure_delete

        store: SQLiteStore = self.store
        with secure_delete(store), store._write() as db:  # the rewritten rows' old bytes are zeroed as they go
            # Only a body still as it was read is rewritten (bodies never change otherwise).
            db.executemany("UPDATE messages SET body = ?, text = ?, error = ? WHERE seq = ? AND body = ?",
                           [(c.body, storable_text(role_and_text(json.loads(c.body), c.kind)[1]), c.error,
                             c.seq, c.old_body) for c in changes])
            db.executemany("UPDATE conversations SET title = ? WHERE id = ?", titles)

    def _apply_postgres(self, changes: list[_Change], titles: list[tuple[str, str]]) -> None:
        from .postgres_bulk import searchable_text
        from .postgres_search import tsvector_text

        rows = []
        for change in changes:
            text = searchable_text(json.loads(change.body), change.kind)
            rows.append((change.body, text, tsvector_text(text), change.error, change.seq, change.old_body))

        def rewrite(conn: Any) -> None:
            cursor = conn.cursor()
            cursor.executemany("UPDATE messages SET body = %s, text = %s, search = %s::tsvector, error = %s"
                               " WHERE seq = %s AND body = %s", rows)
            cursor.executemany("UPDATE conversations SET title = %s WHERE id = %s", titles)

        self.store._write(rewrite)


def _database(store: Any) -> _Database:
    from .jsonfile import JSONFileStore

    if isinstance(store, JSONFileStore):
        raise Unsupported(f"{store.url}: redact works on SQLite and PostgreSQL stores; import the JSON file into one "
                          "(chatkeep import) to redact it there")
    if getattr(store, "read_only", None):
        raise StoreError(f"{store.url} is read-only ({store.read_only}), so nothing can be redacted")
    return _Database(store)


def redact_store(store: Any, redactor: Redactor, *, conversation_id: str | None = None,
                 dry_run: bool = False) -> RedactionReport:
    """Redact one conversation (``conversation_id``) or the whole store; with ``dry_run``, only report.

    Returns where each detector matched. A SQLite store is then scrubbed, so the
    old text is gone from its files (see the module's docstring for PostgreSQL).
    """
    database = _database(store)
    if conversation_id is not None:
        store.get_conversation(conversation_id)  # ConversationNotFound before anything else
    hits: list[Hit] = []
    changes: list[_Change] = []
    for seq, message_id, owner, kind, body_text, error in database.messages(conversation_id):
        body, found = redact_body(json.loads(body_text), redactor)
        new_error, error_counts = redactor.redact(error) if error else (error, Counter())
        if error_counts:
            found.append(("error", error_counts))
        for place, counts in found:
            hits += [Hit(owner, message_id, place, name, n) for name, n in counts.items()]
        if found:
            changes.append(_Change(int(seq), dumps(body), kind, new_error, body_text))
    titles = []
    where = " AND id = ?" if conversation_id else ""
    for cid, title in database.rows(f"SELECT id, title FROM conversations WHERE title IS NOT NULL{where} ORDER BY id",
                                    (conversation_id,) if conversation_id else ()):
        new_title, counts = redactor.redact(title)
        if counts:
            titles.append((new_title, cid))
            hits += [Hit(cid, None, "title", name, n) for name, n in counts.items()]
    report = RedactionReport(tuple(_merged(hits)), len(changes), len(titles), dry_run)
    if dry_run or not (changes or titles):
        return report
    database.apply(changes, titles)
    if not database.sqlite:
        return report
    from .scrub import scrub

    return replace(report, scrubbed=scrub(store))


def _merged(hits: list[Hit]) -> list[Hit]:
    """One hit per conversation, message, place and detector."""
    totals: Counter[tuple[str, str | None, str, str]] = Counter()
    for hit in hits:
        totals[(hit.conversation_id, hit.message_id, hit.place, hit.detector)] += hit.count
    return [Hit(*key, count) for key, count in totals.items()]
