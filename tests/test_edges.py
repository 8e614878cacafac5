"""Every failure named, nothing stuck: the edge cases a careful user ran into, one test each.

Each test pins one bug of the earlier version (the comment at its top says
which); the fault matrix (tests/test_faults.py) covers the API and store
faults in all four modes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chatdriver import MODES, Driver
from chatkeep import (
    AsyncChat,
    Chat,
    ChatkeepError,
    MessageError,
    ReplyNotSaved,
    ResponsesChat,
    StoreError,
    Summarize,
    TrimToBudget,
    open_store,
)
from chatkeep.store import SQLiteStore
from chatkeep.store.bulk import ImportConversation, ImportMessage
from clitools import environment, run
from fakeopenai import FakeOpenAI, drop_mid_call, echo, malformed_json, malformed_sse, response_items, text, tool_calls


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return open_store(tmp_path / "edges.db")


# -- turns -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["stream", "async-stream"])
def test_a_call_cut_mid_stream_is_kept_aside_and_the_chat_goes_on(
    mode: str, openai_server: FakeOpenAI, store: SQLiteStore
) -> None:
    # Was: the half-written call was stored, and every later send failed with PendingToolCalls.
    chat = Driver(mode, openai_server, store.new_conversation())
    openai_server.script(drop_mid_call(3), text("Fine, no tools then."))
    with pytest.raises(Exception, match="Connection"):
        chat.turn("Weather in Paris?")
    cut = chat.conversation.head
    assert cut is not None and cut.status == "incomplete" and "tool_calls" not in cut.message
    [call] = cut.metadata["unfinished_calls"]
    assert call["id"] == "call_cut" and json.loads(call["function"]["arguments"] + '"}') is not None
    assert str(chat.turn("Just tell me.").reply) == "Fine, no tools then."


def test_chat_continues_a_conversation_written_by_responses_chat(
    openai_server: FakeOpenAI, store: SQLiteStore
) -> None:
    # Was: the stored Responses items were sent raw as chat messages, and the API answered 400.
    conversation = store.new_conversation("agentic")
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"}
    openai_server.script(
        response_items([reasoning, {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "weather",
                                    "arguments": '{"city":"Oslo"}'},
                        {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "time", "arguments": "{}"}]),
        text("Rainy, 9:00."), text("Still rainy."),
    )
    responses = ResponsesChat(conversation, openai_server.client(max_retries=0))
    responses.send("Weather and time in Oslo?")
    responses.add_tool_result("call_a", "rain")
    responses.add_tool_result("call_b", "9:00")
    responses.send()
    reply = Chat(conversation, openai_server.client(max_retries=0)).send("And now?")
    assert str(reply) == "Still rainy."
    sent = openai_server.requests[-1].body["messages"]
    assert sent[0] == {"role": "user", "content": "Weather and time in Oslo?"}
    assert sent[1]["role"] == "assistant" and [c["id"] for c in sent[1]["tool_calls"]] == ["call_a", "call_b"]
    assert sent[2:4] == [{"role": "tool", "tool_call_id": "call_a", "content": "rain"},
                         {"role": "tool", "tool_call_id": "call_b", "content": "9:00"}]
    assert sent[4]["role"] == "assistant" and sent[-1] == {"role": "user", "content": "And now?"}
    assert not any(m.get("type") == "reasoning" for m in sent)  # kept in the store, not sent
    assert store.count_messages("agentic") == 9


def test_chat_refuses_an_item_it_cannot_carry_before_the_call(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    conversation = store.new_conversation()
    conversation.append({"role": "user", "content": "Search the web"}, kind="response_item")
    conversation.append({"type": "web_search_call", "id": "ws_1", "status": "completed"}, kind="response_item")
    with pytest.raises(ChatkeepError, match="web_search_call item.*continue this conversation with ResponsesChat"):
        Chat(conversation, openai_server.client(max_retries=0)).send("Go on")
    assert openai_server.requests == []


def test_responses_chat_continues_a_chat_conversation_with_images(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    conversation = store.new_conversation()
    picture = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    conversation.append({"role": "user", "content": [{"type": "text", "text": "What is this?"}, picture]})
    conversation.append({"role": "assistant", "content": "A tiny image."})
    openai_server.script(text("Yes."))
    ResponsesChat(conversation, openai_server.client(max_retries=0)).send("Sure?")
    sent = openai_server.requests[0].body["input"]
    assert sent[0] == {"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}]}
    conversation.append({"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA==",
                                                                                             "format": "wav"}}]})
    with pytest.raises(ChatkeepError, match="'input_audio' content part has no Responses API form"):
        ResponsesChat(conversation, openai_server.client(max_retries=0)).send()
    assert len(openai_server.requests) == 1


def test_trimming_never_sends_a_tool_result_without_its_call(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    # Was: [system, tool result] was sent without the call when only the result fitted.
    from chatkeep import ContextBudgetError, TokenCounter
    from chatkeep.context.tokens import REPLY_PRIMING

    conversation = store.new_conversation()
    system = {"role": "system", "content": "Be brief."}
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "result " * 150}
    for message in (system, {"role": "user", "content": "word " * 300}, call, result):
        conversation.append(message)
    count = TokenCounter("o200k_base").message
    only_the_result = count(system) + count(result) + REPLY_PRIMING + 2
    chat = Chat(conversation, openai_server.client(max_retries=0), context=TrimToBudget(), budget=only_the_result)
    with pytest.raises(ContextBudgetError):
        chat.send()  # the result cannot go without its call, and both do not fit: refused, nothing sent
    assert openai_server.requests == []
    openai_server.script(text("ok"))
    Chat(conversation, openai_server.client(max_retries=0), context=TrimToBudget(),
         budget=only_the_result + count(call)).send()
    assert [m["role"] for m in openai_server.requests[0].body["messages"]] == ["system", "assistant", "tool"]


def test_a_summary_call_is_held_to_the_limit_it_was_planned_with(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    # Was: max_summary_tokens shaped the plan but was never sent, so a long summary broke it.
    conversation = store.new_conversation()
    for n in range(8):
        conversation.append({"role": "user" if n % 2 == 0 else "assistant", "content": f"message {n} " + "x " * 200})
    openai_server.script(text("A summary."), text("ok"))
    chat = Chat(conversation, openai_server.client(max_retries=0), budget=1_200,
                context=Summarize(max_summary_tokens=150))
    chat.send("Go on")
    assert openai_server.requests[0].body["max_completion_tokens"] == 150


def test_cancelling_a_send_while_its_prompt_is_saved_marks_it_unanswered(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    # Was: the prompt was saved, but the cancellation skipped marking it unanswered.
    file = tmp_path / "cancel.db"
    store = open_store(file)
    conversation = store.new_conversation()
    blocker = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # the prompt's save waits for this lock

    async def main() -> None:
        async with openai_server.async_client(max_retries=0) as client:
            task = asyncio.create_task(AsyncChat(conversation, client).send("hello"))
            await asyncio.sleep(0.3)
            task.cancel()
            await asyncio.sleep(0.1)
            blocker.execute("ROLLBACK")
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    blocker.close()
    [prompt] = conversation.history()
    assert prompt.status == "error" and "CancelledError" in (prompt.error or "")
    assert openai_server.requests == []


def test_a_reply_the_store_cannot_keep_is_handed_over(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    file = tmp_path / "late.db"
    conversation = open_store(file, busy_timeout=0.2).new_conversation()
    openai_server.script(echo(chunk_size=1, chunk_delay=0.05))
    stream = Chat(conversation, openai_server.client(max_retries=0)).stream("hi")
    assert next(stream) == "r"
    blocker = sqlite3.connect(file, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the lock when the reply ends
    try:
        with pytest.raises(ReplyNotSaved) as caught:
            "".join(stream)
    finally:
        blocker.execute("ROLLBACK")
    assert caught.value.reply == {"role": "assistant", "content": "re: hi"} and "write lock" in str(caught.value)


# -- store URLs, files and errors --------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite://chats.db", "sqlite://", "sqlite:///"])
def test_a_sqlite_url_that_names_no_file_is_refused(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Was: sqlite://chats.db opened hats.db; sqlite:// opened a store that vanished at exit.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="names no SQLite file: write sqlite:///relative.db"):
        open_store(url)
    assert list(tmp_path.iterdir()) == []
    assert open_store("sqlite:///chats.db").file == "chats.db"


def test_another_applications_database_is_refused_untouched(tmp_path: Path) -> None:
    theirs = tmp_path / "app.db"
    with sqlite3.connect(theirs) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        db.execute("INSERT INTO invoices (total) VALUES (9.5)")
    before = theirs.read_bytes()
    with pytest.raises(StoreError, match=r"app\.db is not a chatkeep database \(it holds invoices\); it was left untouched"):
        open_store(theirs)
    assert theirs.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]
    result = run(environment(theirs), "list")
    assert result.code == 1 and "not a chatkeep database" in result.err and "Traceback" not in result.err


def test_a_read_only_database_opens_for_reading_and_refuses_writes(tmp_path: Path) -> None:
    file = tmp_path / "ro.db"
    writable = open_store(file)
    writable.new_conversation("kept").append({"role": "user", "content": "hi"})
    writable.close()
    file.chmod(0o444)
    store = open_store(file)
    assert store.read_only and store.conversation("kept").messages == [{"role": "user", "content": "hi"}]
    with pytest.raises(StoreError, match=r"ro\.db is read-only \(the file is read-only \(mode 0444\)\)"):
        store.conversation("kept").append({"role": "user", "content": "more"})
    shown = run(environment(file), "show", "kept")
    assert shown.code == 0 and "hi" in shown.out
    refused = run(environment(file), "rename", "kept", "New title")
    assert refused.code == 1 and "read-only" in refused.err and "Traceback" not in refused.err


def test_a_new_store_where_nothing_can_be_written_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot create the database here"):
        open_store("/sys/chatkeep-test.db")  # the kernel refuses files there, even to root
    result = run(environment(Path("/sys/chatkeep-test.db")), "list")
    assert result.code == 1 and "cannot create the database here" in result.err and "Traceback" not in result.err


def test_a_garbled_database_is_a_clear_error_and_left_as_it_is(tmp_path: Path) -> None:
    file = tmp_path / "garbled.db"
    store = open_store(file)
    conversation = store.new_conversation("c")
    for n in range(200):
        conversation.append({"role": "user", "content": f"message {n} " * 20})
    store.close()
    data = bytearray(file.read_bytes())
    for page in range(1, len(data) // 4096):  # every page but the header's: the tables' contents are gone
        data[page * 4096:page * 4096 + 64] = b"\xff" * 64
    file.write_bytes(bytes(data))
    result = run(environment(file), "show", "c")
    assert result.code == 1 and "garbled.db: the database is damaged" in result.err and "Traceback" not in result.err
    assert file.read_bytes() == bytes(data)


def test_a_failed_open_keeps_no_file_open(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all " * 100)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(StoreError):
            open_store(junk)
    assert len(os.listdir("/proc/self/fd")) <= before


UNPRIVILEGED = """
import os, sys
# Loaded before dropping privileges: this machine's Python lives where the unprivileged user cannot read.
import chatkeep, chatkeep.store.sqlite, chatkeep.store.jsonfile, sqlite3, json, filelock, encodings.idna, msgspec, ulid
if os.geteuid() == 0:  # read as someone the file modes apply to
    os.setgid(65534)
    os.setuid(65534)
