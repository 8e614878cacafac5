"""``ChatkeepSession`` under real OpenAI Agents SDK runs, against the loopback Responses API server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatkeep import BackendUnavailable, open_store
from chatkeep.integrations import ChatkeepSession
from chatkeep.store import SQLiteStore
from clitools import environment, run
from fakeopenai import FakeOpenAI, error, text, tool_calls
from test_responses_items import REASONING, histories

agents = pytest.importorskip("agents")
from agents import Agent, Runner, function_tool
from agents.memory import Session
from agents.models.openai_responses import OpenAIResponsesModel

RUNS = ["run", "run_sync", "run_streamed"]
SAMPLE = "other/responses_api/DERIVED_llm_test_responses_round_trips_encrypted_reasoning.decoded.json"


@pytest.fixture(autouse=True)
def no_tracing() -> None:
    """Nothing may be exported to OpenAI's servers: the SDK sends traces there by default."""
    agents.set_tracing_disabled(True)


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(request.getfixturevalue("postgres_url") if request.param == "postgres" else tmp_path / "agents.db")


@pytest.fixture
def store(store_target: str) -> Iterator[SQLiteStore]:
    opened = open_store(store_target)
    yield opened
    opened.close()


@pytest.fixture(params=RUNS)
def how(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny and 21°C in {city}"


class AgentDriver:
    """Runs one agent with a session, by ``Runner.run``, ``run_sync`` or ``run_streamed``."""

    def __init__(self, how: str, server: FakeOpenAI, session: ChatkeepSession) -> None:
        self.how, self.server, self.session = how, server, session

    def agent(self, client: openai.AsyncOpenAI) -> Agent[Any]:
        model = OpenAIResponsesModel(model="gpt-4o", openai_client=client)
        return Agent(name="Weather", instructions="Be brief.", tools=[get_weather], model=model)

    def run(self, message: str) -> Any:
        if self.how == "run_sync":
            # run_sync drives the thread's default loop and shuts its async generators
            # down after each run: give every run a fresh loop and client.
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            client = self.server.async_client(max_retries=0)
            try:
                return Runner.run_sync(self.agent(client), message, session=self.session).final_output
            finally:
                loop.run_until_complete(client.close())
                loop.close()
                asyncio.set_event_loop(None)
        return asyncio.run(self._run(message))

    async def _run(self, message: str) -> Any:
        async with self.server.async_client(max_retries=0) as client:
            if self.how == "run":
                return (await Runner.run(self.agent(client), message, session=self.session)).final_output
            result = Runner.run_streamed(self.agent(client), message, session=self.session)
            async for _ in result.stream_events():
                pass
            return result.final_output


def items_of(session: ChatkeepSession, limit: int | None = None) -> list[Any]:
    return asyncio.run(session.get_items(limit))


def kinds(items: list[dict[str, Any]]) -> list[str]:
    return [str(i.get("type") or i.get("role")) for i in items]


def test_the_session_is_an_sdk_session(store: SQLiteStore) -> None:
    session = ChatkeepSession("support-42", store, session_settings={"limit": 5})
    assert isinstance(session, Session)
    assert (session.session_id, session.session_settings.limit) == ("support-42", 5)


def test_a_tool_calling_run_lands_in_the_session_and_the_next_run_continues(
    how: str, openai_server: FakeOpenAI, store: SQLiteStore
) -> None:
    openai_server.script(
        tool_calls([{"id": "call_w", "name": "get_weather", "arguments": '{"city": "Paris"}'}], chunk_size=5),
        text("It is sunny in Paris."),
        text("You asked about Paris."),
    )
    session = ChatkeepSession("weather-1", store)
    driver = AgentDriver(how, openai_server, session)
    assert driver.run("Weather in Paris?") == "It is sunny in Paris."
    first = items_of(session)
    assert kinds(first) == ["user", "function_call", "function_call_output", "message"]
    assert (first[1]["call_id"], first[1]["arguments"]) == ("call_w", '{"city": "Paris"}')
    assert first[2] == {"call_id": "call_w", "output": "Sunny and 21°C in Paris", "type": "function_call_output"}
    assert driver.run("What did I ask?") == "You asked about Paris."
    sent = openai_server.requests[2].body["input"]
    assert sent[:4] == first and sent[4] == {"content": "What did I ask?", "role": "user"}
    assert len(items_of(session)) == 6
    # Every item is a stored message of the conversation named by the session id.
    assert [m.kind for m in store.path("weather-1")] == ["response_item"] * 6
    assert [c.id for c in store.list_conversations()] == ["weather-1"]


def test_a_failed_run_keeps_the_users_input(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    openai_server.script(error(500), text("Here now."))
    session = ChatkeepSession("flaky", store)
    driver = AgentDriver("run", openai_server, session)
    with pytest.raises(openai.InternalServerError):
        driver.run("Hello?")
    assert items_of(session) == [{"content": "Hello?", "role": "user"}]
    assert driver.run("Still there?") == "Here now."
    assert kinds(items_of(session)) == ["user", "user", "message"]


def test_items_round_trip_losslessly(store: SQLiteStore, store_target: str, samples: Path) -> None:
    from openai.types.responses import ResponseFunctionToolCall

    traffic = json.loads((samples / SAMPLE).read_text())
    recorded = traffic[1]["request"]["input"] + traffic[1]["response"]["output"]
    assert any(i.get("type") == "reasoning" and i.get("encrypted_content") for i in recorded)
    newer = {"type": "some_future_item", "id": "fi_1", "payload": {"nested": [1, 2.5, None, "ü\u2028"]}}
    sdk_object = ResponseFunctionToolCall(type="function_call", call_id="call_z", name="f", arguments="{}")
    session = ChatkeepSession("lossless", store)
    asyncio.run(session.add_items([*recorded, newer, sdk_object]))
    expected = [*recorded, newer, {"type": "function_call", "call_id": "call_z", "name": "f", "arguments": "{}"}]
    assert items_of(session) == expected
    with open_store(store_target) as again:
        assert items_of(ChatkeepSession("lossless", again)) == expected


def test_added_items_are_copies(store: SQLiteStore) -> None:
    item = {"role": "user", "content": "first"}
    session = ChatkeepSession("copies", store)
    asyncio.run(session.add_items([item]))
    item["content"] = "changed afterwards"
    assert items_of(session) == [{"role": "user", "content": "first"}]


@settings(max_examples=40, deadline=None)
@given(histories, histories, st.integers(0, 30))
def test_a_limited_window_is_exactly_the_newest_items(
    older: list[dict[str, Any]], newer: list[dict[str, Any]], limit: int
) -> None:
    # As the SDK's own sessions: the session returns what is stored, and the runner
    # (not the session) drops a tool output whose call fell outside the window.
    with SQLiteStore(":memory:") as store:
        session = ChatkeepSession("window", store)
        history = older + newer
        asyncio.run(session.add_items(older))
        asyncio.run(session.add_items(newer))
        assert items_of(session, limit) == (history[-limit:] if limit else [])


def test_the_runner_drops_an_output_whose_call_fell_out_of_the_window(
    openai_server: FakeOpenAI, store: SQLiteStore
) -> None:
    openai_server.script(text("Noted."))
    session = ChatkeepSession("orphaned", store, session_settings={"limit": 2})
    asyncio.run(session.add_items([
        {"role": "user", "content": "Weather?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ]))
    assert kinds(items_of(session)) == ["function_call_output", "assistant"]
    AgentDriver("run", openai_server, session).run("Thanks")
    assert openai_server.requests[0].body["input"] == [
        {"role": "assistant", "content": "It is sunny."}, {"content": "Thanks", "role": "user"}]


def test_session_settings_limit_is_the_default_window(store: SQLiteStore) -> None:
    session = ChatkeepSession("limited", store, session_settings={"limit": 2})
    items = [{"role": "user", "content": str(n)} for n in range(5)]
    asyncio.run(session.add_items(items))
    assert items_of(session) == items[-2:]
    assert items_of(session, 3) == items[-3:]  # an explicit limit wins
    assert items_of(session, -1) == items  # as SQLiteSession: negative means all


def test_pop_takes_the_newest_item_off_the_branch(store: SQLiteStore) -> None:
    session = ChatkeepSession("popping", store)
    assert asyncio.run(session.pop_item()) is None
    asyncio.run(session.add_items([{"role": "user", "content": "a"}, REASONING]))
    assert asyncio.run(session.pop_item()) == REASONING
    assert items_of(session) == [{"role": "user", "content": "a"}]
    assert store.count_messages("popping") == 2  # kept off the branch, as chatkeep's undo keeps turns
    asyncio.run(session.add_items([{"role": "user", "content": "b"}]))
    assert items_of(session) == [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]


def test_clear_deletes_the_conversation_and_the_next_item_recreates_it(store: SQLiteStore) -> None:
    session = ChatkeepSession("clearing", store, title="Support", owner="alice", metadata={"team": "eu"})
    asyncio.run(session.add_items([{"role": "user", "content": "a"}]))
    asyncio.run(session.clear_session())
    assert (items_of(session), store.list_conversations()) == ([], [])
    asyncio.run(session.clear_session())  # clearing twice is fine
    asyncio.run(session.add_items([{"role": "user", "content": "b"}]))
    record = store.get_conversation("clearing")
    assert (record.title, record.owner, record.metadata) == ("Support", "alice", {"team": "eu"})
    assert items_of(session) == [{"role": "user", "content": "b"}]


def test_a_cancelled_add_still_saves(store: SQLiteStore) -> None:
    session = ChatkeepSession("cancelled", store)
    items = [{"role": "user", "content": str(n)} for n in range(50)]

    async def main() -> None:
        task = asyncio.create_task(session.add_items(items))
        await asyncio.sleep(0)  # the write has started in its worker thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if len(await session.get_items()) == len(items):
                return
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert items_of(session) == items


def test_the_default_store_is_chatkeeps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATKEEP_DB", str(tmp_path / "default.db"))
    session = ChatkeepSession("defaulted")
    asyncio.run(session.add_items([{"role": "user", "content": "hi"}]))
    session.close()
    assert open_store(tmp_path / "default.db").conversation("defaulted").messages == [{"role": "user", "content": "hi"}]


def test_without_the_sdk_the_error_names_the_extra(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "agents" or m.startswith("agents.")]:
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]
    with pytest.raises(BackendUnavailable, match=r"pip install 'chatkeep\[agents\]'"):
        ChatkeepSession("no-sdk", store)
    with pytest.raises(ImportError):  # BackendUnavailable is also an ImportError
        ChatkeepSession("no-sdk", store)


def test_agent_conversations_show_in_the_cli(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    openai_server.script(
        tool_calls([{"id": "call_w", "name": "get_weather", "arguments": '{"city": "Oslo"}'}]), text("Rainy in Oslo."))
    with open_store(db) as store:
        AgentDriver("run", openai_server, ChatkeepSession("agent-cli", store)).run("Weather in Oslo?")
    env = environment(db)
    listed = run(env, "list")
    assert listed.code == 0 and "agent-cli" in listed.out
    shown = run(env, "show", "agent-cli", "--json")
    assert shown.code == 0
    assert [m["message"].get("type") or m["message"].get("role") for m in json.loads(shown.out)["messages"]] == [
        "user", "function_call", "function_call_output", "message"]


def test_every_item_is_found_by_search(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "search.db"
    openai_server.script(
        tool_calls([{"id": "call_w", "name": "get_weather", "arguments": '{"city": "Oslo"}'}]), text("Rainy in Oslo."))
    with open_store(db) as store:
        AgentDriver("run", openai_server, ChatkeepSession("agent-search", store)).run("Weather in Oslo?")
        found = {(hit.message.message.get("type") or "user", hit.message.role) for hit in store.search("Oslo")}
        assert found == {("user", "user"), ("function_call", "assistant"), ("function_call_output", "tool"),
                         ("message", "assistant")}
        assert [hit.message.message["type"] for hit in store.search("get_weather")] == ["function_call"]
    result = run(environment(db), "search", "Rainy")
    assert result.code == 0 and "agent-search" in result.out and "[Rainy] in Oslo." in result.out
