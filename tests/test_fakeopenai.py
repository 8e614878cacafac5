"""The fake server, driven by the real openai SDK (no monkeypatching).

These tests also pin down what the SDK does with each fault, so that the
project's own error handling is written against observed behaviour.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeopenai import (
    FakeOpenAI,
    drop_after,
    end_without_done,
    error,
    html_200,
    json_for_stream,
    make_usage,
    malformed_json,
    malformed_sse,
    no_choices,
    openai_client,  # noqa: F401  (fixture, until a conftest provides it)
    openai_server,  # noqa: F401
    slow,
    text,
    tool_calls,
)

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}
TIME = {"id": "call_2", "name": "get_time", "arguments": '{"timezone": "Europe/Paris"}'}


def raw_events(client: openai.OpenAI, **kw: Any) -> list[Any]:
    """The streamed SSE `data:` payloads as sent on the wire (JSON decoded)."""
    kw = {"model": "gpt-4o", "messages": MESSAGES, "stream": True, **kw}
    with client.chat.completions.with_streaming_response.create(**kw) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    payloads = [line[len("data: ") :] for line in lines]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


# --- plain replies ----------------------------------------------------------


def test_plain_text_reply(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(text("Sunny, 24°C."))
    completion = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Sunny, 24°C."
    assert choice.message.refusal is None
    assert choice.message.annotations == []
    assert choice.finish_reason == "stop"
    assert completion.system_fingerprint
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_default_reply_after_script_runs_out(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(text("first"), text("second"))
    openai_server.default = text("fallback")
    contents = [
        openai_client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
        for _ in range(3)
    ]
    assert contents == ["first", "second", "fallback"]


def test_dated_model_and_usage_details(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    usage = make_usage(100, 20, cached=64, reasoning=12)
    openai_server.script(text("hi", model="gpt-4o-2024-08-06", usage=usage, finish_reason="length"))
    completion = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.model == "gpt-4o-2024-08-06"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 120
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 64
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 12


def test_make_usage_omits_details_unless_given() -> None:
    assert make_usage(3, 4) == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_refusal(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(text("", refusal="I can't help with that."))
    message = openai_client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message
    assert message.content is None
    assert message.refusal == "I can't help with that."
    openai_server.script(text("", refusal="I can't help with that."))
    chunks = list(openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.refusal or "" for c in chunks) == "I can't help with that."


def test_requests_are_recorded(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.5)
    list(openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    first, second = openai_server.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["authorization"] == "Bearer test-key"
    assert first.headers["content-type"] == "application/json"
    assert first.body == {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0.5}
    assert second.body["stream"] is True


def test_models_list_and_unknown_path(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    assert [m.id for m in openai_client.models.list()] == ["gpt-4o-mini", "gpt-4o"]
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.embeddings.create(model="text-embedding-3-small", input="x")
    assert caught.value.body == {
        "message": "Invalid URL (POST /v1/embeddings)", "type": "invalid_request_error",
        "param": None, "code": None,
    }
    assert [r.path for r in openai_server.requests] == ["/v1/models", "/v1/embeddings"]


def test_base_url_needs_a_started_server() -> None:
    with pytest.raises(RuntimeError):
        FakeOpenAI().base_url
    with FakeOpenAI() as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.base_url.endswith("/v1")


# --- streaming ----------------------------------------------------------------


def test_stream_deltas_concatenate_with_final_usage_chunk(
    openai_server: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    openai_server.script(text("The weather in Paris is sunny.", usage=make_usage(12, 7)))
    stream = openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    *with_choices, last = chunks
    assert with_choices[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == "The weather in Paris is sunny."
    assert [c.choices[0].finish_reason for c in with_choices][-2:] == [None, "stop"]
    assert all(c.usage is None for c in with_choices)
    assert last.choices == []
    assert last.usage is not None and last.usage.total_tokens == 19


def test_raw_stream_shape(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(text("abcdef", chunk_size=3))
    events = raw_events(openai_client, stream_options={"include_usage": True})
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    deltas = [c["choices"][0] for c in chunks[:-1]]
    assert deltas[0] == {
        "index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
        "logprobs": None, "finish_reason": None,
    }
    assert [d["delta"] for d in deltas[1:]] == [{"content": "abc"}, {"content": "def"}, {}]
    assert deltas[-1]["finish_reason"] == "stop"


def test_wire_framing(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.http_response.http_version == "HTTP/1.1"
    assert raw.headers["content-type"] == "application/json"
    assert int(raw.headers["content-length"]) == len(raw.http_response.content)
    with openai_client.chat.completions.with_streaming_response.create(
        model="m", messages=MESSAGES, stream=True
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers


def test_raw_stream_without_include_usage_has_no_usage_field(
    openai_server: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    events = raw_events(openai_client)
    assert events[-1] == "[DONE]"
    assert all("usage" not in c and len(c["choices"]) == 1 for c in events[:-1])


def test_stream_is_incremental(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    # 7 events 0.1 s apart: the first content delta must arrive long before the end.
    openai_server.script(text("abcdefgh", chunk_size=2, chunk_delay=0.1))
    start = time.monotonic()
    first_content_at = None
    for chunk in openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        if first_content_at is None and chunk.choices and chunk.choices[0].delta.content:
            first_content_at = time.monotonic() - start
    total = time.monotonic() - start
    assert first_content_at is not None
    assert total >= 0.5
    assert first_content_at + 0.3 < total


def test_stream_round_trips_any_text() -> None:
    # One server for all examples: hypothesis cannot reuse function-scoped fixtures.
    with FakeOpenAI() as server:
        client = server.client()

        @settings(max_examples=50, deadline=None)
        @given(content=st.text(max_size=60), chunk_size=st.integers(min_value=1, max_value=9))
        def check(content: str, chunk_size: int) -> None:
            server.script(text(content, chunk_size=chunk_size))
            stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream) == content

        check()


# --- tool calls ---------------------------------------------------------------


def test_tool_call_deltas_are_split_like_the_real_api(
    openai_server: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    openai_server.script(tool_calls([WEATHER, TIME], chunk_size=5))
    events = raw_events(openai_client)
    assert events[-1] == "[DONE]"
    choices = [e["choices"][0] for e in events[:-1]]
    assert choices[0]["delta"]["role"] == "assistant" and choices[0]["delta"]["content"] is None
    assert choices[-1] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}
    calls = [d for c in choices for d in c["delta"].get("tool_calls", [])]
    for index, expected in enumerate([WEATHER, TIME]):
        mine = [d for d in calls if d["index"] == index]
        assert mine[0] == {
            "index": index, "id": expected["id"], "type": "function",
            "function": {"name": expected["name"], "arguments": ""},
        }
        rest = mine[1:]
        assert len(rest) >= 3
        assert all(set(d) == {"index", "function"} and set(d["function"]) == {"arguments"} for d in rest)
        assert "".join(d["function"]["arguments"] for d in rest) == expected["arguments"]


def test_parallel_tool_calls_plain(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(tool_calls([WEATHER, TIME]))
    choice = openai_client.chat.completions.create(model="m", messages=MESSAGES).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        (WEATHER["id"], "function", WEATHER["name"], WEATHER["arguments"]),
        (TIME["id"], "function", TIME["name"], TIME["arguments"]),
    ]


def test_sdk_stream_helper_assembles_parallel_tool_calls(
    openai_server: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    openai_server.script(tool_calls([WEATHER, TIME], content="Let me check."))
    with openai_client.chat.completions.stream(model="m", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert [(c.id, c.function.arguments) for c in message.tool_calls or []] == [  # type: ignore[union-attr]
        (WEATHER["id"], WEATHER["arguments"]), (TIME["id"], TIME["arguments"])
    ]


# --- HTTP errors and retries --------------------------------------------------


def test_429_then_success_is_retried(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(error(429), text("after retry"))
    start = time.monotonic()
    completion = openai_client.chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == "after retry"
    assert time.monotonic() - start < 0.4  # retry-after-ms: 1 beats the SDK's 0.5 s backoff
    assert len(openai_server.requests) == 2
    assert [r.headers["x-stainless-retry-count"] for r in openai_server.requests] == ["0", "1"]


def test_500_without_retries_raises_internal_server_error(openai_server: FakeOpenAI) -> None:
    openai_server.script(error(500))
    with pytest.raises(openai.InternalServerError) as caught:
        openai_server.client(max_retries=0).chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 500
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "server_error"
    assert len(openai_server.requests) == 1


def test_503_exhausts_default_retries(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.default = error(503)
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(openai_server.requests) == 3


def test_client_errors_are_not_retried(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(error(400, "This model's maximum context length is 128000 tokens.",
                               code="context_length_exceeded"))
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.body == {
        "message": "This model's maximum context length is 128000 tokens.",
        "type": "invalid_request_error", "param": None, "code": "context_length_exceeded",
    }
    assert len(openai_server.requests) == 1


def test_error_with_custom_body_and_headers(openai_server: FakeOpenAI) -> None:
    openai_server.script(error(502, headers={"Content-Type": "text/html"}, body="<h1>Bad gateway</h1>"))
    with pytest.raises(openai.InternalServerError) as caught:
        openai_server.client(max_retries=0).chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["content-type"] == "text/html"
    assert caught.value.response.text == "<h1>Bad gateway</h1>"


def test_slow_reply_times_out(openai_server: FakeOpenAI) -> None:
    openai_server.script(slow(5))
    client = openai_server.client(max_retries=0, timeout=0.2)
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - start < 2


def test_close_interrupts_a_slow_handler() -> None:
    server = FakeOpenAI().start()
    server.script(slow(30))
    before = set(threading.enumerate())
    with pytest.raises(openai.APITimeoutError):
        server.client(max_retries=0, timeout=0.2).chat.completions.create(model="m", messages=MESSAGES)
    handlers = [t for t in threading.enumerate() if t not in before]
    assert handlers  # the handler still waits on its 30 s delay
    start = time.monotonic()
    server.close()
    for thread in handlers:
        thread.join(timeout=2)
    assert time.monotonic() - start < 1
    assert not any(t.is_alive() for t in handlers)


def test_close_interrupts_a_slow_stream() -> None:
    server = FakeOpenAI().start()
    server.script(text("abcdefgh", chunk_size=1, chunk_delay=10))
    before = set(threading.enumerate())
    stream = server.client().chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert next(stream).choices[0].delta.role == "assistant"
    handlers = [t for t in threading.enumerate() if t not in before]
    assert handlers
    start = time.monotonic()
    server.close()
    for thread in handlers:
        thread.join(timeout=2)
    assert time.monotonic() - start < 1
    assert not any(t.is_alive() for t in handlers)
    with pytest.raises(openai.APIConnectionError):
        next(stream)


def test_latency_delays_every_request(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.latency = 0.1
    start = time.monotonic()
    openai_client.chat.completions.create(model="m", messages=MESSAGES)
    openai_client.models.list()
    assert time.monotonic() - start >= 0.2


# --- broken transports and bodies ---------------------------------------------


def test_drop_after_raises_api_connection_error_mid_stream(
    openai_server: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    openai_server.script(drop_after(3, "Hello there, general Kenobi"))
    received: list[str] = []
    stream = openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    # 3 chunks: the role chunk plus two 4-character deltas.
    assert received == ["", "Hell", "o th"]
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    assert len(openai_server.requests) == 1  # a broken stream is never retried


def test_drop_after_on_a_plain_request_is_retried(openai_server: FakeOpenAI) -> None:
    # A connection error carries no retry-after header: the SDK's ~0.5 s backoff applies.
    openai_server.script(drop_after(1), text("second try"))
    completion = openai_server.client().chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == "second try"
    openai_server.script(drop_after(1))
    with pytest.raises(openai.APIConnectionError) as caught:
        openai_server.client(max_retries=0).chat.completions.create(model="m", messages=MESSAGES)
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)


def test_malformed_sse_raises_json_decode_error(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(malformed_sse(after=2))
    received = []
    stream = openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    # The SDK lets json's error escape: it is a ValueError, not an openai.OpenAIError.
    with pytest.raises(json.JSONDecodeError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2


def test_malformed_json_raises_json_decode_error(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(malformed_json())
    with pytest.raises(json.JSONDecodeError):
        openai_client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(openai_server.requests) == 1


def test_no_choices(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(no_choices(), no_choices())
    assert openai_client.chat.completions.create(model="m", messages=MESSAGES).choices == []
    chunks = list(openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert chunks and all(c.choices == [] for c in chunks)


def test_html_200_makes_create_return_a_str(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(html_200(), html_200())
    result: Any = openai_client.chat.completions.create(model="m", messages=MESSAGES)
    assert isinstance(result, str) and result.startswith("<!DOCTYPE html>")
    assert list(openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True)) == []


def test_json_for_stream_yields_nothing(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(json_for_stream("hello"), json_for_stream("hello"))
    assert list(openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True)) == []
    plain = openai_client.chat.completions.create(model="m", messages=MESSAGES)
    assert plain.choices[0].message.content == "hello"


def test_end_without_done_ends_quietly(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_server.script(end_without_done("partial answer"))
    chunks = list(openai_client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "partial answer"
    assert all(c.choices[0].finish_reason is None for c in chunks)
    assert all(c.usage is None for c in chunks)


# --- speed --------------------------------------------------------------------


def test_fifty_small_calls_are_fast(openai_server: FakeOpenAI, openai_client: openai.OpenAI) -> None:
    openai_client.chat.completions.create(model="m", messages=MESSAGES)  # connect outside the timing
    start = time.monotonic()
    for _ in range(50):
        openai_client.chat.completions.create(model="m", messages=MESSAGES)
    # With Nagle's algorithm on, each call stalls ~40 ms (> 2 s in all); it takes ~0.1 s without.
    assert time.monotonic() - start < 1.5


# --- async client -------------------------------------------------------------


def test_async_plain_and_stream(openai_server: FakeOpenAI) -> None:
    openai_server.script(text("async hello"), text("streamed async hello", chunk_size=3))

    async def main() -> tuple[str | None, str, Any]:
        async with openai_server.async_client() as client:
            plain = await client.chat.completions.create(model="m", messages=MESSAGES)
            stream = await client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
            chunks = [chunk async for chunk in stream]
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return plain.choices[0].message.content, streamed, chunks[-1].usage

    plain, streamed, usage = asyncio.run(main())
    assert (plain, streamed) == ("async hello", "streamed async hello")
    assert usage is not None and usage.total_tokens > 0


def test_async_tool_calls_and_retry(openai_server: FakeOpenAI) -> None:
    openai_server.script(error(429), tool_calls([WEATHER, TIME]))

    async def main() -> list[Any]:
        async with openai_server.async_client() as client:
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            return [d for c in [chunk async for chunk in stream] for d in c.choices[0].delta.tool_calls or []]

    deltas = asyncio.run(main())
    assert len(openai_server.requests) == 2
    assert [d.id for d in deltas if d.id] == ["call_1", "call_2"]
    args = {i: "".join(d.function.arguments or "" for d in deltas if d.index == i) for i in (0, 1)}
    assert args == {0: WEATHER["arguments"], 1: TIME["arguments"]}


def test_async_faults(openai_server: FakeOpenAI) -> None:
    openai_server.script(drop_after(2), slow(5))

    async def main() -> list[str]:
        received: list[str] = []
        async with openai_server.async_client(max_retries=0) as client:
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            with pytest.raises(openai.APIConnectionError):
                async for chunk in stream:
                    received.append(chunk.choices[0].delta.content or "")
            with pytest.raises(openai.APITimeoutError):
                await client.chat.completions.create(model="m", messages=MESSAGES, timeout=0.2)
        return received

    assert asyncio.run(main()) == ["", "This"]