store = chatkeep.open_store(sys.argv[1])
print(json.dumps(store.conversation("kept").messages))
try:
    store.conversation("kept").append({"role": "user", "content": "more"})
except chatkeep.StoreError as exc:
    print(exc)
"""


def test_a_database_in_a_read_only_folder_can_be_read() -> None:
    # Was: a read-only file or folder (or read-only media) could not even be read.
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="chatkeep-shelf-", dir="/tmp"))  # reachable by the unprivileged reader
    folder.chmod(0o755)
    file = folder / "archive.db"
    with open_store(file) as store:
        store.new_conversation("kept").append({"role": "user", "content": "old"})
    file.chmod(0o444)
    folder.chmod(0o555)
    try:
        done = subprocess.run([sys.executable, "-c", UNPRIVILEGED, str(file)], capture_output=True, text=True,
                              timeout=60)
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert json.loads(lines[0]) == [{"role": "user", "content": "old"}]
    assert "archive.db is read-only" in lines[1]


# -- the tutorial's JSON file ------------------------------------------------------------


def test_a_read_only_json_file_is_never_replaced(tmp_path: Path) -> None:
    # Was: a 0400 file was silently replaced by a writable copy.
    file = tmp_path / "history.json"
    file.write_text(json.dumps([{"role": "user", "content": "hi"}], indent=2))
    file.chmod(0o400)
    before = file.read_bytes()
    with pytest.raises(StoreError, match=r"history\.json is read-only \(mode 0400\)"):
        open_store(file).conversation("history").append({"role": "assistant", "content": "hello"})
    assert file.read_bytes() == before and file.stat().st_mode & 0o777 == 0o400


def test_a_json_file_behind_a_symlink_is_written_through_it(tmp_path: Path) -> None:
    # Was: the link was replaced by a regular file and its target went stale.
    real = tmp_path / "data" / "history.json"
    real.parent.mkdir()
    real.write_text("[]")
    real.chmod(0o640)
    link = tmp_path / "history.json"
    link.symlink_to(real)
    open_store(link).conversation("history").append({"role": "user", "content": "through the link"})
    assert link.is_symlink() and json.loads(real.read_text()) == [{"role": "user", "content": "through the link"}]
    assert real.stat().st_mode & 0o777 == 0o640


# -- what a message may hold --------------------------------------------------------------


@pytest.mark.parametrize("value, field", [
    ({7: "x"}, r"message\.extra\[7\]: object keys must be strings"),
    ({(1, 2): "x"}, r"message\.extra\[\(1, 2\)\]: object keys must be strings"),
    (b"bytes", r"message\.extra: bytes is not a JSON value"),
    ({"when": __import__("datetime").date(2026, 1, 1)}, r"message\.extra\.when: date is not a JSON value"),
    ({"tags": {"a"}}, r"message\.extra\.tags: set is not a JSON value: use a list"),
])
def test_values_json_cannot_hold_are_refused_by_field(value: Any, field: str, store: SQLiteStore) -> None:
    # Was: {7: ...} came back as {"7": ...}; bytes, dates and sets failed with a bare TypeError.
    conversation = store.new_conversation()
    with pytest.raises(MessageError, match=field):
        conversation.append({"role": "user", "content": "hi", "extra": value})
    assert len(conversation) == 0


# -- imports -------------------------------------------------------------------------------


def test_an_export_with_an_absurd_time_imports_and_lists(tmp_path: Path) -> None:
    # Was: create_time in year 68 imported, then `chatkeep list` failed for every conversation.
    export = tmp_path / "conversations.json"
    node = {"id": "m1", "parent": None, "children": [], "message": {
        "id": "m1", "author": {"role": "user"}, "create_time": -60_000_000_000,
        "content": {"content_type": "text", "parts": ["Hello from the past"]}}}
    export.write_text(json.dumps([{"id": "c1", "title": "Old", "create_time": -60_000_000_000,
                                   "mapping": {"m1": node}, "current_node": "m1"}]))
    env = environment(tmp_path / "imported.db")
    assert run(env, "import", str(export)).code == 0
    listed = run(env, "list")
    assert listed.code == 0 and "Old" in listed.out


def test_an_import_parses_everything_before_it_takes_the_write_lock(tmp_path: Path) -> None:
    # Was: a long import held the write lock for its whole run, parsing included.
    file = tmp_path / "busy.db"
    store = open_store(file)
    other = open_store(file, busy_timeout=0.5)
    other_conversation = other.new_conversation("other")
    parsed = threading.Event()

    def slow_source() -> Any:
        for n in range(5):
            time.sleep(0.3)  # reading a big file
            yield ImportConversation([ImportMessage({"role": "user", "content": f"imported {n}"}, key="m")],
                                     key=f"slow:{n}")
        parsed.set()

    importing = threading.Thread(target=lambda: store.import_conversations(slow_source()))
    importing.start()
    time.sleep(0.5)
    other_conversation.append({"role": "user", "content": "written while the import reads"})  # no lock to wait for
    importing.join()
    assert parsed.is_set() and store.count_conversations() == 6


def test_a_bad_record_fails_the_import_before_the_store_is_touched(tmp_path: Path) -> None:
    store = open_store(tmp_path / "bad.db")
    good = ImportConversation([ImportMessage({"role": "user", "content": "fine"})], key="good")
    bad = ImportConversation([ImportMessage({"role": "robot", "content": "no"})], key="bad")
    with pytest.raises(MessageError, match="unknown role 'robot'"):
        store.import_conversations([good, bad])
    assert store.count_conversations() == 0


# -- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize("reply", [malformed_json(), malformed_sse(after=2)], ids=["broken JSON", "broken SSE event"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_a_broken_answer_is_one_line_in_the_cli(reply: Any, stream: bool, tmp_path: Path,
                                                openai_server: FakeOpenAI) -> None:
    # Was: a Python traceback.
    openai_server.script(reply)
    args = ["chat", "-m", "hello"] + ([] if stream else ["--no-stream"])
    result = run(environment(tmp_path / "cli.db", openai_server.base_url), *args)
    assert result.code == 3 and "Traceback" not in result.err
    assert "not valid JSON" in result.err or "incomplete" in result.err or "answer" in result.err


def test_chatkeep_path_hides_a_password(tmp_path: Path) -> None:
    # Was: `chatkeep path` printed the PostgreSQL password.
    env = environment(tmp_path / "x.db")
    env["CHATKEEP_DB"] = "postgresql://alice:s3cr3t-pw@db.example/chats?password=other-secret"
    result = run(env, "path")
    assert result.code == 0 and "s3cr3t-pw" not in result.out and "other-secret" not in result.out
    assert result.out.strip() == "postgresql://alice:***@db.example/chats?password=***"


def test_stored_text_never_drives_the_terminal(tmp_path: Path) -> None:
    # Was: a message could clear the screen or write the clipboard (OSC 52) when shown.
    db = tmp_path / "escapes.db"
    store = open_store(db)
    conversation = store.new_conversation("c", title="\x1b]0;owned\x07Title")
    conversation.append({"role": "user", "content": "hi \x1b[2J\x1b]52;c;ZXZpbA==\x07 there\r\x9b31m"})
    env = environment(db)
    for args in (["show", "c"], ["list"], ["search", "hi"], ["show", "c", "--tree"]):
        result = run(env, *args)
        assert result.code == 0, result.err
        assert not any(ch in result.out for ch in "\x1b\x07\r\x9b"), (args, result.out)
    assert "␛[2J" in run(env, "show", "c").out


@pytest.mark.parametrize("mode", MODES)
def test_an_empty_reply_from_the_content_filter_is_kept(mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    # Was: content null with no tool calls could not be stored, and the prompt was not marked.
    from fakeopenai import filtered

    chat = Driver(mode, openai_server, store.new_conversation())
    openai_server.script(filtered())
    reply = chat.turn("Something the filter stops").reply
    assert reply is not None and reply.finish_reason == "content_filter" and reply.message.message["content"] == ""
    assert [m.status for m in chat.conversation.history()] == ["complete", "complete"]


def test_tool_calls_still_round_trip(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    chat = Chat(store.new_conversation(), openai_server.client(max_retries=0))
    openai_server.script(tool_calls([{"id": "c1", "name": "f", "arguments": "{}"}]), text("done"))
    assert chat.send("use f").tool_calls[0]["id"] == "c1"
    chat.add_tool_result("c1", "42")
    assert str(chat.send()) == "done"
