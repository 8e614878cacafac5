"""Importing Simon Willison's llm: ``llm logs --json``, and ``logs.db`` in both of its layouts.

The databases are made by llm itself: its Python API logs real conversations
with its built-in OpenAI models pointed at the loopback server
(tests/fakeopenai.py), and its own migrations make the classic tables. llm
0.32 and later no longer write the classic ``responses`` rows (they read
them), so those rows are written here as llm 0.31's ``Response.log_to_db``
wrote them, and llm's own ``llm logs --json`` must read them back as the
conversation they are before chatkeep imports them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatkeep import open_store
from chatkeep.formats import detect_format, read_conversations
from chatkeep.store import SQLiteStore, StoredMessage
from clitools import environment, run
from fakeopenai import FakeOpenAI, text, tool_calls

llm = pytest.importorskip("llm")
sqlite_utils = pytest.importorskip("sqlite_utils")
from llm.logs import LogStore  # noqa: E402
from llm.migrations import MIGRATIONS, ensure_migrations_table  # noqa: E402

SAMPLE = "other/llm/DERIVED_llm_logs_json_docs_example.json"
SCHEMAS = "other/db_schemas"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = open_store(tmp_path / "chats.db")
    yield opened
    opened.close()


def png() -> bytes:
    """A real 1x1 PNG, so llm's type sniffing sees an image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00\xff\x00")) + \
        chunk(b"IEND", b"")


