"""``ChatkeepSession``: an OpenAI Agents SDK session kept in a chatkeep store.

```python
from agents import Agent, Runner
from chatkeep.integrations.agents import ChatkeepSession

session = ChatkeepSession("support-42")          # open_store() by default
result = await Runner.run(agent, "Hello", session=session)
```

The session id is the conversation id (the conversation is created on first
use), so agent runs show up in ``chatkeep list``, ``show``, ``search`` and
``export``. Each item the SDK hands over (messages, function calls and their
outputs, reasoning items with encrypted content, kinds newer than chatkeep)
is stored as it came, one stored message per item with ``kind="response_item"``.

The store is blocking, so every call runs in a worker thread (one adapter,
:func:`chatkeep.store.threads.run_blocking`); a cancelled run still finishes
saving what it started to save.
The SDK itself is imported only when a session is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from ..client.responses_turn import branch_items
from ..errors import BackendUnavailable, ConversationNotFound, StoreError
from ..items import ITEM_KIND, as_item, chat_to_items
from ..store.base import Draft
from ..store.conversation import Conversation
from ..store.protocol import Store
from ..store.threads import run_blocking

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings

__all__ = ["ChatkeepSession"]

INSTALL_HINT = "the OpenAI Agents SDK is not installed: pip install 'chatkeep[agents]'"


def _settings(value: SessionSettings | Mapping[str, Any] | None) -> SessionSettings:
    try:
        from agents.memory.session_settings import SessionSettings, coerce_session_settings
    except ImportError as exc:
        raise BackendUnavailable(f"ChatkeepSession: {INSTALL_HINT}") from exc
    return SessionSettings() if value is None else coerce_session_settings(dict(value) if isinstance(value, Mapping) else value)


class ChatkeepSession:
    """An Agents SDK ``Session`` whose history is a chatkeep conversation.

    ``store`` defaults to ``chatkeep.open_store()`` (closed by ``close()``; a
    store you pass stays yours). ``title``, ``owner`` and ``metadata`` are
    given to the conversation when the session creates it.
    ``session_settings`` works as in the SDK's own sessions (``limit``: how
    many recent items a run reads).

    ``get_items(limit=N)`` returns the N newest items, as the SDK's own
    sessions do (the runner drops a tool output whose call fell outside the
    window). ``add_items`` stores a batch in one transaction, after whatever
    the head is when it commits. ``pop_item()`` moves the conversation's head
    back one item in one store operation, so two pops never take the same
    item and an add racing a pop loses nothing; the popped item stays in the
    store, off the branch, as every undo in chatkeep does. ``clear_session()``
    deletes the conversation.
    """

    def __init__(
        self,
        session_id: str,
        store: Store | None = None,
        *,
        session_settings: SessionSettings | Mapping[str, Any] | None = None,
        title: str | None = None,
        owner: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.session_settings: SessionSettings | None = _settings(session_settings)
        self.session_id = session_id
        self._owns_store = store is None
        if store is None:
            from ..store import open_store

            # cast: the backends' search() signature does not match the protocol's yet.
            self.store: Store = cast(Store, open_store())
        else:
            self.store = store
        self.title, self.owner, self.metadata = title, owner, dict(metadata or {})

    def __repr__(self) -> str:
        return f"ChatkeepSession({self.session_id!r}, store={self.store!r})"

    @property
    def conversation(self) -> Conversation:
        """The chatkeep conversation behind the session (it may not exist before the first item)."""
        return Conversation(self.store, self.session_id)

    def close(self) -> None:
        """Close the store when the session opened it."""
        if self._owns_store:
            self.store.close()

    # -- the SDK's Session protocol ---------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items, oldest first; with ``limit`` only the newest ones (see the class)."""
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        return await run_blocking(lambda: self._read(limit))

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Store items after the newest one, each as it came."""
        if not items:
            return
        plain = [as_item(item) for item in items]  # detached before the caller can change them
        await run_blocking(lambda: self._add(plain))

    async def pop_item(self) -> TResponseInputItem | None:
        """Take the newest item off the session and return it (``None`` when empty)."""
        return await run_blocking(self._pop)

    async def clear_session(self) -> None:
        """Delete every item of the session (its conversation)."""
        await run_blocking(self._clear)

    # -- blocking steps, run in a worker thread ---------------------------------

    def _read(self, limit: int | None) -> list[Any]:
        if limit is not None and limit < 0:
            limit = None  # as SQLiteSession: a negative limit means no limit
        if limit == 0:
            return []
        try:
            stored = self.store.path(self.session_id, last=limit)
        except ConversationNotFound:
            return []
        items = branch_items(stored)
        return items if limit is None else items[-limit:]

    def _create(self) -> None:
        try:
            self.store.create_conversation(self.session_id, title=self.title, owner=self.owner, metadata=self.metadata)
        except StoreError:
            # Another process may have created it in between; otherwise the error stands.
            self.store.get_conversation(self.session_id)

    def _add(self, items: list[dict[str, Any]]) -> None:
        drafts = [Draft(item, kind=ITEM_KIND) for item in items]
        try:
            self.store.append_many(self.session_id, drafts)
        except ConversationNotFound:
            self._create()
            self.store.append_many(self.session_id, drafts)

    def _pop(self) -> Any:
        try:
            stored = self.store.pop(self.session_id)
        except ConversationNotFound:
            return None
        if stored is None:
            return None
        if stored.kind == ITEM_KIND:
            return stored.message
        converted = chat_to_items(stored.message)
        return converted[-1] if converted else None

    def _clear(self) -> None:
        try:
            self.store.delete_conversation(self.session_id)
        except ConversationNotFound:
            pass
