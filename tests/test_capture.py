"""``chatkeep.capture(client)``: existing code, one line changed, every call kept as a conversation.

The real SDK (sync and async) against the loopback server; the captured
client must behave exactly as the bare one, and the store must hold each
call's messages and reply, threaded into conversations without ids.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel

import chatkeep
from chatkeep import open_store
from chatkeep.store import SQLiteStore
from fakeopenai import FakeOpenAI, drop_after, echo, error, text


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return open_store(tmp_path / "captured.db")


def contents(store: SQLiteStore, conversation_id: str) -> list[Any]:
    return [m.message.get("content") for m in store.path(conversation_id)]


def only(store: SQLiteStore) -> str:
    [record] = store.list_conversations()
    return record.id


def test_the_captured_client_is_the_sdk_client(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    client = chatkeep.capture(openai_server.client(max_retries=0), store=store)
    assert isinstance(client, openai.OpenAI) and client.base_url == openai_server.client().base_url
    openai_server.script(text("Hi!"))
    completion = client.with_options(timeout=5).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello"}])
    assert isinstance(completion, openai.types.chat.ChatCompletion) and completion.choices[0].message.content == "Hi!"
    assert contents(store, only(store)) == ["Hello", "Hi!"]  # with_options() keeps capturing
    reply = store.path(only(store))[-1]
    assert (reply.model, reply.finish_reason, reply.status) == ("gpt-4o", "stop", "complete")
    assert reply.usage and reply.latency_ms is not None
    assert store.get_conversation(only(store)).metadata == {"source": "capture"}


def test_threading_continues_branches_and_starts_conversations(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    client = chatkeep.capture(openai_server.client(max_retries=0), store=store)
    openai_server.default = echo()
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "one"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages)
    messages += [first.choices[0].message, {"role": "user", "content": "two"}]  # the SDK object, as people do
    client.chat.completions.create(model="gpt-4o", messages=messages)
    [conversation] = store.list_conversations()
    assert contents(store, conversation.id) == ["Be brief.", "one", "re: one", "two", "re: two"]
    # Departing at message 2: a branch of the same conversation.
    client.chat.completions.create(model="gpt-4o", messages=messages[:2] + [
        {"role": "assistant", "content": "re: one"}, {"role": "user", "content": "three"}])
    assert store.count_conversations() == 1 and len(store.conversation(conversation.id).branches()) == 2
    # An earlier prefix repeated: its reply is a new branch there, nothing is stored twice.
    client.chat.completions.create(model="gpt-4o", messages=messages[:2])
    assert store.count_messages(conversation.id) == 8
    # Something else: a new conversation.
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "unrelated"}])
    assert store.count_conversations() == 2


def test_two_interleaved_conversations_from_one_client(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    client = chatkeep.capture(openai_server.client(max_retries=0), store=store)
    openai_server.default = echo()
    a: list[Any] = [{"role": "user", "content": "a1"}]
    b: list[Any] = [{"role": "user", "content": "b1"}]
    for n in range(2, 5):
        for history, name in ((a, "a"), (b, "b")):
            reply = client.chat.completions.create(model="gpt-4o", messages=history)
            history += [reply.choices[0].message, {"role": "user", "content": f"{name}{n}"}]
    ids = {record.id: contents(store, record.id) for record in store.list_conversations()}
    assert sorted(ids.values()) == [["a1", "re: a1", "a2", "re: a2", "a3", "re: a3"],
                                    ["b1", "re: b1", "b2", "re: b2", "b3", "re: b3"]]


@pytest.mark.parametrize("style", ["create", "helper", "raw"])
def test_streams_are_passed_through_and_kept(style: str, openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    client = chatkeep.capture(openai_server.client(max_retries=0), store=store)
    openai_server.script(text("Streamed hello.", chunk_size=3))
    messages = [{"role": "user", "content": "Hi"}]
    if style == "create":
        with client.chat.completions.create(model="gpt-4o", messages=messages, stream=True) as stream:
            said = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    elif style == "helper":
        with client.chat.completions.stream(model="gpt-4o", messages=messages) as stream:
            said = "".join(event.delta for event in stream if event.type == "content.delta")
    else:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages)
        said = raw.parse().choices[0].message.content or ""
    assert said == "Streamed hello."
    assert contents(store, only(store)) == ["Hi", "Streamed hello."]


def test_parse_with_a_response_format_is_kept(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    class Answer(BaseModel):
        value: int

    client = chatkeep.capture(openai_server.client(max_retries=0), store=store)
    openai_server.script(text('{"value": 42}'))
    parsed = client.chat.completions.parse(model="gpt-4o", messages=[{"role": "user", "content": "6*7?"}],
                                           response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(value=42)
    assert contents(store, only(store)) == ["6*7?", '{"value": 42}']


def test_a_cut_stream_is_incomplete_and_a_failed_call_unanswered(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    client = chatkeep.capture(openai_server.client(max_retries=0), store=store)
    openai_server.script(drop_after(4), error(500))
    with pytest.raises(openai.APIConnectionError):
        for _ in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a"}],
                                                stream=True):
            pass
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "b"}])
    statuses = sorted(tuple(m.status for m in store.path(r.id)) for r in store.list_conversations())
    assert statuses == [("complete", "incomplete"), ("error",)]


def test_async_clients_are_kept_the_same_way(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    openai_server.default = echo()

    async def main() -> None:
        async with openai_server.async_client(max_retries=0) as bare:
            client = chatkeep.capture(bare, store=store)
            assert isinstance(client, openai.AsyncOpenAI)
            reply = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
            stream = await client.chat.completions.create(
                model="gpt-4o", stream=True,
                messages=[{"role": "user", "content": "x"}, reply.choices[0].message, {"role": "user", "content": "y"}])
            async for _ in stream:
                pass
            async with client.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "z"}]) as s:
                await s.until_done()

    asyncio.run(main())
    assert sorted(contents(store, r.id) for r in store.list_conversations()) == [
        ["x", "re: x", "y", "re: y"], ["z", "re: z"]]


def test_responses_calls_chain_by_response_id(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    client = chatkeep.capture(openai_server.client(max_retries=0), store=store)
    openai_server.script(text("First."), text("Second."), text("Streamed."))
    first = client.responses.create(model="gpt-4o", input="Hello")
    client.responses.create(model="gpt-4o", input="And then?", previous_response_id=first.id)
    with client.responses.create(model="gpt-4o", input=[{"role": "user", "content": "Else"}], stream=True) as events:
        for _ in events:
            pass
    by_text = {tuple(m.text for m in store.path(r.id)) for r in store.list_conversations()}
    assert by_text == {("Hello", "First.", "And then?", "Second."), ("Else", "Streamed.")}
    assert all(m.kind == "response_item" for r in store.list_conversations() for m in store.path(r.id))


def test_a_named_conversation_and_a_model_filter(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    client = chatkeep.capture(openai_server.client(max_retries=0), store=store, conversation="support-42",
                              models=["gpt-4o"])
    openai_server.default = text("ok")
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "kept"}])
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "kept too"}])
    client.chat.completions.create(model="o3-mini", messages=[{"role": "user", "content": "not kept"}])
    assert [r.id for r in store.list_conversations()] == ["support-42"]
    assert store.count_messages("support-42") == 4


def test_capture_can_be_turned_off(openai_server: FakeOpenAI, store: SQLiteStore,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATKEEP_CAPTURE", "0")
    bare = openai_server.client()
    assert chatkeep.capture(bare, store=store) is bare


def test_a_store_failure_never_reaches_the_call(tmp_path: Path, openai_server: FakeOpenAI,
                                                caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "broken.db"
    store = open_store(db)
    client = chatkeep.capture(openai_server.client(max_retries=0), store=store)
    store.close()  # every store step now fails
    openai_server.default = text("Still answered.")
    with caplog.at_level(logging.WARNING, logger="chatkeep.capture"):
        for _ in range(3):
            completion = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            assert completion.choices[0].message.content == "Still answered."
    assert len([r for r in caplog.records if r.name == "chatkeep.capture"]) == 1  # once per cause


TUTORIAL = '''
import json, os
from openai import OpenAI
import chatkeep

client = chatkeep.capture(OpenAI())  # the one changed line
messages = [{"role": "system", "content": "You are a helpful assistant."}]
for question in ["Hello, how are you?", "Tell me a joke", "Another one"]:
    messages.append({"role": "user", "content": question})
    response = client.chat.completions.create(model="gpt-4o", messages=messages)
    messages.append({"role": "assistant", "content": response.choices[0].message.content})
    with open("conversation_history.json", "w") as f:
        json.dump(messages, f, indent=2)
'''


def test_the_tutorials_script_runs_unchanged_through_a_captured_client(tmp_path: Path,
                                                                      openai_server: FakeOpenAI) -> None:
    openai_server.default = echo()
    db = tmp_path / "tutorial.db"
    env = {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": "sk-test", "CHATKEEP_DB": str(db),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", TUTORIAL], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    store = open_store(db)
    [record] = store.list_conversations()
    assert [m["content"] for m in store.conversation(record.id).messages] == [
        "You are a helpful assistant.", "Hello, how are you?", "re: Hello, how are you?", "Tell me a joke",
        "re: Tell me a joke", "Another one", "re: Another one"]


def test_chatkeep_list_marks_captured_conversations(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    from clitools import environment, run

    db = tmp_path / "marked.db"
    store = open_store(db)
    store.new_conversation("typed", title="Typed by hand")
    openai_server.script(text("ok"))
    chatkeep.capture(openai_server.client(max_retries=0), store=store).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "from my program"}])
    listed = run(environment(db), "list").out
    assert "[captured]" in listed and "Typed by hand\t" in listed
    rows = __import__("json").loads(run(environment(db), "list", "--json").out)
    assert sorted(r["source"] or "" for r in rows) == ["", "capture"]
