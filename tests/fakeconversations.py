"""The loopback server's Conversations API and its memory of stored responses.

``FakeConversations`` (one per ``FakeOpenAI``, as ``server.conversations``)
answers what the API reference and the openai SDK's types
(``openai.types.conversations``) describe:

- ``POST /v1/conversations`` with up to 20 initial ``items`` and ``metadata``
  (16 keys at most, keys up to 64 characters, values strings up to 512);
- ``GET``, ``POST`` (metadata) and ``DELETE /v1/conversations/{id}``;
- ``GET /v1/conversations/{id}/items``: ``order`` (default ``desc``),
  ``limit`` (1-100, default 20), ``after`` (an item id), ``include``; a page
  is ``{"object": "list", "data", "first_id", "last_id", "has_more"}``;
- ``POST /v1/conversations/{id}/items`` with 1 to 20 ``items`` (answers the
  created items as a list);
- ``GET`` and ``DELETE /v1/conversations/{id}/items/{item_id}`` (deleting
  answers the conversation).

Items are stored as the server would return them: an easy message
(``{"role", "content": "text"}``) becomes a ``message`` item with content
parts, every item gets an id (``msg_``, ``fc_``...) and a status. An item sent
with an id the conversation already holds is refused as a duplicate, as the
real API does. Without ``include``, an input image's ``image_url`` and a
reasoning item's ``encrypted_content`` come back ``null``
(``message.input_image.image_url`` and ``reasoning.encrypted_content`` bring them).

``POST /v1/responses`` consults it first: a ``previous_response_id`` it never
stored (or that ``expire()`` marked) is a 404 ``previous_response_not_found``,
an unknown ``conversation`` a 404, both together a 400; a response with
``conversation`` appends its input and output items to it and names it in
``response.conversation``. Errors have OpenAI's shape
(``{"error": {"message", "type", "param", "code"}}``).

For tests: ``seed(items)`` makes a conversation holding items exactly as
given, ``items_of(id)`` reads one back whole, ``expire()`` forgets stored
responses, ``fail_after(n)`` answers a 500 after ``n`` more requests.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

__all__ = ["IMAGE_URLS", "MAX_ITEMS", "REASONING", "FakeConversations"]

#: The most items one request may add (create, or items create).
MAX_ITEMS = 20
IMAGE_URLS = "message.input_image.image_url"
REASONING = "reasoning.encrypted_content"

Answer = tuple[int, dict[str, Any]]

_PREFIXES = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_"}
_ROLES = ("user", "assistant", "system", "developer")


class Refused(Exception):
    """A request the API refuses: its status and error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.answer: Answer = (status, {"error": {"message": message, "type": "invalid_request_error",
                                                  "param": param, "code": code}})


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex + uuid.uuid4().hex[:16]


