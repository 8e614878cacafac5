"""Retention: removing the conversations whose last activity is older than a span, and giving the space back.

Pruning is planned, then carried out: :func:`plan_prune` lists exactly what
would go (whole conversations whose ``updated_at`` is before the cutoff,
less those kept by a tag or a pin, with their messages and the attachments
nothing else uses), and :func:`prune` removes exactly that list, in one
transaction. A conversation that changed after it was planned (a new message,
a pin, a kept tag) is skipped and reported, never removed.

Removing a conversation removes its messages, their search index entries,
their lookup keys, its tags, and each attachment no remaining message uses.
On SQLite the file is then scrubbed (:mod:`.scrub`): the removed text is gone
from the file and its log, and the file shrinks. On PostgreSQL the rows are
gone; the server's autovacuum reuses their space.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..errors import StoreError, Unsupported
from .base import parse_time, utcnow
from .organize import normalize_tags

if TYPE_CHECKING:
    from .scrub import Scrubbed

__all__ = ["PruneCandidate", "PrunePlan", "PruneReport", "plan_prune", "prune"]


@dataclass(frozen=True)
class PruneCandidate:
    """A conversation a plan removes: its id, display title, last activity and message count."""

    id: str
    title: str
    updated_at: datetime
    messages: int


@dataclass(frozen=True)
class PrunePlan:
    """What pruning removes: the conversations, and the attachments only they use."""

    cutoff: datetime
    conversations: tuple[PruneCandidate, ...]
    #: Attachments no other conversation uses (they go with these), and their bytes.
    attachments: int
    attachment_bytes: int
    keep_tags: tuple[str, ...] = ()
    keep_pinned: bool = False
    #: Old conversations kept by a tag or a pin.
    kept: tuple[str, ...] = ()

    @property
    def messages(self) -> int:
        return sum(c.messages for c in self.conversations)


@dataclass(frozen=True)
class PruneReport:
    """What pruning did: the conversations removed, those skipped (changed since planned), attachments removed."""

    plan: PrunePlan
    removed: tuple[PruneCandidate, ...]
    skipped: tuple[PruneCandidate, ...] = ()
    attachments: int = 0
    #: The SQLite file's scrubbing (``None`` on PostgreSQL, or when nothing was removed).
    scrubbed: Scrubbed | None = field(default=None)


class _Database:
    """The two dialects of the statements pruning needs."""

    def __init__(self, store: Any) -> None:
        from .jsonfile import JSONFileStore
        from .sqlite import SQLiteStore

        if isinstance(store, JSONFileStore):
            raise Unsupported(f"{store.url}: the JSON file holds one conversation; delete the file to remove it")
        if getattr(store, "read_only", None):
            raise StoreError(f"{store.url} is read-only ({store.read_only}), so nothing can be pruned")
        self.store = store
        self.sqlite = isinstance(store, SQLiteStore)

    def sql(self, statement: str) -> str:
        return statement if self.sqlite else statement.replace("?", "%s")

    def rows(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return list(self.store._all(self.sql(statement), params))

    def time(self, value: Any) -> datetime:
        return parse_time(value) if self.sqlite else value.astimezone(timezone.utc)

    def transaction(self, operation: Any) -> Any:
        if self.sqlite:
            from .scrub import secure_delete

            with secure_delete(self.store), self.store._write() as db:
                return operation(db)
        return self.store._write(operation, replayable=True)


def plan_prune(store: Any, older_than: timedelta, *, keep_tags: Iterable[str] = (), keep_pinned: bool = False,
               now: datetime | None = None) -> PrunePlan:
    """The conversations whose last activity is more than ``older_than`` ago, less those kept.

    ``keep_tags``: a conversation carrying any of them stays; ``keep_pinned``:
    pinned conversations stay. Nothing is changed.
    """
    if older_than <= timedelta(0):
        raise StoreError(f"prune: the span must be positive, got {older_than}")
    database = _Database(store)
    cutoff = (now or utcnow()) - older_than
    kept_tags = tuple(normalize_tags(keep_tags))
    doomed, kept = [], []
    for record in store.list_conversations(limit=None):
        if record.updated_at >= cutoff:
            continue
        if (keep_pinned and record.pinned) or set(kept_tags) & set(record.tags):
            kept.append(record.id)
            continue
        doomed.append(record)
    counts = dict(database.rows("SELECT conversation_id, count(*) FROM messages GROUP BY conversation_id"))
    candidates = tuple(PruneCandidate(r.id, r.display_title, r.updated_at, int(counts.get(r.id, 0)))
                       for r in sorted(doomed, key=lambda r: (r.updated_at, r.id)))
    going = {c.id for c in candidates}
    users: dict[str, tuple[set[str], int]] = {}
    for sha, conversation_id, size in database.rows(
            "SELECT u.sha256, m.conversation_id, a.size FROM attachment_uses u JOIN messages m ON m.id = u.message_id"
            " JOIN attachments a ON a.sha256 = u.sha256"):
        users.setdefault(sha, (set(), int(size)))[0].add(conversation_id)
    freed = [size for owners, size in users.values() if owners <= going]
    return PrunePlan(cutoff, candidates, len(freed), sum(freed), kept_tags, keep_pinned, tuple(kept))


def prune(store: Any, plan: PrunePlan) -> PruneReport:
    """Remove exactly the conversations ``plan`` lists, in one transaction; skip any that changed since.

    A SQLite store is then scrubbed: the removed text is gone from its files,
    and the file shrinks.
    """
    database = _Database(store)
    if not plan.conversations:
        return PruneReport(plan, ())
    removed: list[PruneCandidate] = []
    skipped: list[PruneCandidate] = []
    freed = [0]

    def remove(db: Any) -> None:
        removed.clear()
        skipped.clear()
        used: set[str] = set()
        for candidate in plan.conversations:
            if not _unchanged(database, db, candidate, plan):
                skipped.append(candidate)
                continue
            used.update(row[0] for row in db.execute(database.sql(
                "SELECT DISTINCT u.sha256 FROM attachment_uses u JOIN messages m ON m.id = u.message_id"
                " WHERE m.conversation_id = ?"), (candidate.id,)))
            # Clearing the head first keeps its reference from holding on to a message being deleted.
            db.execute(database.sql("UPDATE conversations SET head_id = NULL WHERE id = ?"), (candidate.id,))
            db.execute(database.sql("DELETE FROM messages WHERE conversation_id = ?"), (candidate.id,))
            db.execute(database.sql("DELETE FROM conversations WHERE id = ?"), (candidate.id,))
            removed.append(candidate)
        freed[0] = 0
        for sha in sorted(used):  # an attachment goes with the last message that used it
            freed[0] += db.execute(database.sql("DELETE FROM attachments WHERE sha256 = ? AND NOT EXISTS"
                                                " (SELECT 1 FROM attachment_uses WHERE sha256 = ?)"),
                                   (sha, sha)).rowcount

    database.transaction(remove)
    report = PruneReport(plan, tuple(removed), tuple(skipped), freed[0])
    if not database.sqlite or not removed:
        return report
    from .scrub import scrub

    return replace(report, scrubbed=scrub(store))


def _unchanged(database: _Database, db: Any, candidate: PruneCandidate, plan: PrunePlan) -> bool:
    """Whether the conversation is still as planned: no activity since, not pinned or tagged to be kept."""
    lock = "" if database.sqlite else " FOR UPDATE"  # an append to it waits until the prune is done
    row = db.execute(database.sql(f"SELECT updated_at, pinned_at FROM conversations WHERE id = ?{lock}"),
                     (candidate.id,)).fetchone()
    if row is None or database.time(row[0]) != candidate.updated_at:
        return False
    if plan.keep_pinned and row[1] is not None:
        return False
    if plan.keep_tags:
        tags = {r[0] for r in db.execute(database.sql("SELECT tag FROM conversation_tags WHERE conversation_id = ?"),
                                         (candidate.id,))}
        if tags & set(plan.keep_tags):
            return False
    return True
