"""What ``Chat`` and ``AsyncChat`` share: settings, the branch cache, the context and the request."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..context.history import History
from ..context.loading import read_earlier, read_tail
from ..context.overflow import Overflow
from ..context.policies import (
    Context,
    ContextPolicy,
    KeepAll,
    ReadEarlier,
    Summarize,
    SummaryRequest,
    summary_message,
)
from ..context.tokens import TokenCounter, UnknownEncoding, encoding_for_model
from ..context.windows import DEFAULT_REPLY_RESERVE, UnknownContextWindow, context_window, open_model_window
from ..errors import ChatkeepError, StoreError, Unsupported
from ..redact import client_secrets
from ..store.base import StoredMessage
from ..store.calibrations import Calibration, openai_hosted, server_of
from ..store.conversation import Conversation
from .effects import Steps
from .plan import Turn
from .server_info import server_tokenizer, server_window
from .steps import chat_turn
from .streams import Slot
from .titles import report
from .turn import Reply, ReplyRecord, build_request, reply_of

__all__ = ["ChatBase"]


class ChatBase:
    """Settings and shared steps of a chat; ``Chat`` and ``AsyncChat`` add the model calls.

    ``context`` is the context policy (``KeepAll()`` by default); the budget is
    ``budget`` when given, else the model's context window minus the tokens
    reserved for the reply (``max_completion_tokens`` of the request, else
    ``reply_reserve``, at most a quarter of the window). The window is
    ``context_window``, else what the server stated, else chatkeep's tables
    (for an open model on a server that is not OpenAI's, the server is asked
    first: llama.cpp and vLLM say what they run with).

    Tokens are counted with the model's tiktoken encoding, or ``encoding``: a
    tiktoken encoding, the path of the model's Hugging Face ``tokenizer.json``,
    or ``"server"`` (the server's own ``/tokenize``). Counts for a model that
    is not OpenAI's are calibrated against what the server reports (see
    :mod:`chatkeep.store.calibrations`); OpenAI's models need no calibration.

    With ``title_model``, an untitled conversation gets a title written by that
    model after the chat's first complete reply, in the background (see
    :mod:`.titles`); ``close()`` waits for it.
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
        title_model: str | None = None,
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
        #: Who answers (calibrations are kept per server and model).
        self.server = server_of(getattr(client, "base_url", None))
        self._calibrations: dict[str, Calibration] = {}
        self._windows: dict[str, int | None] = {}
        # The branch as last seen, reused while the head has not moved, so a turn
        # neither re-reads nor re-counts the conversation.
        self._history: History | None = None
        self._summary: StoredMessage | None = None
        #: The model that writes titles (``None``: none are written).
        self.title_model = title_model
        self._title_started = False
        # Titles being written: threads (Chat) or tasks (AsyncChat), waited for by close().
        self._titles: list[Any] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conversation.id!r}, model={self.model!r})"

    # -- tokens and budget --------------------------------------------------------

    def _token_counter(self) -> TokenCounter | None:
        if not self._counter_resolved:
            if self.encoding == "server":
                key = getattr(self.client, "api_key", None)
                count = server_tokenizer(str(self.client.base_url), self.model, key if isinstance(key, str) else None)
                self._counter = TokenCounter(f"server:{self.server}:{self.model}", counter=count)
            else:
                # A model chatkeep does not know is counted with o200k_base and calibrated.
                self._counter = TokenCounter(self.encoding or encoding_for_model(self.model, default="o200k_base"))
            self._counter_resolved = True
        return self._counter

    def _exact(self, model: str) -> bool:
        """Whether the counts are OpenAI's own for this model: no calibration, no margin."""
        counter = self._token_counter()
        try:
            return counter is not None and counter.name == encoding_for_model(model)
        except UnknownEncoding:
            return False

    def _learn(self, model: str) -> None:
        """Read what the store knows of this server and model, and ask the server its window (blocking, once)."""
        if model not in self._calibrations:
            self._calibrations[model] = (Calibration(self.server, model) if self._exact(model)
                                         else self.conversation.store.calibration(self.server, model))
        if model not in self._windows and self.context_window is None and self.budget is None:
            # Only a policy that plans to a budget needs the window before the call; the rest learn
            # it from the server's answer if the conversation ever outgrows it.
            self._windows[model] = self._stated_window(model) if self.policy.needs_budget else self._table_window(model)

    @staticmethod
    def _table_window(model: str) -> int | None:
        try:
            return context_window(model)
        except UnknownContextWindow:
            return None

    def _stated_window(self, model: str) -> int | None:
        try:
            return context_window(model, open_models=False)
        except UnknownContextWindow:
            pass
        stated = None
        if not openai_hosted(self.server):
            key = getattr(self.client, "api_key", None)
            stated = server_window(str(self.client.base_url), model, key if isinstance(key, str) else None)
        return stated or open_model_window(model)

    def _calibration(self, model: str) -> Calibration:
        return self._calibrations.get(model) or Calibration(self.server, model)

    def _window(self, model: str) -> int | None:
        """The window to plan for: the one given, but never more than the server said it has."""
        stated = self._calibration(model).window
        given = self.context_window or self._windows.get(model)
        return min(given, stated) if given and stated else stated or given

    def _budget(self, model: str, options: Mapping[str, Any]) -> int | None:
        """The tokens, as chatkeep counts them, that a request's messages may take."""
        factor = 1.0 if self._exact(model) else self._calibration(model).factor
        if self.budget is not None:
            return int(self.budget / factor)
        window = self._window(model)
        if window is None:
            if self.policy.needs_budget:
                raise UnknownContextWindow(
                    f"the context window of model {model!r} is not known (the server does not say): "
                    "pass context_window=<tokens>"
                )
            return None
        reserve = options.get("max_completion_tokens") or options.get("max_tokens") or min(self.reply_reserve,
                                                                                           window // 4)
        return int((int(window) - int(reserve)) / factor)

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

    def _load(self, conversation: Conversation, model: str | None = None) -> History:
        """The branch to answer: the cached one while the stored head is still its tip, else read afresh.

        The turn takes the cache out and ``_checkin`` puts it back, so two turns
        running at once on one chat never share (and scramble) one history.
        Under a policy that reads only the branch's tail, a long branch is read
        only as far back as the budget reaches (see :mod:`chatkeep.context.loading`).
        """
        head_id = conversation.record.head_id
        history = self._cached_history(head_id)
        self._history = None
        if history is not None and history.skipped and not self._reads_tail():
            history = None  # the policy changed to one that needs the whole branch
        if history is None:
            tokens = self._tail_tokens(model or self.model)
            if tokens is None:
                history = self._adopt(conversation.history())
            else:
                counter = self._token_counter()
                history = read_tail(conversation.store, conversation.id, head_id, counter.message if counter else None,
                                    counter.name if counter else None, tokens)
                self._summary = None
            self._save_counts(conversation, history)
            if self._wants_summaries():
                found = conversation.store.find_messages(conversation.id, kind="summary")
                self._adopt_summary(history, found)
        return history

    def _reads_tail(self) -> bool:
        return bool(getattr(self.policy, "reads_tail", False))

    def _tail_tokens(self, model: str) -> int | None:
        """How many tokens of droppable messages a first read takes (``None``: the whole branch)."""
        if not self._reads_tail():
            return None
        try:
            budget = self._budget(model, self._options({})[1])
        except ChatkeepError:
            return None  # the turn reports it, after saving the message, as it always has
        return None if budget is None else max(budget, 1)

    def _save_counts(self, conversation: Conversation, history: History) -> None:
        unsaved = self._unsaved_counts(history)
        if unsaved:
            conversation.store.save_token_counts(unsaved)

    def _read_earlier(self, turn: Turn, ask: ReadEarlier) -> None:
        """Read the turn's branch further back, as the policy asked (blocking)."""
        read_earlier(turn.conversation.store, turn.conversation.id, turn.history, ask.tokens)
        self._save_counts(turn.conversation, turn.history)

    def _checkin(self, history: History) -> None:
        """Keep a finished turn's branch for the next turn (used only while the stored head is its tip)."""
        self._history = history

    def _observe(self, model: str, sent: Mapping[str, Any], usage: Mapping[str, Any] | None) -> None:
        """Keep how the server counted what was sent (for a model whose counts are not exact). Best effort."""
        counted = sent.get("tokens")
        reported = (usage or {}).get("prompt_tokens")
        if self._exact(model) or not isinstance(counted, int) or not isinstance(reported, int):
            return
        try:
            self._calibrations[model] = self.conversation.store.record_calibration(self.server, model, counted,
                                                                                  reported)
        except StoreError:
            pass  # the reply is saved; the calibration waits for the next one

    def _overflowed(self, model: str, counted: int, overflow: Overflow) -> None:
        """Keep what a server said when it refused a request as too long: its limit, and its count."""
        if self._exact(model):
            self._calibrations[model] = replace(self._calibration(model), window=overflow.limit or None)
            return
        try:
            self._calibrations[model] = self.conversation.store.record_calibration(
                self.server, model, counted if overflow.prompt else 0, overflow.prompt or 0, window=overflow.limit)
        except StoreError:
            self._calibrations[model] = replace(self._calibration(model), window=overflow.limit or None)

    def _prepare(self, message: Any, *, regenerate: bool = False, model: str | None = None) -> Turn:
        """Hold the tip, read the branch, plan the turn, save the new message.

        Blocking: ``AsyncChat`` runs it in one worker-thread call. Whatever the
        store cannot hold is refused here, before any model call is paid for.
        """
        store = self.conversation.store
        if self._wants_summaries():
            store.require("summaries")
        self._learn(model or self.model)
        lease = store.lease(self.conversation.id)
        try:
            conversation = Conversation(lease.store, self.conversation.id)
            turn = Turn(conversation, self._load(conversation, model), message, regenerate=regenerate, lease=lease,
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

    def _select(
        self, history: History, model: str, options: Mapping[str, Any]
    ) -> Context | SummaryRequest | ReadEarlier:
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
        reply = reply_of(stored)
        if self.title_model is not None and not self._title_started and stored.status == "complete":
            self._title_started = True  # once per chat: the background work reads whether one is still needed
            try:
                self.conversation.store.require("titles")
                self._start_title(stored)
            except Unsupported:
                pass  # the store keeps no titles (the tutorial's JSON file)
            except Exception as exc:  # the reply is saved: a title is never worth failing it
                report(self.conversation.id, exc, client_secrets(self.client))
        return reply

    def _start_title(self, reply: StoredMessage) -> None:
        """Start writing a title for the conversation without waiting for it (a thread, or a task)."""
        raise NotImplementedError