def _conversation_id(value: Any) -> str | None:
    """The id in a request's ``conversation``: a string or ``{"id": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _checked_metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise Refused(400, "Invalid 'metadata': expected an object.", param="metadata")
    if len(metadata) > 16:
        raise Refused(400, f"Invalid 'metadata': too many properties. Expected an object with at most 16 "
                           f"properties, but got an object with {len(metadata)} properties instead.",
                      param="metadata", code="object_above_max_properties")
    for key, value in metadata.items():
        if len(key) > 64:
            raise Refused(400, f"Invalid 'metadata': key {key[:20]!r}... is longer than 64 characters.",
                          param="metadata")
        if not isinstance(value, str) or len(value) > 512:
            raise Refused(400, f"Invalid 'metadata.{key}': expected a string of at most 512 characters.",
                          param=f"metadata.{key}")
    return dict(metadata)


def _checked_count(items: Any, param: str, *, required: bool) -> list[Any]:
    if items is None and not required:
        return []
    if not isinstance(items, list):
        raise Refused(400, f"Invalid '{param}': expected an array.", param=param)
    if len(items) > MAX_ITEMS:
        raise Refused(400, f"Invalid '{param}': array too long. Expected an array with maximum length {MAX_ITEMS}, "
                           f"but got an array with length {len(items)} instead.",
                      param=param, code="array_above_max_length")
    if required and not items:
        raise Refused(400, f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
                           "but got an empty array instead.", param=param, code="empty_array")
    return items


def _stored_item(item: Any, where: str, taken: set[str]) -> dict[str, Any]:
    """An input item as the server keeps and returns it: typed, with content parts, an id and a status."""
    if not isinstance(item, dict):
        raise Refused(400, f"Invalid '{where}': expected an object.", param=where)
    stored = copy.deepcopy(item)
    kind = stored.get("type") or ("message" if "role" in stored else None)
    if not isinstance(kind, str):
        raise Refused(400, f"Missing required parameter: '{where}.type'.", param=f"{where}.type",
                      code="missing_required_parameter")
    stored["type"] = kind
    if kind == "message":
        role = stored.get("role")
        if role not in _ROLES:
            raise Refused(400, f"Invalid value: {role!r}. Supported values are: {', '.join(map(repr, _ROLES))}.",
                          param=f"{where}.role", code="invalid_value")
        if isinstance(stored.get("content"), str):
            part = ({"type": "output_text", "text": stored["content"], "annotations": [], "logprobs": []}
                    if role == "assistant" else {"type": "input_text", "text": stored["content"]})
            stored["content"] = [part]
        elif not isinstance(stored.get("content"), list):
            raise Refused(400, f"Invalid '{where}.content': expected a string or an array.", param=f"{where}.content")
    if kind in ("message", "function_call", "function_call_output"):
        stored.setdefault("status", "completed")
    given = stored.get("id")
    if isinstance(given, str) and given:
        if given in taken:
            raise Refused(400, f"Duplicate item found with id {given}. Remove duplicate items from your input "
                               "and try again.", param="input")
    else:
        given = _new_id(_PREFIXES.get(kind, "item_"))
    stored["id"] = given
    taken.add(given)
    return stored


def _rendered(item: Mapping[str, Any], include: Iterable[str]) -> dict[str, Any]:
    """An item as an answer shows it: what ``include`` did not ask for left out."""
    shown = copy.deepcopy(dict(item))
    wanted = set(include)
    if shown.get("type") == "message" and IMAGE_URLS not in wanted:
        for part in shown.get("content") or ():
            if isinstance(part, dict) and part.get("type") == "input_image" and "image_url" in part:
                part["image_url"] = None
    if shown.get("type") == "reasoning" and REASONING not in wanted and "encrypted_content" in shown:
        shown["encrypted_content"] = None
    return shown


def _page(items: list[dict[str, Any]], include: Iterable[str], has_more: bool = False) -> dict[str, Any]:
    data = [_rendered(item, include) for item in items]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


def _query(query: str) -> tuple[dict[str, str], list[str]]:
    """Single-valued parameters, and ``include`` as the SDK sends it (``include[]=a&include[]=b``) or repeated."""
    parsed = parse_qs(query, keep_blank_values=True)
    include = parsed.pop("include[]", []) + parsed.pop("include", [])
    return {key: values[-1] for key, values in parsed.items()}, include


class FakeConversations:
    """Server conversations, their items, and which stored responses ``previous_response_id`` may name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.conversations: dict[str, dict[str, Any]] = {}
        self.items: dict[str, list[dict[str, Any]]] = {}
        #: Stored responses (``store`` not false): response id -> whether it has expired.
        self.responses: dict[str, bool] = {}
        #: ``fail_after``: how many more conversation requests succeed before one gets a 500.
        self._failing: int | None = None

    # -- for tests -----------------------------------------------------------------------------

    def seed(self, items: Iterable[dict[str, Any]], *, metadata: dict[str, str] | None = None) -> str:
        """A conversation holding ``items`` exactly as given (ids kept), as if made long ago; its id."""
        conversation_id = _new_id("conv_")
        with self._lock:
            self.conversations[conversation_id] = {"id": conversation_id, "object": "conversation",
                                                   "created_at": int(time.time()) - 3600, "metadata": metadata or {}}
            self.items[conversation_id] = [copy.deepcopy(item) for item in items]
        return conversation_id

    def items_of(self, conversation_id: str) -> list[dict[str, Any]]:
        """A copy of a conversation's items, oldest first, everything included."""
        with self._lock:
            return copy.deepcopy(self.items[conversation_id])

    def fail_after(self, count: int) -> None:
        """Answer ``count`` more ``/v1/conversations`` requests, then one 500 (a push cut off midway)."""
        with self._lock:
            self._failing = count

    def expire(self, response_id: str | None = None) -> None:
        """Forget one stored response (default: all), as the API does after 30 days."""
        with self._lock:
            for known in self.responses:
                if response_id is None or known == response_id:
                    self.responses[known] = True

    # -- HTTP ---------------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: str, body: Any) -> Answer | None:
        """The answer to a ``/v1/conversations`` request, or None for other paths."""
        parts = path.split("/")
        if parts[:3] != ["", "v1", "conversations"] or len(parts) > 6:
            return None
        params, include = _query(query)
        try:
            with self._lock:
                if self._failing is not None:
                    self._failing -= 1
                    if self._failing < 0:
                        self._failing = None
                        return 500, {"error": {"message": "The server had an error while processing your request.",
                                               "type": "server_error", "param": None, "code": None}}
                return self._answer(method, parts[3:], params, include, body if isinstance(body, dict) else {})
        except Refused as refused:
            return refused.answer

    def _answer(self, method: str, parts: list[str], params: dict[str, str], include: list[str],
                body: dict[str, Any]) -> Answer:
        if not parts:
            if method != "POST":
                raise Refused(405, f"Invalid method for URL ({method} /v1/conversations)")
            return 200, self._create(body)
        conversation = self._conversation(parts[0])
        if len(parts) == 1:
            if method == "GET":
                return 200, dict(conversation)
            if method == "POST":
                if "metadata" not in body:
                    raise Refused(400, "Missing required parameter: 'metadata'.", param="metadata",
                                  code="missing_required_parameter")
                conversation["metadata"] = _checked_metadata(body["metadata"])
                return 200, dict(conversation)
            if method == "DELETE":
                del self.conversations[parts[0]], self.items[parts[0]]
                return 200, {"id": parts[0], "object": "conversation.deleted", "deleted": True}
        elif parts[1] == "items" and len(parts) == 2:
            if method == "GET":
                return 200, self._list(parts[0], params, include)
            if method == "POST":
                items = _checked_count(body.get("items"), "items", required=True)
                return 200, _page(self._append(parts[0], items, "items"), include)
        elif parts[1] == "items":
            index = self._item_index(parts[0], parts[2])
            if method == "GET":
                return 200, _rendered(self.items[parts[0]][index], include)
            if method == "DELETE":
                del self.items[parts[0]][index]
                return 200, dict(conversation)
        raise Refused(404, f"Invalid URL ({method} /v1/conversations/{'/'.join(parts)})")

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        items = _checked_count(body.get("items"), "items", required=False)
        metadata = _checked_metadata(body.get("metadata"))
        conversation_id = _new_id("conv_")
        taken: set[str] = set()
        stored = [_stored_item(item, f"items[{n}]", taken) for n, item in enumerate(items)]
        conversation = {"id": conversation_id, "object": "conversation", "created_at": int(time.time()),
                        "metadata": metadata}
        self.conversations[conversation_id] = conversation
        self.items[conversation_id] = stored
        return dict(conversation)

    def _conversation(self, conversation_id: str) -> dict[str, Any]:
        found = self.conversations.get(conversation_id)
        if found is None:
            raise Refused(404, f"Conversation with id '{conversation_id}' not found.")
        return found

    def _item_index(self, conversation_id: str, item_id: str) -> int:
        for index, item in enumerate(self.items[conversation_id]):
            if item.get("id") == item_id:
                return index
        raise Refused(404, f"Item with id '{item_id}' not found.")

    def _append(self, conversation_id: str, items: list[Any], param: str) -> list[dict[str, Any]]:
        """Store items at the end of a conversation, all or (one refused) none; the stored items."""
        taken = {str(item.get("id")) for item in self.items[conversation_id]}
        stored = [_stored_item(item, f"{param}[{n}]", taken) for n, item in enumerate(items)]
        self.items[conversation_id] += stored
        return stored

    def _list(self, conversation_id: str, params: dict[str, str], include: list[str]) -> dict[str, Any]:
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise Refused(400, f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order",
                          code="invalid_value")
        try:
            limit = int(params.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise Refused(400, f"Invalid 'limit': expected an integer from 1 to 100, got {params.get('limit')!r}.",
                          param="limit")
        items = self.items[conversation_id] if order == "asc" else self.items[conversation_id][::-1]
        start = 0
        if params.get("after"):
            ids = [item.get("id") for item in items]
            if params["after"] not in ids:
                raise Refused(404, f"Item with id '{params['after']}' not found.", param="after")
            start = ids.index(params["after"]) + 1
        return _page(items[start:start + limit], include, has_more=start + limit < len(items))

    # -- POST /v1/responses ---------------------------------------------------------------------------

    def refusal(self, body: dict[str, Any]) -> Answer | None:
        """The error a Responses request gets before any model runs, or None."""
        conversation_id = _conversation_id(body.get("conversation"))
        previous = body.get("previous_response_id")
        with self._lock:
            if previous is not None and conversation_id is not None:
                return Refused(400, "Mutually exclusive parameters: Ensure you are only providing one of: "
                                    "'previous_response_id' or 'conversation'.", param="conversation",
                               code="mutually_exclusive_parameters").answer
            if previous is not None and self.responses.get(previous, True):
                return Refused(404, f"Previous response with id '{previous}' not found.",
                               param="previous_response_id", code="previous_response_not_found").answer
            if conversation_id is None:
                return None
            if conversation_id not in self.conversations:
                return Refused(404, f"Conversation with id '{conversation_id}' not found.",
                               param="conversation").answer
            taken = {str(item.get("id")) for item in self.items[conversation_id]}
            try:
                for number, item in enumerate(self._input(body)):
                    _stored_item(item, f"input[{number}]", taken)
            except Refused as refused:
                return refused.answer
        return None

    @staticmethod
    def _input(body: dict[str, Any]) -> list[Any]:
        given = body.get("input")
        if isinstance(given, str):
            return [{"role": "user", "content": given}]
        return list(given) if isinstance(given, list) else []

    def record(self, body: dict[str, Any], response: dict[str, Any]) -> None:
        """Keep a finished response: remember it for ``previous_response_id``, and add it to its conversation."""
        conversation_id = _conversation_id(body.get("conversation"))
        with self._lock:
            if body.get("store") is not False:
                self.responses[response["id"]] = False
            if conversation_id is None or conversation_id not in self.conversations:
                return
            response["conversation"] = {"id": conversation_id}
            self._append(conversation_id, self._input(body), "input")
            self.items[conversation_id] += copy.deepcopy(response["output"])
