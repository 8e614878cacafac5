"""Chat turns over the real openai SDK against the loopback server, in all four modes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from chatdriver import MODES, Driver
from chatkeep import ChatkeepError, PendingToolCalls, ResponseError, open_store
from chatkeep.store import SQLiteStore
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
    slow,
    text,
    tool_calls,
)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return open_store(tmp_path / "chat.db")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def chat(mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> Driver:
    return Driver(mode, openai_server, store.conversation("support-42", create=True), model="gpt-4o")


def roles(chat: Driver) -> list[tuple[str, str]]:
    return [(m.role, m.status) for m in chat.conversation.history()]


def test_a_reply_is_saved_with_what_the_server_said(chat: Driver, openai_server: FakeOpenAI) -> None:
    usage = make_usage(12, 5, cached=8, reasoning=2)
    openai_server.script(text("Hello there!", model="gpt-4o-2024-08-06", usage=usage))
    outcome = chat.turn("Hello, how are you?")
    reply = outcome.reply
    assert reply is not None and str(reply) == "Hello there!"
    assert (reply.model, reply.usage, reply.finish_reason, reply.status) == ("gpt-4o-2024-08-06", usage, "stop", "complete")
    stored = chat.conversation.head
    assert stored == reply.message and stored.latency_ms is not None and stored.latency_ms > 0
    assert stored.metadata["response_id"].startswith("chatcmpl")
    assert chat.conversation.messages == [
        {"role": "user", "content": "Hello, how are you?"},
        {"role": "assistant", "content": "Hello there!"},
    ]
    if chat.streams:
        assert "".join(outcome.deltas) == "Hello there!" and len(outcome.deltas) > 1
        assert openai_server.requests[0].body["stream_options"] == {"include_usage": True}
        assert stored.metadata["first_token_ms"] <= stored.latency_ms
    else:
        assert "stream" not in openai_server.requests[0].body


def test_the_next_turn_sends_the_whole_branch(chat: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(text("one"), text("two"))
    chat.turn("first")
    chat.turn("second")
    assert openai_server.requests[1].body["messages"] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second"},
    ]


def test_create_keywords_pass_through_and_calls_override_defaults(
    mode: str, openai_server: FakeOpenAI, store: SQLiteStore
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    chat = Driver(mode, openai_server, store.new_conversation(), model="my-local-model", temperature=0.2, tools=tools)
    chat.turn("hi", temperature=0.9, tool_choice="auto", max_completion_tokens=50,
              response_format={"type": "json_object"}, seed=7)
    body = openai_server.requests[0].body
    assert body["model"] == "my-local-model"
    assert (body["temperature"], body["tools"], body["tool_choice"]) == (0.9, tools, "auto")
    assert (body["max_completion_tokens"], body["response_format"], body["seed"]) == (50, {"type": "json_object"}, 7)


CALLS = [
    {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
    {"id": "call_b", "name": "get_time", "arguments": '{"timezone": "Europe/Paris"}'},
]
AS_THE_API_RETURNS = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in CALLS
    ],
}


def test_parallel_tool_calls_are_stored_as_the_api_returns_them(chat: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(tool_calls(CALLS, chunk_size=3), text("Sunny, 21°C, and it is noon."))
    outcome = chat.turn("Weather and time in Paris?")
    assert chat.conversation.head.message == AS_THE_API_RETURNS
    assert outcome.reply is not None and outcome.reply.finish_reason == "tool_calls"
    assert [c["id"] for c in outcome.reply.tool_calls] == ["call_a", "call_b"]
    chat.add_tool_result("call_a", {"temp": 21})
    chat.add_tool_result("call_b", "12:00")
    chat.turn()  # answers the tool results
    assert openai_server.requests[1].body["messages"][1:] == [
        AS_THE_API_RETURNS,
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
    ]
    assert chat.conversation.head.message == {"role": "assistant", "content": "Sunny, 21°C, and it is noon."}


def test_a_tool_call_without_its_result_is_refused_before_the_call(chat: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(tool_calls(CALLS))
    chat.turn("Weather?")
    chat.add_tool_result("call_a", "21")
    before = chat.conversation.messages
    with pytest.raises(PendingToolCalls, match="call_b have no result yet"):
        chat.turn("never mind")
    assert len(openai_server.requests) == 1
    assert chat.conversation.messages == before


def test_rate_limit_is_retried_by_the_sdk_and_saved_once(
    mode: str, openai_server: FakeOpenAI, store: SQLiteStore
) -> None:
    chat = Driver(mode, openai_server, store.new_conversation(), client_options={"max_retries": 2})
    openai_server.script(error(429), text("finally"))
    assert str(chat.turn("hi").reply) == "finally"
    assert len(openai_server.requests) == 2
    assert roles(chat) == [("user", "complete"), ("assistant", "complete")]


@pytest.mark.parametrize("status, exc", [(500, openai.InternalServerError), (503, openai.InternalServerError),
                                         (429, openai.RateLimitError)])
def test_a_failed_call_keeps_the_message_and_retry_does_not_repeat_it(
    chat: Driver, openai_server: FakeOpenAI, status: int, exc: type[Exception]
) -> None:
    openai_server.script(error(status), text("recovered"))
    with pytest.raises(exc):
        chat.turn("are you there?")
    [prompt] = chat.conversation.history()
    assert (prompt.message["content"], prompt.status) == ("are you there?", "error")
    assert prompt.error is not None and prompt.error.startswith(exc.__name__)
    assert str(chat.turn(retry=True).reply) == "recovered"
    assert roles(chat) == [("user", "complete"), ("assistant", "complete")]
    assert openai_server.requests[1].body["messages"] == [{"role": "user", "content": "are you there?"}]


def test_a_timeout_keeps_the_message(mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    chat = Driver(mode, openai_server, store.new_conversation(), client_options={"max_retries": 0, "timeout": 0.2})
    openai_server.script(slow(2.0))
    with pytest.raises(openai.APITimeoutError):
        chat.turn("hello?")
    assert roles(chat) == [("user", "error")]


def test_an_unreachable_server_keeps_the_message(mode: str, store: SQLiteStore) -> None:
    with FakeOpenAI() as closed:
        pass  # started and stopped: its port now refuses connections
    closed._base_url = closed._base_url  # keep the old address
    chat = Driver(mode, _RefusingServer(closed._base_url), store.new_conversation())
    with pytest.raises(openai.APIConnectionError):
        chat.turn("anyone?")
    assert roles(chat) == [("user", "error")]
    assert chat.conversation.head.error == "APIConnectionError: Connection error."


class _RefusingServer:
    """Stands in for FakeOpenAI where only a dead address is wanted."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def client(self, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="test-key", **kw)

    def async_client(self, **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key="test-key", **kw)


