"""Responses API turns over the real openai SDK against the loopback server, in all four modes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import openai
import pytest

from chatkeep import Chat, Conversation, PendingToolCalls, ResponseError, open_store
from chatkeep.client.responses import AsyncResponsesChat, ResponsesChat, ResponsesReply
from chatkeep.store import SQLiteStore
from fakeopenai import (
    FakeOpenAI,
    Reply,
    drop_after,
    end_without_done,
    error,
    html_200,
    no_choices,
    response_items,
    responses_usage,
    text,
    tool_calls,
)

MODES = ["send", "stream", "async-send", "async-stream"]
STREAMS = pytest.mark.parametrize("mode", ["stream", "async-stream"])
SAMPLE = "other/responses_api/DERIVED_llm_test_responses_round_trips_encrypted_reasoning.decoded.json"


@dataclass
class Outcome:
    reply: ResponsesReply | None
    deltas: list[str] = field(default_factory=list)


class Driver:
    """A Responses chat over one conversation, driven in one mode against the loopback server."""

    def __init__(self, mode: str, server: FakeOpenAI, conversation: Conversation, **options: Any) -> None:
        self.mode, self.server, self.conversation, self.options = mode, server, conversation, options
        self.sync_chat = ResponsesChat(conversation, server.client(max_retries=0), **options)

    @property
    def streams(self) -> bool:
        return self.mode.endswith("stream")

    def turn(self, message: Any = None, **overrides: Any) -> Outcome:
        if self.mode.startswith("async"):
            return asyncio.run(self._async_turn(message, overrides))
        if self.mode == "send":
            return Outcome(self.sync_chat.send(message, **overrides))
        outcome = Outcome(None)
        stream = self.sync_chat.stream(message, **overrides)
        for delta in stream:
            outcome.deltas.append(delta)
        outcome.reply = stream.reply
        return outcome

    async def _async_turn(self, message: Any, overrides: dict[str, Any]) -> Outcome:
        async with self.server.async_client(max_retries=0) as client:
            chat = AsyncResponsesChat(self.conversation, client, **self.options)
            if self.mode == "async-send":
                return Outcome(await chat.send(message, **overrides))
            outcome = Outcome(None)
            async with chat.stream(message, **overrides) as stream:
                async for delta in stream:
                    outcome.deltas.append(delta)
            outcome.reply = stream.reply
            return outcome

    def add_tool_result(self, call_id: str, output: Any) -> None:
        if self.mode.startswith("async"):
            asyncio.run(AsyncResponsesChat(self.conversation, None).add_tool_result(call_id, output))
        else:
            self.sync_chat.add_tool_result(call_id, output)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return open_store(tmp_path / "responses.db")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def chat(mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> Driver:
    return Driver(mode, openai_server, store.conversation("resp-42", create=True), model="gpt-4o")


def cut(reply: Reply, *, after: int) -> Reply:
    """``reply``, dropped after ``after`` stream events (drop_after() only cuts text)."""
    return replace(reply, kind="drop", count=after)


def statuses(chat: Driver) -> list[tuple[str, str]]:
    return [(m.role or m.message.get("type", ""), m.status) for m in chat.conversation.history()]


def test_the_input_and_output_items_are_saved_as_they_came(chat: Driver, openai_server: FakeOpenAI) -> None:
    usage = responses_usage(12, 5, cached=8, reasoning=2)
    openai_server.script(text("Hello there!", model="gpt-4o-2024-08-06", usage=usage))
    outcome = chat.turn("Hello, how are you?")
    reply = outcome.reply
    assert reply is not None and str(reply) == "Hello there!"
    assert (reply.model, reply.usage, reply.finish_reason, reply.status) == ("gpt-4o-2024-08-06", usage, "completed", "complete")
    assert reply.response_id is not None and reply.response_id.startswith("resp_")
    [prompt, answer] = chat.conversation.history()
    assert (prompt.kind, prompt.message) == ("response_item", {"role": "user", "content": "Hello, how are you?"})
    assert answer.kind == "response_item" and answer.message["type"] == "message"
    assert answer.message["content"][0] == {"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello there!"}
    assert answer.metadata["response_id"] == reply.response_id and answer.latency_ms is not None
    body = openai_server.requests[0].body
    assert (openai_server.requests[0].path, body["model"], body["input"]) == (
        "/v1/responses", "gpt-4o", [{"role": "user", "content": "Hello, how are you?"}])
    if chat.streams:
        assert "".join(outcome.deltas) == "Hello there!" and len(outcome.deltas) > 1
        assert body["stream"] is True and answer.metadata["first_token_ms"] <= answer.latency_ms
    else:
        assert "stream" not in body


def test_the_next_turn_sends_the_whole_branch(chat: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(text("one"), text("two"))
    chat.turn("first", instructions="Be brief.")
    chat.turn("second")
    sent = openai_server.requests[1].body["input"]
    assert [(i.get("role"), i.get("type")) for i in sent] == [("user", None), ("assistant", "message"), ("user", None)]
    assert sent[1] == chat.conversation.history()[1].message
    assert openai_server.requests[0].body["instructions"] == "Be brief."
    assert "instructions" not in openai_server.requests[1].body  # a call's own keywords, not the chat's defaults


def test_a_function_call_and_its_output_continue_the_turn(chat: Driver, openai_server: FakeOpenAI) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    openai_server.script(
        tool_calls([{"id": "call_w", "name": "get_weather", "arguments": '{"city": "Paris"}'}], chunk_size=3),
        text("Sunny in Paris."),
    )
    outcome = chat.turn("Weather in Paris?", tools=tools)
    assert outcome.reply is not None and outcome.deltas == []
    [call] = outcome.reply.function_calls
    assert (call["call_id"], call["name"], call["arguments"]) == ("call_w", "get_weather", '{"city": "Paris"}')
    with pytest.raises(PendingToolCalls, match="call_w"):
        chat.turn("never mind")  # the API refuses input past an unanswered call: nothing is saved
    assert len(chat.conversation.history()) == 2
    chat.add_tool_result("call_w", {"temp": 21})
    assert str(chat.turn(tools=tools).reply) == "Sunny in Paris."
    assert openai_server.requests[1].body["input"][1:] == [
        call, {"type": "function_call_output", "call_id": "call_w", "output": '{"temp": 21}'}]


def test_a_server_error_keeps_the_input_marked_unanswered(chat: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(error(500), text("Back again."))
    with pytest.raises(openai.InternalServerError):
        chat.turn("Are you there?")
    [prompt] = chat.conversation.history()
    assert (prompt.message["content"], prompt.status) == ("Are you there?", "error")
    assert prompt.error is not None and prompt.error.startswith("InternalServerError")
    chat.turn()  # answers the unanswered input as it stands
    assert statuses(chat) == [("user", "complete"), ("assistant", "complete")]
    assert openai_server.requests[1].body["input"] == [{"role": "user", "content": "Are you there?"}]


def test_unusable_answers_raise_a_response_error_and_keep_the_input(chat: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(html_200(), no_choices())
    for _ in range(2):
        with pytest.raises(ResponseError):
            chat.turn("Hello?")
    assert statuses(chat) == [("user", "error"), ("user", "error")]


def test_an_incomplete_response_is_a_finished_one(chat: Driver, openai_server: FakeOpenAI) -> None:
    openai_server.script(text("A long answer that runs out of", finish_reason="length"))
    reply = chat.turn("Tell me everything").reply
    assert reply is not None and (reply.status, reply.finish_reason) == ("complete", "max_output_tokens")
    assert reply.output[0]["status"] == "incomplete"  # what the server said about the item, kept


def test_the_encrypted_reasoning_sample_round_trips_exactly(chat: Driver, openai_server: FakeOpenAI,
                                                           samples: Path) -> None:
    first, second = json.loads((samples / SAMPLE).read_text())[:2]
    output = first["response"]["output"]
    openai_server.script(response_items(output, usage=first["response"]["usage"]), text("Pundora has 123,124 people."))
    reply = chat.turn(first["request"]["input"][0]["content"], include=["reasoning.encrypted_content"], store=False)
    assert reply is not None and reply.reply is not None and reply.reply.output == output
    assert [m.message for m in chat.conversation.history()[1:]] == output
    call = output[1]
    chat.add_tool_result(call["call_id"], "123124")
    chat.turn()
    sent = openai_server.requests[1].body["input"]
    assert sent[1] == output[0] and sent[1]["encrypted_content"] == output[0]["encrypted_content"]
    assert sent[2:] == [output[1], second["request"]["input"][3]]


@STREAMS
def test_a_cut_stream_saves_what_arrived_as_incomplete(mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    chat = Driver(mode, openai_server, store.new_conversation(), model="gpt-4o")
    openai_server.script(drop_after(7, "This reply is cut short."), text("Again, whole."))
    with pytest.raises(openai.APIConnectionError):
        chat.turn("Tell me a story")
    [prompt, partial] = chat.conversation.history()
    assert (prompt.status, partial.status, partial.message["status"]) == ("complete", "incomplete", "incomplete")
    text_so_far = partial.message["content"][0]["text"]
    assert text_so_far and "This reply is cut short.".startswith(text_so_far) and text_so_far != "This reply is cut short."
    chat.turn("Go on")
    assert openai_server.requests[1].body["input"][1]["content"][0]["text"] == text_so_far  # cut text is still said


@STREAMS
def test_a_cut_function_call_is_kept_but_not_sent(mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    chat = Driver(mode, openai_server, store.new_conversation(), model="gpt-4o")
    openai_server.script(
        cut(tool_calls([{"id": "call_x", "name": "f", "arguments": '{"a": 1, "b": 2}'}], chunk_size=2), after=6),
        text("ok"),
    )
    with pytest.raises(openai.APIConnectionError):
        chat.turn("Call f")
    partial = chat.conversation.head
    assert partial is not None and partial.status == "incomplete" and partial.message["type"] == "function_call"
    assert partial.message["arguments"] and partial.message["arguments"] != '{"a": 1, "b": 2}'
    chat.turn("Try again")  # no PendingToolCalls: a half-received call is not an open one
    assert openai_server.requests[1].body["input"] == [{"role": "user", "content": "Call f"},
                                                       {"role": "user", "content": "Try again"}]


@STREAMS
def test_a_stream_that_ends_early_is_saved_and_reported(mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    chat = Driver(mode, openai_server, store.new_conversation(), model="gpt-4o")
    openai_server.script(end_without_done("Half of it"))
    with pytest.raises(ResponseError, match="before the server said"):
        chat.turn("Hi")
    assert [m.status for m in chat.conversation.history()] == ["complete", "incomplete"]


def test_store_on_server_sends_only_the_new_input(mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    chat = Driver(mode, openai_server, store.new_conversation(), model="gpt-4o", store_on_server=True)
    openai_server.script(text("one"), text("two"))
    first = chat.turn("first").reply
    chat.turn("second")
    body = openai_server.requests[1].body
    assert first is not None and body["previous_response_id"] == first.response_id and body["store"] is True
    assert body["input"] == [{"role": "user", "content": "second"}]
    assert len(chat.conversation.history()) == 4  # the local copy stays whole


def test_a_lost_previous_response_falls_back_to_the_whole_branch(mode: str, openai_server: FakeOpenAI,
                                                                 store: SQLiteStore) -> None:
    chat = Driver(mode, openai_server, store.new_conversation(), model="gpt-4o", store_on_server=True)
    lost = error(400, "Previous response with id 'resp_x' not found.", code="previous_response_not_found")
    openai_server.script(text("one"), lost, text("two"))
    chat.turn("first")
    reply = chat.turn("second").reply
    assert reply is not None and str(reply) == "two"
    retried = openai_server.requests[2].body
    assert "previous_response_id" not in retried and len(retried["input"]) == 3


def test_max_items_never_starts_at_an_orphaned_output(mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    chat = Driver(mode, openai_server, store.new_conversation(), model="gpt-4o", max_items=3)
    openai_server.script(
        tool_calls([{"id": "call_a", "name": "f", "arguments": "{}"}, {"id": "call_b", "name": "f", "arguments": "{}"}]),
        text("done"),
    )
    chat.turn("Call f twice")
    chat.add_tool_result("call_a", "A")
    chat.add_tool_result("call_b", "B")
    chat.turn()
    sent = openai_server.requests[1].body["input"]
    # The newest three are call_b, A and B: A's call is cut off, so the window widens back to it.
    assert [(i["type"], i["call_id"]) for i in sent] == [
        ("function_call", "call_a"), ("function_call", "call_b"),
        ("function_call_output", "call_a"), ("function_call_output", "call_b")]
    openai_server.script(text("again"))
    chat.turn("And now?")
    sent = openai_server.requests[2].body["input"]
    assert (len(sent), sent[0]["call_id"], sent[-1]) == (6, "call_a", {"role": "user", "content": "And now?"})


def test_a_chat_conversation_continues_over_the_responses_api(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    conversation = store.new_conversation()
    openai_server.script(
        tool_calls([{"id": "call_t", "name": "clock", "arguments": "{}"}]), text("It is noon."))
    chat = Chat(conversation, openai_server.client(max_retries=0), model="gpt-4o")
    chat.send("What time is it?")
    chat.add_tool_result("call_t", "12:00")
    ResponsesChat(conversation, openai_server.client(max_retries=0), model="gpt-4o").send()
    assert openai_server.requests[1].body["input"] == [
        {"role": "user", "content": "What time is it?"},
        {"type": "function_call", "call_id": "call_t", "name": "clock", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_t", "output": "12:00"},
    ]


def test_an_abandoned_async_stream_saves_what_arrived(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    conversation = store.new_conversation()

    async def main() -> list[str]:
        async with openai_server.async_client(max_retries=0) as client:
            chat = AsyncResponsesChat(conversation, client, model="gpt-4o")
            seen = []
            async with chat.stream("Count to ten") as stream:
                async for delta in stream:
                    seen.append(delta)
                    break  # the caller stops reading: the stream closes and saves what arrived
            return seen

    openai_server.script(text("one two three four five six seven eight nine ten", chunk_size=4))
    seen = asyncio.run(main())
    head = conversation.head
    assert head is not None and head.status == "incomplete"
    assert head.message["content"][0]["text"].startswith("".join(seen))
