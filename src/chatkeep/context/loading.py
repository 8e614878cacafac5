"""Reading only the part of a branch a trimmed context can use: the newest messages, and the pinned ones.

A context trimmed to a budget (``TrimToBudget``) sends every system and
developer message of the branch and, of the rest, the newest that fit. So a
new process's first turn needs the branch's tail, back to where the droppable
messages hold the budget's tokens, and the pinned messages from before it.
Reading the whole branch instead costs two seconds at 100,000 messages.

:func:`read_tail` walks parent links back from the head in growing chunks
(the store's ``path(last=N, head_id=...)``: N index lookups) until:

- the droppable messages read hold at least ``tokens`` (the budget: more than
  its room, so the trim starts inside what was read), and
- the oldest one read starts a turn: a user, system or developer message. A
  trim never starts on a tool result (it steps back to the call), and the
  check of a new message's tool results reads back to the last model turn;
  both then stop inside what was read;

or the root is reached. The pinned messages before the oldest one come from
``Store.pinned_path``: a chain of a few rows, not a walk of the branch.

The history says it ``skipped`` messages; a policy that would start its
window at the first one read (a bigger budget after a model switch, a
regeneration that dropped the newest reply) asks for more with
``ReadEarlier``, and :func:`read_earlier` reads further back, so the window
is always the one the whole branch gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..store.base import StoredMessage
from ..store.pinned import PINNED_ROLES
from ..store.protocol import Store
from .history import History

__all__ = ["FIRST_CHUNK", "read_earlier", "read_tail"]

#: Messages read by the first step back; later steps size themselves on the tokens a message holds so far.
FIRST_CHUNK = 64
#: Roles that start a turn: a stretch read back to one of these has no tool result cut from its call.
_TURN_STARTS = frozenset({"user"}) | PINNED_ROLES
#: How much more than the estimate a step reads, so one more step is seldom needed.
_MARGIN = 1.1

Entry = tuple[StoredMessage, int]


def read_tail(
    store: Store,
    conversation_id: str,
    head_id: str | None,
    count: Callable[[Mapping[str, Any]], int] | None,
    key: str | None,
    tokens: int | None,
    *,
    chunk: int = FIRST_CHUNK,
) -> History:
    """The branch ending at ``head_id``, read only as far back as a window of ``tokens`` can reach.

    ``count`` and ``key`` are as for ``History.of`` (counts the store lacks are
    made and left in ``unsaved``); ``tokens=None`` reads the whole branch.
    """
    history = History(count, key)
    if head_id is not None:
        entries, complete = _read_back(store, conversation_id, head_id, history, tokens, chunk)
        _settle(store, conversation_id, history, entries, complete)
    return history


def read_earlier(
    store: Store, conversation_id: str, history: History, tokens: int | None, *, chunk: int = FIRST_CHUNK
) -> None:
    """Extend a history that ``skipped`` messages back until its droppable ones hold ``tokens`` (in place).

    At least one more message is read, so asking again always gets further;
    ``tokens=None`` reads back to the root.
    """
    if not history.skipped:
        return
    tail = history.loaded()
    have = sum(t for stored, t in tail if stored.role not in PINNED_ROLES)
    parent = tail[0][0].parent_id
    assert parent is not None  # a history that skipped messages starts below the root
    wanted = None if tokens is None else max(tokens - have, 1)
    older, complete = _read_back(store, conversation_id, parent, history, wanted, chunk)
    _settle(store, conversation_id, history, older + tail, complete)


def _settle(store: Store, conversation_id: str, history: History, entries: list[Entry], complete: bool) -> None:
    """Fill ``history`` with ``entries``, after the pinned messages before them unless the root was reached."""
    pinned: list[Entry] = []
    if not complete:
        pinned = [(m, history.measure(m)) for m in store.pinned_path(conversation_id, entries[0][0].id)]
    history.rebuild(pinned + entries, loaded_from=len(pinned), skipped=not complete)


def _read_back(
    store: Store, conversation_id: str, start_id: str, history: History, tokens: int | None, chunk: int
) -> tuple[list[Entry], bool]:
    """Messages ending at ``start_id``, oldest first, with their tokens; and whether the root was reached."""
    parts: list[list[Entry]] = []
    have = read = 0
    cursor: str | None = start_id
    size = max(chunk, 1)
    while cursor is not None:
        part = store.path(conversation_id, last=None if tokens is None else size, head_id=cursor)
        read += len(part)
        cursor = part[0].parent_id if part else None
        measured: list[Entry] = []
        for stored in reversed(part):  # newest first: stop at the first turn start with enough tokens
            count = history.measure(stored)
            measured.append((stored, count))
            have += 0 if stored.role in PINNED_ROLES else count
            if tokens is not None and have >= tokens and stored.role in _TURN_STARTS:
                cursor = None
                break
        measured.reverse()
        if tokens is not None:  # as many more as the tokens still missing need, at the rate so far (at most 16x)
            rate = max(have / max(read, 1), 1.0)
            size = max(chunk, min(int(max(tokens - have, 0) / rate * _MARGIN) + chunk, 16 * read))
        parts.append(measured)
    entries = [entry for part in reversed(parts) for entry in part]
    return entries, not entries or entries[0][0].parent_id is None