@pytest.mark.parametrize("reply", [html_200(), no_choices()], ids=["html", "no-choices"])
def test_an_unusable_answer_is_a_clear_error(chat: Driver, openai_server: FakeOpenAI, reply: Any) -> None:
    openai_server.script(reply)
    with pytest.raises(ResponseError):
        chat.turn("hi")
    assert roles(chat) == [("user", "error")]


def test_malformed_json_keeps_the_message(chat: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(malformed_json())
    with pytest.raises((ValueError, ResponseError)):
        chat.turn("hi")
    assert roles(chat) == [("user", "error")]


# -- streams cut short --------------------------------------------------------------

STREAM_MODES = ["stream", "async-stream"]


@pytest.fixture(params=STREAM_MODES)
def streaming(request: pytest.FixtureRequest, openai_server: FakeOpenAI, store: SQLiteStore) -> Driver:
    return Driver(str(request.param), openai_server, store.new_conversation())


def test_a_dropped_stream_saves_what_arrived_as_incomplete(streaming: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(drop_after(4, "The quick brown fox jumps over the lazy dog."))
    with pytest.raises(openai.APIConnectionError):
        streaming.turn("tell me")
    head = streaming.conversation.head
    assert head.status == "incomplete" and head.finish_reason is None
    assert "The quick brown fox".startswith(head.message["content"]) and head.message["content"]
    assert roles(streaming) == [("user", "complete"), ("assistant", "incomplete")]


def test_a_malformed_event_saves_what_arrived_as_incomplete(streaming: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(malformed_sse(after=3))
    with pytest.raises(ValueError):
        streaming.turn("tell me")
    assert roles(streaming) == [("user", "complete"), ("assistant", "incomplete")]


def test_a_stream_without_finish_reason_is_incomplete_and_says_so(streaming: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(end_without_done("Half a thought"))
    with pytest.raises(ResponseError, match="no finish_reason"):
        streaming.turn("tell me")
    head = streaming.conversation.head
    assert (head.status, head.message["content"]) == ("incomplete", "Half a thought")


def test_a_server_that_ignores_stream_true_is_a_clear_error(streaming: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(json_for_stream())
    with pytest.raises(ResponseError, match="no chunks"):
        streaming.turn("tell me")
    assert roles(streaming) == [("user", "error")]


def test_an_incomplete_reply_can_be_regenerated_on_a_new_branch(streaming: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(drop_after(3), text("A whole answer."))
    with pytest.raises(openai.APIConnectionError):
        streaming.turn("tell me")
    cut = streaming.conversation.head
    assert str(streaming.turn(retry=True).reply) == "A whole answer."
    assert roles(streaming) == [("user", "complete"), ("assistant", "complete")]
    assert streaming.conversation.store.children(cut.parent_id)[0] == cut  # the cut reply is kept


def test_closing_a_stream_early_saves_what_arrived(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    from chatkeep import Chat

    conv = store.new_conversation()
    openai_server.script(text("one two three four five six seven", chunk_size=4, chunk_delay=0.01))
    with Chat(conv, openai_server.client()).stream("count") as stream:
        first = next(stream)
    assert stream.reply is not None and stream.reply.status == "incomplete"
    assert conv.head.message["content"] == first


def test_an_exception_in_the_consumer_saves_what_arrived(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    from chatkeep import Chat

    conv = store.new_conversation()
    openai_server.script(text("one two three four five", chunk_size=4))
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for delta in Chat(conv, openai_server.client()).stream("count"):
            seen.append(delta)
            if len(seen) == 2:
                raise KeyboardInterrupt
    assert (conv.head.status, conv.head.message["content"]) == ("incomplete", "".join(seen))


def test_an_async_stream_left_early_saves_what_arrived(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    import asyncio

    from chatkeep import AsyncChat

    conv = store.new_conversation()
    openai_server.script(text("one two three four five", chunk_size=4, chunk_delay=0.01))

    async def main() -> str:
        async with openai_server.async_client() as client:
            async with AsyncChat(conv, client).stream("count") as stream:
                async for delta in stream:
                    return delta
        return ""

    first = asyncio.run(main())
    assert (conv.head.status, conv.head.message["content"]) == ("incomplete", first)


# -- keys, bring-your-own-call, the tutorial -----------------------------------------


def test_the_api_key_is_never_written(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    secret = "sk-test-CHATKEEP-CANARY-9f8e7d6c5b4a"
    conv = open_store(tmp_path / "keys.db").new_conversation()
    from chatkeep import Chat

    chat = Chat(conv, openai_server.client(api_key=secret))
    chat.send("hi")
    openai_server.script(error(401, f"Incorrect API key provided: {secret}"))
    with pytest.raises(openai.AuthenticationError):
        chat.send("again")
    assert "CANARY" not in (conv.head.error or "")
    for file in tmp_path.iterdir():
        assert secret.encode() not in file.read_bytes() and b"CANARY" not in file.read_bytes(), file


def test_record_a_completion_made_by_your_own_code(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    from chatkeep import record_chunks, record_completion

    client = openai_server.client()
    conv = store.new_conversation()
    conv.append({"role": "user", "content": "Hi"})
    openai_server.script(text("Hello!", model="gpt-4o-mini-2024-07-18"))
    stored = record_completion(conv, client.chat.completions.create(model="gpt-4o-mini", messages=conv.messages))
    assert (stored.message, stored.model) == ({"role": "assistant", "content": "Hello!"}, "gpt-4o-mini-2024-07-18")
    conv.append({"role": "user", "content": "Tools?"})
    openai_server.script(tool_calls(CALLS))
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=conv.messages, stream=True,
                                                 stream_options={"include_usage": True}))
    stored = record_chunks(conv, chunks)
    assert stored.message == AS_THE_API_RETURNS and stored.usage is not None


def test_the_tutorial_and_chatkeep_write_the_same_file(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    replies = ["I'm doing well, thanks!", "Sure — here's more: ünïcødé ✓."]
    prompts = ["Hello, how are you?", "Tell me more"]

    # The tutorial's own steps, verbatim in spirit.
    openai_server.script(*[text(r) for r in replies])
    client = openai_server.client()
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful assistant."}]
    for prompt in prompts:
        messages.append({"role": "user", "content": prompt})
        response = client.chat.completions.create(model="gpt-4o", messages=messages)
        messages.append({"role": "assistant", "content": response.choices[0].message.content})
        with open(tmp_path / "tutorial.json", "w") as f:
            json.dump(messages, f, indent=2)

    from chatkeep import Chat

    openai_server.script(*[text(r) for r in replies])
    conv = open_store(tmp_path / "chatkeep.json").conversation("chatkeep")
    conv.append({"role": "system", "content": "You are a helpful assistant."})
    chat = Chat(conv, client, model="gpt-4o")
    for prompt in prompts:
        chat.send(prompt)
    assert (tmp_path / "chatkeep.json").read_bytes() == (tmp_path / "tutorial.json").read_bytes()
    assert openai_server.requests[1].body == openai_server.requests[3].body


def test_answering_an_empty_conversation_is_refused(chat: Driver) -> None:
    with pytest.raises(ChatkeepError, match="empty"):
        chat.turn()
