"""The OpenAI chat message shape: validation, normalization and searchable text.

A message is the plain dict the Chat Completions API takes and returns. chatkeep
checks the fields it knows and leaves every other key alone, so a field a newer
API adds survives storage and comes back unchanged.

>>> validate_message({"role": "user", "content": "hi"})
{'role': 'user', 'content': 'hi'}
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypedDict, Union

from .errors import MessageError

__all__ = [
    "ROLES",
    "check_json_value",
    "MessageDict",
    "message_text",
    "plain_text_message",
    "to_message_dict",
    "user_message",
    "validate_message",
    "validate_messages",
]

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
ROLES: frozenset[str] = frozenset(("system", "developer", "user", "assistant", "tool", "function"))

#: A chat message as the API sees it. Only ``role`` is always present.
MessageDict = dict[str, Any]


class FunctionCall(TypedDict):
    name: str
    arguments: str


class ToolCall(TypedDict, total=False):
    id: str
    type: str
    function: FunctionCall
    custom: dict[str, Any]


# Which content part types each role may send; other roles take a string only.
_PARTS_BY_ROLE: dict[str, frozenset[str]] = {
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "assistant": frozenset({"text", "refusal"}),
    "tool": frozenset({"text"}),
}
_KNOWN_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})


def _fail(field: str, reason: str) -> MessageError:
    return MessageError(field, reason)


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _expect_str(value: object, field: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise _fail(field, f"expected a string, got {_type_name(value)}")


def _expect_mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(field, f"expected an object, got {_type_name(value)}")
    return value


def _check_part(part: object, field: str, allowed: frozenset[str]) -> None:
    part = _expect_mapping(part, field)
    kind = part.get("type")
    if not isinstance(kind, str):
        raise _fail(f"{field}.type", "expected a string naming the part type")
    if kind in _KNOWN_PART_TYPES and kind not in allowed:
        allowed_list = ", ".join(sorted(allowed))
        raise _fail(f"{field}.type", f"{kind!r} parts are not allowed here (allowed: {allowed_list})")
    checker = _PART_CHECKS.get(kind)
    if checker is not None:
        checker(part, field)
    # Unknown part types pass: OpenAI-compatible servers add their own (video_url, ...).


def _check_text_part(part: Mapping[str, Any], field: str) -> None:
    _expect_str(part.get("text"), f"{field}.text")


def _check_refusal_part(part: Mapping[str, Any], field: str) -> None:
    _expect_str(part.get("refusal"), f"{field}.refusal")


def _check_image_part(part: Mapping[str, Any], field: str) -> None:
    image = _expect_mapping(part.get("image_url"), f"{field}.image_url")
    _expect_str(image.get("url"), f"{field}.image_url.url")
    detail = image.get("detail")
    if detail is not None and detail not in ("auto", "low", "high"):
        raise _fail(f"{field}.image_url.detail", "expected 'auto', 'low' or 'high'")


def _check_audio_part(part: Mapping[str, Any], field: str) -> None:
    audio = _expect_mapping(part.get("input_audio"), f"{field}.input_audio")
    _expect_str(audio.get("data"), f"{field}.input_audio.data")
    _expect_str(audio.get("format"), f"{field}.input_audio.format")


def _check_file_part(part: Mapping[str, Any], field: str) -> None:
    file = _expect_mapping(part.get("file"), f"{field}.file")
    for key in ("file_data", "file_id", "filename"):
        _expect_str(file.get(key), f"{field}.file.{key}", optional=True)
    if not any(file.get(key) for key in ("file_data", "file_id")):
        raise _fail(f"{field}.file", "expected file_data or file_id")


_PART_CHECKS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "text": _check_text_part,
    "refusal": _check_refusal_part,
    "image_url": _check_image_part,
    "input_audio": _check_audio_part,
    "file": _check_file_part,
}


def _check_content(message: Mapping[str, Any], field: str, role: str, *, required: bool) -> None:
    if "content" not in message or message["content"] is None:
        if required:
            raise _fail(f"{field}.content", f"a {role} message needs content")
        return
    content = message["content"]
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail(f"{field}.content", f"expected a string or a list of parts, got {_type_name(content)}")
    if role == "function":
        raise _fail(f"{field}.content", "a function message takes a string")
    for i, part in enumerate(content):
        _check_part(part, f"{field}.content[{i}]", _PARTS_BY_ROLE[role])


def _check_tool_call(call: object, field: str) -> None:
    call = _expect_mapping(call, field)
    _expect_str(call.get("id"), f"{field}.id")
    kind = call.get("type", "function")
    if kind == "function":
        function = _expect_mapping(call.get("function"), f"{field}.function")
        _expect_str(function.get("name"), f"{field}.function.name")
        _expect_str(function.get("arguments"), f"{field}.function.arguments")
    elif kind == "custom":
        custom = _expect_mapping(call.get("custom"), f"{field}.custom")
        _expect_str(custom.get("name"), f"{field}.custom.name")
        _expect_str(custom.get("input"), f"{field}.custom.input")
    else:
        raise _fail(f"{field}.type", f"expected 'function' or 'custom', got {kind!r}")


def _check_assistant(message: Mapping[str, Any], field: str) -> None:
    _check_content(message, field, "assistant", required=False)
    _expect_str(message.get("refusal"), f"{field}.refusal", optional=True)
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise _fail(f"{field}.tool_calls", f"expected a list, got {_type_name(calls)}")
        for i, call in enumerate(calls):
            _check_tool_call(call, f"{field}.tool_calls[{i}]")
    function_call = message.get("function_call")
    if function_call is not None:
        function_call = _expect_mapping(function_call, f"{field}.function_call")
        _expect_str(function_call.get("name"), f"{field}.function_call.name")
        _expect_str(function_call.get("arguments"), f"{field}.function_call.arguments")
    audio = message.get("audio")
    if audio is not None:
        _expect_str(_expect_mapping(audio, f"{field}.audio").get("id"), f"{field}.audio.id")
    if not any(message.get(key) is not None for key in ("content", "tool_calls", "function_call", "audio", "refusal")):
        raise _fail(field, "an assistant message needs content, tool_calls, function_call, audio or refusal")


_JSON_SCALARS = (str, int, float, bool, type(None))
_PLAIN_SCALARS = frozenset(_JSON_SCALARS)


def _plain_json(value: object) -> bool:
    """Whether ``value`` is built of plain JSON types only (subclasses go to the slower walk)."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if isinstance(value, dict):
        return kind is dict and all(type(key) is str and _plain_json(child) for key, child in value.items())
    if isinstance(value, list):
        return kind is list and all(_plain_json(child) for child in value)
    return False


