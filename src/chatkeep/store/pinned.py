"""Each message's nearest system or developer ancestor, kept so a branch's pinned messages are found without a walk.

A trimmed context always sends every system and developer message of the
branch, however old. A turn that reads only the newest messages (see
:mod:`chatkeep.context.loading`) still needs those, and walking 100,000
parent links to find them would cost what it saves. So every message row
names, in ``pinned_ancestor``, the nearest of its strict ancestors whose role
is ``system`` or ``developer`` (``NULL`` when there is none), set when the
row is inserted; the pinned messages of a branch are then the short chain
``tip -> pinned_ancestor -> pinned_ancestor -> ...``.

A new row's value follows from its parent's row alone: the parent itself when
the parent is pinned, else what the parent names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ["INHERITED_SQL", "PINNED_ROLES", "chain_pinned", "describe_mismatch", "inherited_pinned", "mismatches_sql",
           "pinned_of"]

#: Roles a trimmed context always keeps.
PINNED_ROLES = frozenset({"system", "developer"})

_ROLES_SQL = ", ".join(f"'{role}'" for role in sorted(PINNED_ROLES))

#: What a child of row ``p`` inherits: ``p`` itself when pinned, else what ``p`` names (SQL, both databases).
INHERITED_SQL = f"CASE WHEN p.role IN ({_ROLES_SQL}) THEN p.id ELSE p.pinned_ancestor END"


def mismatches_sql(distinct: str) -> str:
    """Rows whose ``pinned_ancestor`` is not what their parent passes down (``distinct``: the null-safe
    inequality, ``IS NOT`` on SQLite, ``IS DISTINCT FROM`` on PostgreSQL): for ``check_integrity``."""
    return (f"SELECT m.id, m.pinned_ancestor FROM messages m LEFT JOIN messages p ON p.id = m.parent_id"
            f" WHERE m.pinned_ancestor {distinct} ({INHERITED_SQL}) LIMIT 100")


def describe_mismatch(message_id: str, pinned: str | None) -> str:
    return f"message {message_id!r}: pinned_ancestor {pinned!r} is not its nearest system or developer ancestor"


def pinned_of(parent_sql: str) -> str:
    """A scalar subquery: the ``pinned_ancestor`` of a new row whose parent's id is ``parent_sql``."""
    return f"(SELECT {INHERITED_SQL} FROM messages p WHERE p.id = {parent_sql})"


def chain_pinned(roles: Sequence[str | None], ids: Sequence[str]) -> list[str | None]:
    """For a chain inserted at once (each row the parent of the next): the nearest pinned row before each
    one *inside the chain* (``None``: take what the chain's parent passes down)."""
    found: list[str | None] = []
    latest: str | None = None
    for role, message_id in zip(roles, ids):
        found.append(latest)
        if role in PINNED_ROLES:
            latest = message_id
    return found


def inherited_pinned(
    rows: Iterable[tuple[str, str | None, str | None]],
    outside: Callable[[list[str]], Mapping[str, str | None]],
) -> list[str | None]:
    """``pinned_ancestor`` for rows ``(id, parent_id, role)`` inserted together, parents before children.

    ``outside`` gives, for parents already stored, what their children inherit
    (one query for all of them).
    """
    rows = list(rows)
    own = {row[0] for row in rows}
    stored = sorted({parent for _, parent, _ in rows if parent is not None and parent not in own})
    passes: dict[str, str | None] = dict(outside(stored)) if stored else {}
    values: list[str | None] = []
    for message_id, parent, role in rows:
        value = None if parent is None else passes.get(parent)
        values.append(value)
        passes[message_id] = message_id if role in PINNED_ROLES else value
    return values
