"""Message trees as exports give them: ids with parent ids, put in an order the store can insert.

Exports name each message's parent (Open WebUI's ``parentId``, LibreChat's
``parentMessageId``, DeepSeek's ``parent_id``, ...), in no promised order, and
real files break the rules: a parent that is not in the file, a message that
is its own ancestor. :func:`tree_order` puts parents before children, makes a
message whose parent is missing a root (the importer says so in a warning)
and leaves out messages on a cycle, which no order can insert.

The helpers choosing a head serve formats that do not name one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..store.bulk import ImportMessage

__all__ = ["Order", "last_leaf", "newest_leaf", "tree_order"]


@dataclass
class Order:
    """Keys with every parent before its children, and what did not fit."""

    keys: list[str] = field(default_factory=list)
    #: Key -> the missing parent it named; each is imported as a root.
    orphans: dict[str, str] = field(default_factory=dict)
    #: Keys on a cycle (or repeated): left out.
    lost: list[str] = field(default_factory=list)


def tree_order(links: Sequence[tuple[str, str | None]]) -> Order:
    """Order ``(key, parent key)`` pairs parents first; siblings keep the order they have in ``links``."""
    known: dict[str, str | None] = {}
    repeated: list[str] = []
    for key, parent in links:
        if key in known:
            repeated.append(key)
        else:
            known[key] = parent
    order = Order()
    children: dict[str | None, list[str]] = {}
    for key, parent in known.items():
        if parent is not None and (parent not in known or parent == key):
            order.orphans[key] = parent
            parent = None
        children.setdefault(parent, []).append(key)
    seen: set[str] = set()
    stack = list(reversed(children.get(None, [])))
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        order.keys.append(key)
        stack.extend(reversed(children.get(key, [])))
    order.lost = [key for key in known if key not in seen] + repeated
    return order


def newest_leaf(messages: Sequence[ImportMessage]) -> str | None:
    """The key of the most recently created message with no children (the last such one on a tie)."""
    parents = {imported.parent_key for imported in messages}
    leaves = [(imported.created_at.timestamp() if imported.created_at else float("-inf"), i, imported.key)
              for i, imported in enumerate(messages) if imported.key not in parents]
    return max(leaves)[2] if leaves else None


def last_leaf(messages: Sequence[ImportMessage]) -> str | None:
    """The leaf reached by taking the last root, then always the last child: what a UI shows by default."""
    last_child: dict[str | None, str | None] = {}
    for imported in messages:
        last_child[imported.parent_key] = imported.key
    key = last_child.get(None)
    while key is not None and key in last_child:
        key = last_child[key]
    return key
