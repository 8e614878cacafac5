"""Importing other tools' SQLite databases, made by those tools: Agents SDK sessions and LangChain's message store.

Each source is imported read-only: its bytes are the same afterwards. (llm's
logs.db is in tests/test_import_llm.py.)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatkeep import FormatError, open_store
from chatkeep.formats import detect_format, read_conversations
from chatkeep.store import SQLiteStore
from clitools import environment, run
from fakeopenai import FakeOpenAI, make_usage, text, tool_calls

agents = pytest.importorskip("agents")
from agents import Agent, Runner, SQLiteSession, function_tool  # noqa: E402
from agents.extensions.memory.advanced_sqlite_session import AdvancedSQLiteSession  # noqa: E402
from agents.models.openai_responses import OpenAIResponsesModel  # noqa: E402

SCHEMAS = "other/db_schemas"


@pytest.fixture(autouse=True)
def no_tracing() -> None:
    """Nothing may be exported to OpenAI's servers: the SDK sends traces there by default."""
    agents.set_tracing_disabled(True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = open_store(tmp_path / "chats.db")
    yield opened
    opened.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tables(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as connection:
        names = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                                  " AND name NOT LIKE 'sqlite_%'")]
        return {n: [r[1] for r in connection.execute(f'PRAGMA table_info("{n}")')] for n in names}


def documented(samples: Path, name: str) -> dict[str, list[str]]:
    path = Path(":memory:")
    with sqlite3.connect(path) as connection:
        connection.executescript((samples / SCHEMAS / name).read_text())
        names = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                                  " AND name NOT LIKE 'sqlite_%'")]
        return {n: [r[1] for r in connection.execute(f'PRAGMA table_info("{n}")')] for n in names}


# -- Agents SDK -------------------------------------------------------------------------------------

@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


async def _turn(server: FakeOpenAI, session: Any, message: str) -> None:
    async with server.async_client(max_retries=0) as client:
        agent = Agent(name="Weather", instructions="Be brief.", tools=[get_weather],
                      model=OpenAIResponsesModel(model="gpt-4o", openai_client=client))
        result = await Runner.run(agent, message, session=session)
        if isinstance(session, AdvancedSQLiteSession):
            await session.store_run_usage(result)