def _copy_tree(value: Any) -> Any:
    """A deep copy of nested dicts and lists; scalars are immutable and shared, anything else is deep-copied.

    ``copy.deepcopy`` does the same for a message, at several times the cost: it
    keeps a memo of every object for shared references and cycles, which JSON has none of.
    """
    if isinstance(value, dict):
        return {key: _copy_tree(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_copy_tree(child) for child in value]
    if type(value) in _PLAIN_SCALARS:
        return value
    return copy.deepcopy(value)


def check_json_value(value: object, field: str) -> None:
    """Raise ``MessageError`` naming the first place in ``value`` JSON cannot hold as it is.

    JSON objects have string keys only (``{7: ...}`` would come back as
    ``{"7": ...}``), and bytes, dates, sets and tuples have no JSON form that
    reads back as the same value: they are refused, never rewritten.
    """
    try:
        if _plain_json(value):
            return  # the common case, checked without naming every place on the way
    except RecursionError:
        pass  # the walk below needs no recursion
    stack: list[tuple[object, str]] = [(value, field)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise _fail(f"{where}[{key!r}]", f"object keys must be strings, got {_type_name(key)}")
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
        elif not isinstance(item, _JSON_SCALARS):
            hint = "a list" if isinstance(item, (tuple, set, frozenset)) else "a string, number, true/false or null"
            raise _fail(where, f"{_type_name(item)} is not a JSON value: use {hint}")


def validate_message(message: object, *, field: str = "message") -> MessageDict:
    """Check one message and return a normalized deep copy of it.

    Normalizing turns an SDK object (anything with ``model_dump``) or another
    mapping into a plain dict; keys chatkeep does not know are kept as they are.
    Raises :class:`MessageError` naming the field, such as
    ``messages[3].tool_calls[0].function.arguments: expected a string``.
    """
    message = to_message_dict(message, field=field)
    check_json_value(message, field)
    role = message.get("role")
    if not isinstance(role, str):
        raise _fail(f"{field}.role", "expected one of " + ", ".join(sorted(ROLES)))
    if role not in ROLES:
        raise _fail(f"{field}.role", f"unknown role {role!r} (expected one of {', '.join(sorted(ROLES))})")
    _expect_str(message.get("name"), f"{field}.name", optional=role != "function")
    if role != "assistant" and message.get("tool_calls") is not None:
        raise _fail(f"{field}.tool_calls", "only assistant messages carry tool_calls")
    if role == "assistant":
        _check_assistant(message, field)
    elif role == "function":
        _check_content(message, field, role, required=False)
    else:
        _check_content(message, field, role, required=True)
    if role == "tool":
        _expect_str(message.get("tool_call_id"), f"{field}.tool_call_id")
    return message


#: The roles whose message may be a role and a text alone (a tool or function message needs more).
_TEXT_ROLES = frozenset(("system", "developer", "user", "assistant"))


def plain_text_message(message: object) -> tuple[str, str] | None:
    """``(role, text)`` when ``message`` is exactly ``{"role": ..., "content": "text"}`` (a plain dict, a text role).

    The commonest message, which :func:`validate_message` accepts as it is:
    importers and appends check it this way instead of walking it. ``None`` for
    any other shape.
    """
    if type(message) is not dict or len(message) != 2:
        return None
    role, content = message.get("role"), message.get("content")
    if type(role) is not str or role not in _TEXT_ROLES or type(content) is not str:
        return None
    return role, content


def validate_messages(messages: Iterable[object], *, field: str = "messages") -> list[MessageDict]:
    """Validate a list of messages; errors name the index, as ``messages[3].role``."""
    if isinstance(messages, (str, bytes, Mapping)):
        raise _fail(field, f"expected a list of messages, got {_type_name(messages)}")
    return [validate_message(m, field=f"{field}[{i}]") for i, m in enumerate(messages)]


def to_message_dict(message: object, *, field: str = "message") -> MessageDict:
    """Return a plain-dict deep copy of a message given as a mapping or an SDK object."""
    if hasattr(message, "model_dump") and not isinstance(message, Mapping):
        # SDK models carry unset fields as None; the API's own replies omit them.
        dumped = message.model_dump(exclude_unset=True, mode="json", warnings=False)
        if isinstance(dumped, dict):
            return dumped
    if not isinstance(message, Mapping):
        raise _fail(field, f"expected a message object, got {_type_name(message)}")
    try:
        return _copy_tree(dict(message))  # type: ignore[no-any-return]
    except RecursionError:
        raise _fail(field, "nested too deeply to store") from None


def user_message(content: Union[str, list[dict[str, Any]]], *, name: str | None = None) -> MessageDict:
    """Build a user message from text or a list of content parts."""
    message: MessageDict = {"role": "user", "content": content}
    if name is not None:
        message["name"] = name
    return message


def _content_text(content: object) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                for key in ("text", "refusal"):
                    if isinstance(part.get(key), str):
                        texts.append(part[key])
    return texts


def message_text(message: Mapping[str, Any]) -> str:
    """Return the searchable plain text of a message: its text, refusal and tool calls."""
    texts = _content_text(message.get("content"))
    if isinstance(message.get("refusal"), str):
        texts.append(message["refusal"])
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, Mapping):
            body = call.get("function") or call.get("custom") or {}
            if isinstance(body, Mapping):
                texts.extend(str(body[k]) for k in ("name", "arguments", "input") if body.get(k))
    function_call = message.get("function_call")
    if isinstance(function_call, Mapping):
        texts.extend(str(function_call[k]) for k in ("name", "arguments") if function_call.get(k))
    return "\n".join(t for t in texts if t)
