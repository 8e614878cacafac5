"""Validation of OpenAI chat message dicts: what passes, and the field each error names."""

from __future__ import annotations

from typing import Any

import pytest

from chatkeep import MessageError, message_text, validate_message, validate_messages

VALID: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
    {"role": "user", "content": "hi", "name": "ana"},
    {"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-abc", "filename": "a.pdf"}},
    ]},
    {"role": "user", "content": [{"type": "video_url", "video_url": {"url": "x"}}]},  # server extension
    {"role": "assistant", "content": "hello"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "call_2", "type": "custom", "custom": {"name": "g", "input": "raw"}},
    ]},
    {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}], "refusal": "no"},
    {"role": "assistant", "audio": {"id": "audio_1"}},
    {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "42"}]},
    {"role": "function", "name": "f", "content": "42"},
    {"role": "user", "content": "hi", "x_custom": {"kept": [1, 2]}},
]

INVALID: list[tuple[Any, str]] = [
    ({"content": "no role"}, "message.role: expected one of"),
    ({"role": "robot", "content": "x"}, "message.role: unknown role 'robot'"),
    ({"role": "user"}, "message.content: a user message needs content"),
    ({"role": "user", "content": 5}, "message.content: expected a string or a list of parts, got int"),
    ({"role": "user", "content": [{"text": "x"}]}, "message.content[0].type: expected a string"),
    ({"role": "user", "content": [{"type": "text", "text": 1}]}, "message.content[0].text: expected a string"),
    ({"role": "user", "content": [{"type": "refusal", "refusal": "x"}]},
     "message.content[0].type: 'refusal' parts are not allowed here"),
    ({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
     "message.content[0].type: 'image_url' parts are not allowed here"),
    ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "max"}}]},
     "message.content[0].image_url.detail: expected 'auto', 'low' or 'high'"),
    ({"role": "user", "content": [{"type": "file", "file": {}}]}, "message.content[0].file: expected file_data or file_id"),
    ({"role": "user", "content": "x", "name": 3}, "message.name: expected a string, got int"),
    ({"role": "assistant"}, "message: an assistant message needs content, tool_calls"),
    ({"role": "assistant", "tool_calls": {"id": "x"}}, "message.tool_calls: expected a list, got dict"),
    ({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}]},
     "message.tool_calls[0].function.arguments: expected a string, got dict"),
    ({"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": ""}}]},
     "message.tool_calls[0].id: expected a string, got null"),
    ({"role": "assistant", "tool_calls": [{"id": "c", "type": "mcp"}]},
     "message.tool_calls[0].type: expected 'function' or 'custom', got 'mcp'"),
    ({"role": "assistant", "audio": {"id": 1}}, "message.audio.id: expected a string, got int"),
    ({"role": "tool", "content": "42"}, "message.tool_call_id: expected a string, got null"),
    ({"role": "function", "content": "42"}, "message.name: expected a string, got null"),
    ("hello", "message: expected a message object, got str"),
]


@pytest.mark.parametrize("message", VALID, ids=lambda m: m["role"])
def test_valid_messages_pass_unchanged(message: dict[str, Any]) -> None:
    assert validate_message(message) == message


@pytest.mark.parametrize(("message", "error"), INVALID, ids=[e for _, e in INVALID])
def test_invalid_messages_name_the_field(message: Any, error: str) -> None:
    with pytest.raises(MessageError) as caught:
        validate_message(message)
    assert str(caught.value).startswith(error)


def test_errors_in_a_list_name_the_index() -> None:
    messages = [{"role": "user", "content": "hi"}] * 3 + [
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 1}}]}
    ]
    with pytest.raises(MessageError, match=r"^messages\[3\]\.tool_calls\[0\]\.function\.arguments: expected a string"):
        validate_messages(messages)


def test_validation_returns_a_copy_the_caller_cannot_change() -> None:
    original = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    checked = validate_message(original)
    checked["content"][0]["text"] = "changed"
    assert original["content"][0]["text"] == "hi"


def test_sdk_objects_become_plain_dicts() -> None:
    from openai.types.chat import ChatCompletionMessage

    sdk = ChatCompletionMessage.model_validate({"role": "assistant", "content": "hello", "refusal": None})
    assert validate_message(sdk) == {"role": "assistant", "content": "hello", "refusal": None}


def test_message_text_covers_parts_refusals_and_tool_calls() -> None:
    message = {
        "role": "assistant",
        "content": [{"type": "text", "text": "Checking."}],
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}],
    }
    assert message_text(message) == 'Checking.\nweather\n{"city": "Paris"}'


def test_only_assistant_messages_carry_tool_calls() -> None:
    # Found by fuzzing the importers: message_text then raised a TypeError inside the store.
    with pytest.raises(MessageError, match=r"message\.tool_calls: only assistant messages carry tool_calls"):
        validate_message({"role": "user", "content": "", "tool_calls": 1})
