"""What each page reads from the store, and only that: a window of a branch, a page of the sidebar, search hits.

A conversation page reads the last :data:`PAGE` messages of its branch
(``store.path(last=K)`` costs O(K) however long the conversation is), and
earlier pages as the reader scrolls up. The sidebar reads one page of
conversations at a time. So a page costs the same for a 10-message
conversation in a small store as for a 10,000-message one among 100,000.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import MessageNotFound
from ..store.base import ConversationRecord, StoredMessage
from ..store.search import MARK_CLOSE, MARK_OPEN, SearchHit
from .messages import MessageView, Siblings, message_views, sibling_positions

__all__ = ["PAGE", "SIDEBAR_PAGE", "Window", "branch_tip", "conversation_window", "earlier_window", "later_window",
           "organizable", "search_results", "sidebar_page", "snippet_pieces", "turn_views"]

#: Messages a conversation page shows at first, and loads per step as the reader scrolls.
PAGE = 40
#: Conversations the sidebar loads per step.
SIDEBAR_PAGE = 50


@dataclass
class Window:
    """A run of consecutive messages of one branch, and what lies beyond it on either side."""

    views: list[MessageView]
    tip: str | None  # the branch's last message
    earlier: str | None  # the first shown message, when messages come before it
    later: str | None  # the last shown message, when the branch goes on after it


def _siblings(store: Any, messages: Sequence[StoredMessage]) -> dict[str, Siblings]:
    """The branch switcher of each message whose parent has other children (one indexed query per parent)."""
    found: dict[str, Siblings] = {}
    for message in messages:
        if message.parent_id is None:
            # Roots have no parent to ask: read the conversation once (only a window that reaches its start).
            every = store.find_messages(message.conversation_id, kind=message.kind)
            family = [m for m in every if m.parent_id is None]
        else:
            family = store.children(message.parent_id)
        position = sibling_positions(message, family)
        if position is not None:
            found[message.id] = position
    return found


def _views(store: Any, messages: Sequence[StoredMessage], *, ends_branch: bool) -> list[MessageView]:
    return message_views(messages, _siblings(store, messages), ends_branch=ends_branch)


def conversation_window(store: Any, record: ConversationRecord, *, at: str | None = None) -> Window:
    """The newest page of the current branch; with ``at``, the page around that message on its branch."""
    if at is None:
        messages = store.path(record.id, last=PAGE) if record.head_id else []
        return Window(_views(store, messages, ends_branch=True), record.head_id,
                      _earlier(messages), None)
    tip = branch_tip(store, record, at)
    branch: list[StoredMessage] = store.path(record.id, head_id=tip)
    position = next(i for i, m in enumerate(branch) if m.id == at)
    start = max(0, position - PAGE // 2)
    shown = branch[start:start + PAGE]
    ends = start + PAGE >= len(branch)
    return Window(_views(store, shown, ends_branch=ends), tip, shown[0].id if start > 0 else None,
                  None if ends else shown[-1].id)


def _earlier(messages: Sequence[StoredMessage]) -> str | None:
    return messages[0].id if messages and messages[0].parent_id is not None else None


def earlier_window(store: Any, conversation_id: str, before: str) -> Window:
    """The page of messages just before ``before`` on its branch."""
    first = store.get_message(before)
    if first.conversation_id != conversation_id:
        raise MessageNotFound(before)
    messages = store.path(conversation_id, head_id=first.parent_id, last=PAGE) if first.parent_id else []
    return Window(_views(store, messages, ends_branch=False), None, _earlier(messages), None)


def later_window(store: Any, record: ConversationRecord, after: str, tip: str) -> Window:
    """The page of messages just after ``after`` on the branch that ends at ``tip``."""
    branch: list[StoredMessage] = store.path(record.id, head_id=tip)
    position = next((i for i, m in enumerate(branch) if m.id == after), None)
    if position is None:
        raise MessageNotFound(after)
    shown = branch[position + 1:position + 1 + PAGE]
    ends = position + 1 + PAGE >= len(branch)
    return Window(_views(store, shown, ends_branch=ends), tip, None, None if ends or not shown else shown[-1].id)


def branch_tip(store: Any, record: ConversationRecord, message_id: str) -> str:
    """The tip of the branch to show ``message_id`` on: the current one if it passes there, else its newest leaf.

    Reads the conversation's messages once (a jump or a branch switch, not every page view).
    """
    message: StoredMessage = store.get_message(message_id)
    if message.conversation_id != record.id:
        raise MessageNotFound(message_id)
    everything: list[StoredMessage] = store.find_messages(record.id, kind="chat")
    everything += store.find_messages(record.id, kind="response_item")
    parent = {m.id: m.parent_id for m in everything}
    cursor = record.head_id
    while cursor is not None:
        if cursor == message_id:
            return str(record.head_id)
        cursor = parent.get(cursor)
    children: dict[str, list[StoredMessage]] = {}
    for m in everything:
        if m.parent_id is not None:
            children.setdefault(m.parent_id, []).append(m)
    tip = message
    while children.get(tip.id):
        tip = max(children[tip.id], key=lambda m: (m.created_at, m.id))
    return tip.id


def turn_views(store: Any, conversation_id: str, anchor: str | None, tip: str) -> list[MessageView]:
    """The messages a turn added after ``anchor`` (``None``: the root) on the branch ending at ``tip``."""
    messages: list[StoredMessage] = store.path(conversation_id, head_id=tip, last=8)
    ids = [m.id for m in messages]
    if anchor in ids:
        messages = messages[ids.index(anchor) + 1:]
    elif anchor is not None or (messages and messages[0].parent_id is not None):
        messages = messages[-2:]  # the anchor is further back than a turn writes: show the turn's own messages
    return _views(store, messages, ends_branch=True)


def organizable(store: Any) -> bool:
    """Whether the store keeps tags, pins and the archive (the tutorial's JSON file does not)."""
    from ..errors import Unsupported

    try:
        store.require("tags")
    except Unsupported:
        return False
    return True


def sidebar_page(store: Any, *, offset: int = 0, archived: bool = False,
                 tag: str | None = None) -> tuple[list[ConversationRecord], int | None]:
    """One page of conversations and the offset of the next page, if any.

    The first page starts with the pinned conversations; the rest are the
    others, newest first (each an indexed read of one page, however many
    conversations the store holds). ``archived`` lists the archive instead.
    """
    if not organizable(store):
        records = store.list_conversations(limit=SIDEBAR_PAGE + 1, offset=offset)
        return records[:SIDEBAR_PAGE], (offset + SIDEBAR_PAGE if len(records) > SIDEBAR_PAGE else None)
    tags = (tag,) if tag else ()
    pinned: list[ConversationRecord] = []
    if offset == 0 and not archived:
        pinned = store.list_conversations(limit=SIDEBAR_PAGE, pinned=True, archived=False, tags=tags)
    records = store.list_conversations(limit=SIDEBAR_PAGE + 1, offset=offset, pinned=None if archived else False,
                                       archived=archived, tags=tags)
    more = len(records) > SIDEBAR_PAGE
    return pinned + records[:SIDEBAR_PAGE], (offset + SIDEBAR_PAGE if more else None)


def search_results(store: Any, query: str, *, limit: int = 30) -> list[SearchHit]:
    """The store's full-text search; any text is a valid query."""
    if not query.strip():
        return []
    return list(store.search(query, limit=limit))


def snippet_pieces(hit: SearchHit) -> list[tuple[str, bool]]:
    """The snippet as (text, matched) pieces, for the template to escape and mark."""
    pieces: list[tuple[str, bool]] = []
    for number, part in enumerate(hit.marked_snippet.split(MARK_OPEN)):
        if number == 0:
            pieces.append((part, False))
            continue
        matched, _, rest = part.partition(MARK_CLOSE)
        pieces += [(matched, True), (rest, False)]
    return [(text.replace("\n", " "), matched) for text, matched in pieces if text]