@pytest.fixture(scope="module")
def advanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AdvancedSQLiteSession the real SDK wrote: a tool call, usage per turn, and a branch from turn 2."""
    path = tmp_path_factory.mktemp("agents") / "agents.db"

    async def write() -> None:
        session = AdvancedSQLiteSession(session_id="trip", db_path=path, create_tables=True)
        with FakeOpenAI() as server:
            server.script(tool_calls([{"id": "call_w", "name": "get_weather", "arguments": '{"city": "Paris"}'}],
                                     usage=make_usage(50, 10)),
                          text("Sunny in Paris.", usage=make_usage(70, 5)),
                          text("Oslo is cold.", usage=make_usage(90, 4)),
                          text("Rome is warm.", usage=make_usage(80, 4)))
            await _turn(server, session, "Weather in Paris?")
            await _turn(server, session, "And Oslo?")
            await session.create_branch_from_turn(2, "rome")
            await _turn(server, session, "Rome instead?")
        session.close()
        plain = SQLiteSession("notes", path)  # a plain session in the same file: another conversation
        await plain.add_items([{"role": "user", "content": "remember milk"},
                               {"role": "assistant", "content": [{"type": "output_text", "text": "Noted."}],
                                "type": "message", "status": "completed", "id": "msg_1"}])
        plain.close()

    asyncio.run(write())
    return path


def test_an_advanced_sqlite_session(samples: Path, advanced: Path, tmp_path: Path) -> None:
    made = tables(advanced)
    for table, columns in documented(samples, "DERIVED_openai-agents_sqlite_session_schema.sql").items():
        assert made[table] == columns  # the SDK wrote the documented layout
    assert detect_format(advanced) == "agents-db"
    before = digest(advanced)
    env = environment(tmp_path / "chats.db")
    first = run(env, "import", str(advanced))
    assert first.code == 0, first.err
    assert "Imported 2 new and 0 updated conversations, 10 messages (0 already there)" in first.out
    again = run(env, "import", str(advanced))
    assert "Imported 0 new and 0 updated conversations, 0 messages (10 already there)" in again.out
    assert digest(advanced) == before
    store = open_store(tmp_path / "chats.db")
    try:
        trip = next(r for r in store.list_conversations(limit=None) if r.title == "trip")
        assert trip.metadata["agents"]["branches"] == ["main", "rome"]
        path = store.path(trip.id)  # the head is main's tip: where a session the SDK reopens starts
        assert [m.kind for m in path] == ["response_item"] * len(path)
        kinds = [m.message.get("type", "message") for m in path]
        assert kinds == ["message", "function_call", "function_call_output", "message", "message", "message"]
        assert [m.text for m in path if m.message.get("type", "message") == "message"] == [
            "Weather in Paris?", "Sunny in Paris.", "And Oslo?", "Oslo is cold."]
        assert path[1].message["name"] == "get_weather" and path[2].message["call_id"] == path[1].message["call_id"]
        # Turn usage (two requests in turn 1) on each turn's last item.
        assert path[3].usage is not None and path[3].usage["requests"] == 2
        assert (path[3].usage["prompt_tokens"], path[3].usage["completion_tokens"]) == (120, 15)
        assert path[5].usage is not None and path[5].usage["total_tokens"] == 94
        # The branch from turn 2 shares turn 1 and leaves the tree after it.
        rome = [m for m in store.children(path[3].id) if m.id != path[4].id]
        assert [m.text for m in rome] == ["Rome instead?"]
        assert [m.text for m in store.children(rome[0].id)] == ["Rome is warm."]
        assert store.children(rome[0].id)[0].usage is not None
        assert len(store.conversation(trip.id).branches()) == 2
        times = [m.created_at for m in path]
        assert times == sorted(times)
        notes = next(r for r in store.list_conversations(limit=None) if r.title == "notes")
        assert [m.text for m in store.path(notes.id)] == ["remember milk", "Noted."]
    finally:
        store.close()


def test_a_plain_session_with_custom_table_names_and_a_broken_row(store: SQLiteStore, tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"

    async def write() -> None:
        session = SQLiteSession("s1", path, sessions_table="chats", messages_table="chat_items")
        await session.add_items([{"role": "user", "content": "hi"}, {"type": "reasoning", "id": "rs_1", "summary": []},
                                 {"role": "assistant", "content": "hello"}])
        session.close()

    asyncio.run(write())
    with sqlite3.connect(path) as connection:  # what a crash or another writer may leave behind
        connection.execute("INSERT INTO chat_items (session_id, message_data) VALUES ('s1', 'not json')")
    assert detect_format(path) == "agents-db"
    with pytest.raises(FormatError, match=r"chat_items row 4: message_data is not a JSON object"):
        store.import_conversations(read_conversations(path))
    found: list[str] = []
    [chat_id] = store.import_conversations(read_conversations(path, warnings=found)).conversation_ids
    assert len(found) == 1
    path_items = store.path(chat_id)
    assert [m.message.get("type", m.message.get("role")) for m in path_items] == ["user", "reasoning", "assistant"]


# -- LangChain --------------------------------------------------------------------------------------

def test_langchain_message_store(samples: Path, store: SQLiteStore, tmp_path: Path) -> None:
    history_module = pytest.importorskip("langchain_community.chat_message_histories")
    messages = pytest.importorskip("langchain_core.messages")
    path = tmp_path / "history.db"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the library's own, about its own APIs
        history = history_module.SQLChatMessageHistory(session_id="user-42", connection=f"sqlite:///{path}")
        other = history_module.SQLChatMessageHistory(session_id="user-7", connection=f"sqlite:///{path}")
        history.add_messages([
            messages.SystemMessage("You are helpful."),
            messages.HumanMessage("Weather in Paris?"),
            messages.AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}],
                               usage_metadata={"input_tokens": 20, "output_tokens": 5, "total_tokens": 25},
                               response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"}),
            messages.ToolMessage("Sunny", tool_call_id="call_1"),
            messages.AIMessage("It is sunny.", response_metadata={"model_name": "gpt-4o-mini",
                                                                   "finish_reason": "stop"}),
        ])
        other.add_message(messages.HumanMessage("hello"))
    made = tables(path)
    assert made == documented(samples, "DERIVED_langchain_sql_chat_message_history_schema.sql")
    assert detect_format(path) == "langchain-db"
    before = digest(path)
    ids = store.import_conversations(read_conversations(path)).conversation_ids
    assert digest(path) == before
    assert [store.get_conversation(i).title for i in ids] == ["user-42", "user-7"]
    conversation = store.path(ids[0])
    assert [m.message for m in conversation] == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "content": "Sunny", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is sunny."}]
    assert conversation[2].usage == {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
    assert (conversation[2].model, conversation[2].finish_reason) == ("gpt-4o-mini", "tool_calls")
    assert store.import_conversations(read_conversations(path)).messages_added == 0
    # The session grew: only the new turn is added.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        history.add_message(messages.HumanMessage("Thanks!"))
    grown = store.import_conversations(read_conversations(path))
    assert (grown.conversations_created, grown.messages_added) == (0, 1)
    assert json.loads(json.dumps(store.path(ids[0])[-1].message)) == {"role": "user", "content": "Thanks!"}
