"""What ``Chat`` and ``AsyncChat`` share: settings, the branch cache, the context and the request."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..context.history import History
from ..context.policies import Context, ContextPolicy, KeepAll, Summarize, SummaryRequest, summary_message
from ..context.tokens import TokenCounter, UnknownEncoding, encoding_for_model
from ..context.windows import DEFAULT_REPLY_RESERVE, UnknownContextWindow, context_window
from ..errors import ChatkeepError
from ..redact import client_secrets
from ..store.base import StoredMessage
from ..store.conversation import Conversation
from .effects import Steps
from .plan import Turn
from .steps import chat_turn
from .streams import Slot
from .turn import Reply, ReplyRecord, build_request, reply_of

__all__ = ["ChatBase"]


class ChatBase:
    """Settings and shared steps of a chat; ``Chat`` and ``AsyncChat`` add the model calls.

    ``context`` is the context policy (``KeepAll()`` by default); the budget is
    ``budget`` when given, else the model's context window (``context_window``
    or chatkeep's table) minus the tokens reserved for the reply
    (``max_completion_tokens`` of the request, else ``reply_reserve``).
    ``encoding`` names the tokenizer for models chatkeep does not know.
    """

    def __init__(
        self,
        conversation: Conversation,
        client: Any,
        model: str = "gpt-4o",
        *,
        context: ContextPolicy | None = None,
        context_window: int | None = None,
        budget: int | None = None,
        reply_reserve: int = DEFAULT_REPLY_RESERVE,
        encoding: str | None = None,
        **defaults: Any,
    ) -> None:
        self.conversation = conversation
        self.client = client
        self.model = model
        self.defaults = defaults
        self.policy: ContextPolicy = context if context is not None else KeepAll()
        self.context_window = context_window
        self.budget = budget
        self.reply_reserve = reply_reserve
        self.encoding = encoding
        self._counter: TokenCounter | None = None
        self._counter_resolved = False
        # The branch as last seen, reused while the head has not moved, so a turn
        # neither re-reads nor re-counts the conversation.
        self._history: History | None = None
        self._summary: StoredMessage | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conversation.id!r}, model={self.model!r})"

    # -- tokens and budget --------------------------------------------------------

    def _token_counter(self) -> TokenCounter | None:
        if not self._counter_resolved:
            try:
                name = self.encoding or encoding_for_model(self.model)
            except UnknownEncoding:
                if self.policy.needs_budget or self.budget is not None or self.context_window is not None:
                    raise
                name = None  # keep-everything on an unknown model: nothing to count against
            self._counter = TokenCounter(name) if name else None
            self._counter_resolved = True
        return self._counter

    def _budget(self, model: str, options: Mapping[str, Any]) -> int | None:
        if self.budget is not None:
            return self.budget
        try:
            window = self.context_window or context_window(model)
        except UnknownContextWindow:
            if self.policy.needs_budget:
                raise
            return None
        reserve = options.get("max_completion_tokens") or options.get("max_tokens") or self.reply_reserve
        return int(window) - int(reserve)

    # -- the branch -----------------------------------------------------------------

    def _cached_history(self, head_id: str | None) -> History | None:
        cached = self._history
        return cached if cached is not None and cached.head_id == head_id else None

    def _adopt(self, items: list[StoredMessage]) -> History:
        counter = self._token_counter()
        history = History.of(items, counter.message if counter else None, key=counter.name if counter else None)
        self._summary = None
        return history

    def _unsaved_counts(self, history: History) -> dict[str, dict[str, int]]:
        unsaved = {message_id: {str(history.key): n} for message_id, n in history.unsaved.items()}
        history.unsaved = {}
        return unsaved

    def _wants_summaries(self) -> bool:
        return isinstance(self.policy, Summarize)

    def _adopt_summary(self, history: History, summaries: Sequence[StoredMessage]) -> None:
        """Reuse the newest stored summary that covers part of this branch."""
        for summary in reversed(summaries):
            if summary.metadata.get("summary", {}).get("to") in history.index:
                self._summary = summary
                return

    def _load(self, conversation: Conversation) -> History:
        """The branch to answer: the cached one while the stored head is still its tip, else read afresh.

        The turn takes the cache out and ``_checkin`` puts it back, so two turns
        running at once on one chat never share (and scramble) one history.
        """
        history = self._cached_history(conversation.record.head_id)
        self._history = None
        if history is None:
            history = self._adopt(conversation.history())
            unsaved = self._unsaved_counts(history)
            if unsaved:
                conversation.store.save_token_counts(unsaved)
            if self._wants_summaries():
                found = conversation.store.find_messages(conversation.id, kind="summary")
                self._adopt_summary(history, found)
        return history

    def _checkin(self, history: History) -> None:
        """Keep a finished turn's branch for the next turn (used only while the stored head is its tip)."""
        self._history = history

    def _prepare(self, message: Any, *, regenerate: bool = False) -> Turn:
        """Hold the tip, read the branch, plan the turn, save the new message.

        Blocking: ``AsyncChat`` runs it in one worker-thread call. Whatever the
        store cannot hold is refused here, before any model call is paid for.
        """
        store = self.conversation.store
        if self._wants_summaries():
            store.require("summaries")
        lease = store.lease(self.conversation.id)
        try:
            conversation = Conversation(lease.store, self.conversation.id)
            turn = Turn(conversation, self._load(conversation), message, regenerate=regenerate, lease=lease,
                        secrets=client_secrets(self.client))
            save = turn.save_prompt()
            if save is not None:
                save()
        except BaseException:
            lease.release()
            raise
        return turn

    def _turn(
        self, message: Any, overrides: Mapping[str, Any], *, regenerate: bool = False, streaming: bool = False,
        slot: Slot[Reply] | None = None,
    ) -> Steps[Reply]:
        """The whole turn as effects, for the sync or async shell to carry out."""
        return chat_turn(self, self.client.chat.completions.create, message, overrides, regenerate=regenerate,
                         streaming=streaming, slot=slot)

    # -- the request and its context ------------------------------------------------

    def _options(self, overrides: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        options = {**self.defaults, **overrides}
        return str(options.pop("model", self.model)), options

    def _select(self, history: History, model: str, options: Mapping[str, Any]) -> Context | SummaryRequest:
        counter = self._token_counter()
        extra = counter.tools(options.get("tools"), model=model) if counter else 0
        return self.policy.select(history, self._budget(model, options), extra=extra, summary=self._summary)

    def _request(self, context: Context, model: str, options: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        return build_request(model, context.messages, options, stream=stream)

    def _summary_request(self, ask: SummaryRequest, model: str) -> dict[str, Any]:
        if not isinstance(self.policy, Summarize):  # pragma: no cover - only Summarize asks
            raise ChatkeepError("only the Summarize policy asks for summaries")
        return self.policy.request(ask, model)

    def _save_summary(self, turn: Turn, ask: SummaryRequest, record: ReplyRecord) -> Callable[[], StoredMessage]:
        """The store operation that keeps a new summary, off the branch, after the last message it covers."""
        text = str(record.message.get("content") or "")
        if not text.strip():
            raise ChatkeepError("the summary call returned no text; the conversation was left as it is")
        previous = ask.previous.metadata.get("summary", {}) if ask.previous is not None else {}
        covers = {
            "from": previous.get("from", ask.first_id), "to": ask.last_id,
            "count": int(previous.get("count", 0)) + len(ask.messages),
            "extends": ask.previous.id if ask.previous is not None else None,
        }
        message = summary_message(text)
        history = turn.history
        tokens = history.tokens_of(message)
        counts = {history.key: tokens} if history.key else None

        def save() -> StoredMessage:
            stored = turn.conversation.append(
                message, parent_id=ask.last_id, move_head=False, kind="summary", model=record.model,
                usage=record.usage, metadata={"summary": covers}, token_counts=counts,
            )
            self._summary = stored
            return stored

        return save

    def _settle(self, stored: StoredMessage) -> Reply:
        return reply_of(stored)