def llm_logs_json(db: Path, tmp_path: Path) -> Path:
    """``llm logs --json`` of a database, as the real llm command prints it (run in this process: it is quicker)."""
    from click.testing import CliRunner
    from llm.cli import cli

    out = tmp_path / "logs.json"
    result = CliRunner().invoke(cli, ["logs", "--json", "-n", "0", "-d", str(db)],
                                env={"LLM_USER_PATH": str(tmp_path / "llm-user")}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out.write_text(result.output)
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bodies(path: list[StoredMessage]) -> list[dict[str, Any]]:
    return [m.message for m in path]


# -- llm logs --json -----------------------------------------------------------------------------------

def test_the_documented_logs_json(samples: Path, store: SQLiteStore) -> None:
    [row] = json.loads((samples / SAMPLE).read_text())
    [chat_id] = store.import_conversations(read_conversations(samples / SAMPLE)).conversation_ids
    chat = store.conversation(chat_id)
    assert chat.title == "hi" and chat.record.metadata["llm"] == {
        "conversation_id": row["conversation_id"], "model": row["conversation_model"]}
    prompt, reply = chat.history()
    assert bodies([prompt, reply]) == [{"role": "user", "content": "hi"},
                                       {"role": "assistant", "content": row["response"]}]
    assert reply.model == "anthropic/claude-3-haiku-20240307"
    assert reply.usage == {"prompt_tokens": 8, "completion_tokens": 12, "total_tokens": 20}
    assert reply.created_at.isoformat() == "2025-02-16T22:34:30.374882+00:00" == prompt.created_at.isoformat()
    assert reply.metadata["llm"] == {"duration_ms": 560, "id": row["id"]}
    assert store.import_conversations(read_conversations(samples / SAMPLE)).messages_added == 0


# -- the message store (llm 0.32+) -----------------------------------------------------------------------

def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.fixture(scope="module")
def message_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logs.db the real llm wrote: a chat, a tool chain, an image, and a fork of the thread (tests only read it)."""
    path = tmp_path_factory.mktemp("llm") / "logs.db"
    db = sqlite_utils.Database(path)
    model = llm.get_model("gpt-4o-mini")
    with FakeOpenAI() as server:
        model.api_base = server.base_url
        server.script(text("Hello there"), tool_calls([{"id": "call_1", "name": "add", "arguments": '{"a": 1, "b": 2}'}]),
                      text("It is 3"), text("A green pixel"), text("Another answer"))
        conversation = model.conversation()
        first = conversation.prompt("hi", key="sk-test", system="Be brief")
        first.text()
        first.log_to_db(db)
        for response in conversation.chain("what is 1+2", tools=[add], key="sk-test").responses():
            response.text()
            response.log_to_db(db)
        picture = conversation.prompt("what is this?", key="sk-test", attachments=[llm.Attachment(content=png())])
        picture.text()
        picture.log_to_db(db)
        logs = LogStore(db)
        fork = logs.fork(db.execute("SELECT tip_message_hash FROM turns ORDER BY datetime_utc").fetchone()[0],
                         name="other way", forked_from=conversation.id)
        other = model.conversation()
        other.responses.append(first)
        branch = other.prompt("something else", key="sk-test", system="Be brief")
        branch.text()
        logs.log(branch, thread_id=fork)
    db.close()
    return path


def test_the_message_store(message_store: Path, tmp_path: Path) -> None:
    assert detect_format(message_store) == "llm-db"
    before = digest(message_store)
    env = environment(tmp_path / "chats.db")
    first = run(env, "import", str(message_store))
    assert first.code == 0, first.err
    assert "Imported 1 new and 0 updated conversations, 11 messages (0 already there)" in first.out
    again = run(env, "import", str(message_store))
    assert "Imported 0 new and 0 updated conversations, 0 messages (11 already there)" in again.out
    assert digest(message_store) == before  # opened read-only: not a byte changed
    assert not Path(f"{message_store}-journal").exists()
    store = open_store(tmp_path / "chats.db")
    try:
        [record] = store.list_conversations(limit=None)
        assert record.title == "hi" and record.metadata["llm"]["forks"]
        path = store.path(record.id)  # the first thread's tip is the head; the fork is a branch
        assert bodies(path)[:2] == [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "hi"}]
        assert bodies(path)[3:7] == [
            {"role": "user", "content": "what is 1+2"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "3"},
            {"role": "assistant", "content": "It is 3"}]
        question = path[7].message["content"]
        assert question[0] == {"type": "text", "text": "what is this?"}
        assert question[1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
        assert path[7].metadata["llm"]["attachments"][0]["type"] == "image/png"
        assert path[-1].message == {"role": "assistant", "content": "A green pixel"}
        answers = [m for m in path if m.role == "assistant"]
        assert [m.model for m in answers] == ["gpt-4o-mini"] * 4
        assert answers[1].finish_reason == "tool_calls" and answers[1].usage is not None
        assert all(m.usage and m.usage["total_tokens"] > 0 for m in answers)
        times = [m.created_at for m in path]
        assert times == sorted(times) and times[0] == times[2]  # the first turn's time for all it reached
        hello = path[2]
        assert [m.message["content"] for m in store.children(hello.id)] == ["what is 1+2", "something else"]
        assert len(store.conversation(record.id).branches()) == 2
    finally:
        store.close()


def test_llm_logs_json_of_the_message_store(message_store: Path, tmp_path: Path, store: SQLiteStore) -> None:
    # The same conversation as llm prints it: one row per model call, the fork a conversation of its own.
    logs = llm_logs_json(message_store, tmp_path)
    assert detect_format(logs) == "llm"
    ids = store.import_conversations(read_conversations(logs)).conversation_ids
    main, fork = (store.conversation(i) for i in ids)
    assert [m.role for m in main.history()] == ["system", "user", "assistant", "user", "assistant", "tool",
                                                "assistant", "user", "assistant"]
    assert main.history()[5].message == {"role": "tool", "tool_call_id": "call_1", "content": "3"}
    # The JSON names the image (its bytes stay in the database): kept in metadata, the text as it was.
    assert main.history()[7].message["content"] == "what is this?"
    assert main.history()[7].metadata["llm"]["attachments"][0]["type"] == "image/png"
    assert [m.message["content"] for m in fork.history()][-2:] == ["something else", "Another answer"]
    assert store.import_conversations(read_conversations(logs)).messages_added == 0


# -- the classic layout (llm up to 0.31) ------------------------------------------------------------------

def classic_database(path: Path) -> None:
    """A logs.db of llm 0.31: llm's own migrations m001-m021, and rows as 0.31's Response.log_to_db wrote them."""
    db = sqlite_utils.Database(path)
    ensure_migrations_table(db)
    for migration in MIGRATIONS:
        if migration.__name__ > "m022":
            break
        migration(db)
        db["_llm_migrations"].insert({"name": migration.__name__, "applied_at": "2025-05-13 10:00:00"})
    db["conversations"].insert({"id": "01jv000000000000000000conv", "name": "Weather in Paris", "model": "gpt-4o-mini"})
    tool_id = db["tools"].insert({"hash": "h1", "name": "get_weather", "description": "Weather for a city",
                                  "input_schema": '{"type": "object"}', "plugin": None}).last_pk
    fragment_id = db["fragments"].insert({"hash": "f1", "content": "You are a weather bot.",
                                          "datetime_utc": "2025-05-13T10:00:00", "source": "bot.txt"}).last_pk

    def response(key: str, prompt: str, system: str | None, answer: str, when: str, **extra: Any) -> None:
        db["responses"].insert({
            "id": key, "model": "gpt-4o-mini", "prompt": prompt, "system": system, "prompt_json": "{}",
            "options_json": "{}", "response": answer, "response_json": json.dumps({"finish_reason": extra.pop(
                "finish", "stop")}), "conversation_id": "01jv000000000000000000conv", "duration_ms": 420,
            "datetime_utc": when, "input_tokens": 30, "output_tokens": 8, "token_details": None, "schema_id": None,
            "resolved_model": "gpt-4o-mini-2024-07-18", **extra})
        db["tool_responses"].insert({"tool_id": tool_id, "response_id": key})

    response("01jv00000000000000000resp1", "Weather in Paris?", "Answer briefly.", "", "2025-05-13T10:00:01.100000")
    db["system_fragments"].insert({"response_id": "01jv00000000000000000resp1", "fragment_id": fragment_id, "order": 0})
    db["attachments"].insert({"id": "att1", "type": "image/png", "path": None, "url": None, "content": png()})
    db["prompt_attachments"].insert({"response_id": "01jv00000000000000000resp1", "attachment_id": "att1", "order": 0})
    db["tool_calls"].insert({"response_id": "01jv00000000000000000resp1", "tool_id": tool_id, "name": "get_weather",
                             "arguments": '{"city": "Paris"}', "tool_call_id": "call_p"})
    # The chain's next call sends the tool results with an empty prompt and no system (as llm's chains do).
    response("01jv00000000000000000resp2", "", None, "18C and raining.", "2025-05-13T10:00:02.200000")
    db["tool_results"].insert({"response_id": "01jv00000000000000000resp2", "tool_id": tool_id, "name": "get_weather",
                               "output": "18C, rain", "tool_call_id": "call_p", "instance_id": None,
                               "exception": None})
    db.close()


def _columns(connection: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                               " AND name NOT LIKE 'responses_fts%' AND name NOT LIKE 'sqlite_%'")]
    return {t: [r[1] for r in connection.execute(f'PRAGMA table_info("{t}")')] for t in tables}


def test_the_classic_logs_db(samples: Path, tmp_path: Path, store: SQLiteStore) -> None:
    path = tmp_path / "logs.db"
    classic_database(path)
    with sqlite3.connect(":memory:") as documented, sqlite3.connect(path) as made:
        documented.executescript((samples / SCHEMAS / "DERIVED_llm_0.31.1_logs_db_schema.sql").read_text())
        assert _columns(made) == _columns(documented)  # llm's migrations make the documented layout
    logs = llm_logs_json(path, tmp_path)
    [row1, row2] = json.loads(logs.read_text())  # llm itself reads the rows back
    assert row1["tool_calls"][0]["name"] == "get_weather" and row2["tool_results"][0]["output"] == "18C, rain"
    assert detect_format(path) == "llm-db"
    before = digest(path)
    [chat_id] = store.import_conversations(read_conversations(path)).conversation_ids
    assert digest(path) == before
    chat = store.conversation(chat_id)
    assert chat.title == "Weather in Paris"
    history = chat.history()
    assert bodies(history)[0] == {"role": "system", "content": "You are a weather bot.\n\nAnswer briefly."}
    assert history[1].message["content"][0] == {"type": "text", "text": "Weather in Paris?"}
    assert history[1].message["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert history[1].metadata["llm"]["attachments"][0]["content_length"] == len(png())
    assert bodies(history)[2:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_p", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_p", "content": "18C, rain"},
        {"role": "assistant", "content": "18C and raining."}]
    assert history[2].model == "gpt-4o-mini-2024-07-18" and history[2].metadata["llm"]["duration_ms"] == 420
    assert history[-1].usage == {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38}
    assert history[-1].created_at == dt.datetime(2025, 5, 13, 10, 0, 2, 200000, tzinfo=dt.timezone.utc)
    assert store.import_conversations(read_conversations(path)).messages_added == 0
    # llm logs --json of the same database gives the same messages: nothing new.
    again = store.import_conversations(read_conversations(logs))
    assert (again.conversations_created, again.messages_added) == (0, 0)
