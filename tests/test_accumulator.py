"""Folding streamed chunks: set-once fields, concatenated text, and servers that repeat themselves."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk

from chatkeep.client import ReplyAccumulator


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> ChatCompletionChunk:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return ChatCompletionChunk.model_validate(
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": choices, **extra}
    )


def test_a_server_that_repeats_role_id_and_name_in_every_delta() -> None:
    # llama.cpp's server sends the whole call header with every fragment; the SDK's
    # own accumulator then writes the name nine times and the role twice.
    acc = ReplyAccumulator()
    for fragment in ['{"ci', 'ty": ', '"Paris"}']:
        acc.feed(chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_xyz", "type": "function", "function": {"name": "get_weather", "arguments": fragment}}
        ]}))
    acc.feed(chunk({}, finish="tool_calls"))
    assert acc.finish().message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_xyz", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
    }


def test_usage_model_and_server_extras_are_kept() -> None:
    acc = ReplyAccumulator()
    acc.feed(chunk({"role": "assistant", "reasoning_content": "Think"}))
    acc.feed(chunk({"reasoning_content": "ing.", "content": "Hi"}))
    acc.feed(chunk({}, finish="stop"))
    acc.feed(chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}))
    record = acc.finish()
    assert (record.status, record.finish_reason, record.model) == ("complete", "stop", "m")
    assert record.usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    assert record.metadata["response_extra"] == {"reasoning_content": "Thinking."}
    assert record.message == {"role": "assistant", "content": "Hi"}


def test_without_a_finish_reason_the_reply_is_incomplete() -> None:
    acc = ReplyAccumulator()
    acc.feed(chunk({"role": "assistant", "content": "Half"}))
    assert not acc.done and acc.finish().status == "incomplete"


@given(text=st.text(min_size=1), cuts=st.lists(st.integers(min_value=1, max_value=5), max_size=20))
def test_any_split_of_the_text_folds_back_to_it(text: str, cuts: list[int]) -> None:
    acc, pieces, rest = ReplyAccumulator(), [], text
    for size in cuts:
        pieces.append(rest[:size])
        rest = rest[size:]
    pieces.append(rest)
    deltas = [acc.feed(chunk({"content": piece})) for piece in pieces]
    acc.feed(chunk({}, finish="stop"))
    assert "".join(d for d in deltas if d) == text == acc.finish().message["content"]
