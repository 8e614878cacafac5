"""``capture(client)``: the calls an existing program makes, kept as resumable conversations.

```python
client = chatkeep.capture(OpenAI())          # the one line to change
client.chat.completions.create(model="gpt-4o", messages=messages)   # kept, with its reply
```

The captured client is the SDK client itself (a copy of it, of the same
class), with one difference: each Chat Completions and Responses request
passes through chatkeep on its way out and back. Nothing it sends or
receives is altered; streams are the same objects, their chunks counted as
they pass. What is kept: the request's messages or input items (saved before
the call), and the reply with its model, usage, latency and finish reason; a
stream cut short as ``incomplete``; a failed call as an unanswered turn.

Threading needs no ids. Every captured message is stored with a chained hash
of the path to it (a hash of its parent's hash and its own canonical JSON),
so a request whose messages extend a stored path continues that conversation,
one that departs from it at message k branches there, and anything else
starts a new conversation; finding it costs an indexed lookup or two.
``previous_response_id`` and ``conversation=`` requests join the conversation
that holds that response or server conversation. ``capture(client,
conversation="support-42")`` puts every call in that conversation.

chatkeep never gets in the caller's way: a failure to store (a full disk, a
locked database, a bug) is logged once per cause on the ``chatkeep.capture``
logger and the call goes on as if chatkeep were not there. ``CHATKEEP_CAPTURE=0``
turns capture off; ``models=`` limits it to some models.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import inspect
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..errors import ChatkeepError
from ..items import ITEM_KIND, as_item, input_items
from ..messages import to_message_dict, validate_message
from ..redact import client_secrets
from ..store.base import Draft, MessageKind, StoredMessage
from ..store.protocol import Store
from .responses_turn import ResponseAccumulator, record_from_response
from .turn import ReplyAccumulator, ReplyRecord, describe_error, reply_from_completion

__all__ = ["capture"]

log = logging.getLogger("chatkeep.capture")

SOURCE = {"source": "capture"}
_MEMO_SIZE = 20_000


def capture(client: Any, *, store: Store | None = None, conversation: str | None = None,
            models: Iterable[str] | None = None) -> Any:
    """The SDK ``client`` (``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``...), keeping every call in ``store``.

    ``store`` defaults to ``open_store()``; ``conversation`` names the one
    conversation every call goes to (made when missing); ``models`` keeps only
    calls to those models (names or prefixes). With ``CHATKEEP_CAPTURE=0`` in
    the environment the client is returned as it is.
    """
    if os.environ.get("CHATKEEP_CAPTURE", "").strip().lower() in ("0", "false", "no", "off"):
        return client
    if store is None:
        from ..store import open_store

        store = open_store()
    store.require("conversations")  # the tutorial's single-list file cannot hold what capture writes
    recorder = Recorder(store, conversation=conversation, models=tuple(models) if models else None,
                        secrets=client_secrets(client))
    return _wrap(client, recorder)


def _wrap(client: Any, recorder: Recorder) -> Any:
    captured = client.copy()
    send, copy_client = captured.request, captured.copy
    if inspect.iscoroutinefunction(send):
        async def request(cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
            return await recorder.arequest(send, cast_to, options, stream, stream_cls)
    else:
        def request(cast_to: Any, options: Any, *, stream: bool = False,  # type: ignore[misc]
                    stream_cls: Any = None) -> Any:
            return recorder.request(send, cast_to, options, stream, stream_cls)

    def copy(*args: Any, **kwargs: Any) -> Any:  # with_options() too: the copy keeps capturing
        return _wrap(copy_client(*args, **kwargs), recorder)

    captured.request, captured.copy, captured.with_options = request, copy, copy
    captured.chatkeep_store = recorder.store
    return captured


def _canonical(value: Any) -> Any:
    """A message as its hash sees it: SDK objects as dicts, absent-or-empty fields dropped."""
    if hasattr(value, "model_dump") and not isinstance(value, Mapping):
        value = value.model_dump(exclude_unset=True, mode="json", warnings=False)
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items() if v is not None and v != [] and v != {}}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def chained(previous: str, message: Any) -> str:
    """The chained hash of a message after ``previous`` (the hash of the path before it, or "")."""
    text = json.dumps(_canonical(message), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{previous}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Pending:
    """One call on its way: where its input was saved, and what its reply is chained to."""

    conversation_id: str
    parent_id: str | None  # the last input message, which the reply answers
    chain: str  # the hash of the path up to and including the input
    model: str | None
    responses: bool
    keys: tuple[str, ...] = ()  # extra keys for the reply's last message (response and server-conversation ids)
    saved: list[StoredMessage] = field(default_factory=list)


class Recorder:
    """Threads and stores captured calls; every store step is guarded so the caller never feels it."""

    def __init__(self, store: Store, *, conversation: str | None, models: tuple[str, ...] | None,
                 secrets: tuple[str, ...]) -> None:
        self.store, self.conversation, self.models, self.secrets = store, conversation, models, secrets
        self._hashes: collections.OrderedDict[int, tuple[Any, str, str]] = collections.OrderedDict()
        self._logged: set[str] = set()

    # -- the two shells ------------------------------------------------------------

    def request(self, send: Callable[..., Any], cast_to: Any, options: Any, stream: bool, stream_cls: Any) -> Any:
        pending = self._guard(lambda: self.begin(options))
        started = time.perf_counter()
        try:
            result = send(cast_to, options, stream=stream, stream_cls=stream_cls)
        except BaseException as exc:
            if pending is not None:
                self._guard(partial(self.fail, pending, exc))
            raise
        if pending is not None:
            self._guard(lambda: self.finish(pending, result, started))
        return result

    async def arequest(self, send: Callable[..., Any], cast_to: Any, options: Any, stream: bool,
                       stream_cls: Any) -> Any:
        from ..store.threads import run_blocking

        pending = await run_blocking(lambda: self._guard(lambda: self.begin(options)))
        started = time.perf_counter()
        try:
            result = await send(cast_to, options, stream=stream, stream_cls=stream_cls)
        except BaseException as exc:
            if pending is not None:
                await run_blocking(partial(self._guard, partial(self.fail, pending, exc)))
            raise
        if pending is not None:
            if hasattr(result, "__aiter__") and hasattr(result, "_iterator"):
                self._guard(lambda: self._watch_async_stream(pending, result, started))
            else:
                await run_blocking(lambda: self._guard(lambda: self.finish(pending, result, started)))
        return result

    def _guard(self, step: Callable[[], Any]) -> Any:
        """Run a store step; a failure is logged once per cause and never reaches the caller."""
        try:
            return step()
        except Exception as exc:  # noqa: BLE001 - capture must never break the caller's call
            cause = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if cause not in self._logged:
                self._logged.add(cause)
                log.warning("chatkeep could not keep a captured call (the call itself went on): %s", cause)
            return None

    # -- before the call -------------------------------------------------------------

    def begin(self, options: Any) -> Pending | None:
        """Thread the request and save its new input; None when it is not a call chatkeep keeps."""
        if str(getattr(options, "method", "")).lower() != "post":
            return None
        url = str(getattr(options, "url", ""))
        body = getattr(options, "json_data", None)
        if not isinstance(body, Mapping):
            return None
        model = body.get("model") if isinstance(body.get("model"), str) else None
        if self.models is not None and not (model and model.startswith(self.models)):
            return None
        if url.endswith("/chat/completions"):
            messages = [validate_message(to_message_dict(m)) for m in body.get("messages") or ()]
            return self._thread(messages, model, responses=False) if messages else None
        if url.endswith("/responses"):
            return self._begin_response(body, model)
        return None

    def _begin_response(self, body: Mapping[str, Any], model: str | None) -> Pending | None:
        raw = body.get("input")
        items = input_items(raw) if raw is not None else []
        server_conversation = body.get("conversation")
        if isinstance(server_conversation, Mapping):
            server_conversation = server_conversation.get("id")
        anchor = None
        if isinstance(body.get("previous_response_id"), str):
            anchor = f"response:{body['previous_response_id']}"
        elif isinstance(server_conversation, str):
            anchor = f"server-conversation:{server_conversation}"
        extra = (f"server-conversation:{server_conversation}",) if isinstance(server_conversation, str) else ()
        if anchor is None:
            pending = self._thread(items, model, responses=True)
        else:
            found = self.store.find_keys([anchor]).get(anchor)
            pending = self._continue(found, items, model, responses=True, chain=anchor)
        if pending is not None:
            pending.keys = extra
        return pending

    def _hash(self, previous: str, message: Any) -> str:
        """``chained`` with a memo: a message seen before (unchanged) is not serialized again."""
        key = id(message)
        hit = self._hashes.get(key)
        if hit is not None and hit[1] == previous and (hit[0] is message if not isinstance(message, dict)
                                                       else hit[0] == message):
            return hit[2]
        value = chained(previous, message)
        self._hashes[key] = (message if not isinstance(message, dict) else copy.deepcopy(message), previous, value)
        if len(self._hashes) > _MEMO_SIZE:
            self._hashes.popitem(last=False)
        return value

    def _thread(self, messages: Sequence[Any], model: str | None, *, responses: bool) -> Pending | None:
        hashes: list[str] = []
        previous = ""
        for message in messages:
            previous = self._hash(previous, message)
            hashes.append(previous)
        keys = [f"chain:{h}" for h in hashes]
        # Most requests extend the last one by a reply and a new message: look there first.
        found = self._scoped(self.store.find_keys(keys[-2:]))
        if not found:
            found = self._scoped(self.store.find_keys(keys))
        known = max((keys.index(key) for key in found), default=-1)
        where = found[keys[known]] if known >= 0 else None
        new = messages[known + 1:]
        return self._continue(where, new, model, responses=responses, chain=hashes[known] if known >= 0 else "",
                              hashes=hashes[known + 1:])

    def _scoped(self, found: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        if self.conversation is None:
            return found
        return {key: where for key, where in found.items() if where[0] == self.conversation}

    def _continue(self, where: tuple[str, str] | None, new: Sequence[Any], model: str | None, *, responses: bool,
                  chain: str, hashes: Sequence[str] | None = None) -> Pending:
        if where is None:
            conversation_id = self._conversation()
            parent = None
        else:
            conversation_id, parent = where
        if hashes is None:  # after a response id: the input's own chain starts from that anchor
            hashes, previous = [], chain
            for item in new:
                previous = self._hash(previous, item)
                hashes.append(previous)
        kind: MessageKind = ITEM_KIND if responses else "chat"
        bodies = [as_item(m) if responses else m for m in new]
        drafts = [Draft(body, kind=kind, metadata=SOURCE, keys=(f"chain:{h}",)) for body, h in zip(bodies, hashes)]
        saved = self.store.append_many(conversation_id, drafts, parent_id=parent) if drafts else []
        last = saved[-1].id if saved else parent
        return Pending(conversation_id, last, hashes[-1] if hashes else chain, model, responses, saved=saved)

    def _conversation(self) -> str:
        if self.conversation is None:
            return self.store.create_conversation(metadata=SOURCE).id
        try:
            self.store.get_conversation(self.conversation)
        except ChatkeepError:
            try:
                self.store.create_conversation(self.conversation, metadata=SOURCE)
            except ChatkeepError:
                self.store.get_conversation(self.conversation)  # another process made it meanwhile
        return self.conversation

    # -- after the call ------------------------------------------------------------------

    def fail(self, pending: Pending, exc: BaseException) -> None:
        if pending.saved:
            self.store.update_message(pending.saved[-1].id, status="error", error=describe_error(exc, self.secrets))

    def finish(self, pending: Pending, result: Any, started: float) -> None:
        """Keep the reply of a plain call, or watch a stream pass and keep it when it ends."""
        if hasattr(result, "_iterator") and hasattr(result, "__iter__") and hasattr(result, "close"):
            self._watch_stream(pending, result, started)
            return
        if hasattr(result, "parse") and hasattr(result, "http_response"):  # with_raw_response: read it once
            result = result.parse()
        if pending.responses:
            output = record_from_response(result)
            self._save_output(pending, output, (time.perf_counter() - started) * 1000)
        else:
            self._save_reply(pending, reply_from_completion(result), (time.perf_counter() - started) * 1000)

    def _save_reply(self, pending: Pending, record: ReplyRecord, latency_ms: float) -> None:
        chain = chained(pending.chain, record.message)
        self.store.append_many(pending.conversation_id, [Draft(
            record.message, status=record.status, model=record.model, usage=record.usage,
            latency_ms=round(latency_ms, 3), finish_reason=record.finish_reason,
            metadata={**record.metadata, **SOURCE}, keys=(f"chain:{chain}",),
        )], parent_id=pending.parent_id)

    def _save_output(self, pending: Pending, output: Any, latency_ms: float) -> None:
        drafts, previous = [], pending.chain
        last = len(output.items) - 1
        for index, item in enumerate(output.items):
            previous = chained(previous, item)
            keys = (f"chain:{previous}",)
            extra: dict[str, Any] = {}
            if index == last:
                keys += (*((f"response:{output.response_id}",) if output.response_id else ()), *pending.keys)
                extra = {"usage": output.usage, "latency_ms": round(latency_ms, 3),
                         "finish_reason": output.finish_reason}
            drafts.append(Draft(item, kind=ITEM_KIND, status=output.status, model=output.model,
                                metadata={"response_id": output.response_id, "output_index": index, **SOURCE},
                                keys=keys, **extra))
        self.store.append_many(pending.conversation_id, drafts, parent_id=pending.parent_id)

    def _watch_stream(self, pending: Pending, stream: Any, started: float) -> None:
        fold = ResponseAccumulator() if pending.responses else ReplyAccumulator()
        source, close = stream._iterator, stream.close

        def passing() -> Any:
            try:
                for event in source:
                    self._guard(partial(fold.feed, event))
                    yield event
            finally:
                self._guard(lambda: self._end_stream(pending, fold, started))

        watched = passing()

        def closing() -> None:
            watched.close()  # keep what arrived, now, then let the SDK close the connection
            close()

        stream._iterator, stream.close = watched, closing

    def _watch_async_stream(self, pending: Pending, stream: Any, started: float) -> None:
        from ..store.threads import run_blocking

        fold = ResponseAccumulator() if pending.responses else ReplyAccumulator()
        source, close = stream._iterator, stream.close

        async def passing() -> Any:
            try:
                async for event in source:
                    self._guard(partial(fold.feed, event))
                    yield event
            finally:
                await run_blocking(lambda: self._guard(lambda: self._end_stream(pending, fold, started)))

        watched = passing()

        async def closing() -> None:
            await watched.aclose()
            await close()

        stream._iterator, stream.close = watched, closing

    def _end_stream(self, pending: Pending, fold: Any, started: float) -> None:
        latency = (time.perf_counter() - started) * 1000
        if not fold.started:
            self.fail(pending, ChatkeepError("the stream ended before any reply arrived"))
        elif pending.responses:
            self._save_output(pending, fold.finish(), latency)
        else:
            self._save_reply(pending, fold.finish(), latency)
