"""Nothing lost, nothing misplaced: turns and heads under concurrency, on SQLite, PostgreSQL and the JSON file.

Each case pins a bug the first version had (see tests/racecases.py for the
scenarios): replies were saved under whatever the head was when they arrived,
undo and pop read the tail and moved the head in two steps, the JSON file was
rewritten without a lock, and a session batch was several transactions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatkeep import Chat, Unsupported, open_store
from clitools import environment, run
from fakeopenai import FakeOpenAI, echo, text
from racecases import (
    Figures,
    batch_is_one_transaction,
    chats_in_tasks,
    chats_in_threads,
    json_file_chats,
    json_file_processes,
    session_add_racing_pop,
    undo_racing_appends,
)


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "races.db")


def assert_sound(figures: Figures) -> None:
    print(f"\nrace figures: {figures.scenario}: {figures.workers}, {figures.operations} operations,"
          f" lost {figures.lost}, misplaced {figures.misplaced}")
    assert (figures.lost, figures.misplaced, figures.notes) == (0, 0, [])


def test_two_chats_in_threads_keep_each_reply_under_its_prompt(target: str, openai_server: FakeOpenAI) -> None:
    assert_sound(chats_in_threads(target, openai_server, chats=2, turns=6))


def test_two_async_chats_keep_each_reply_under_its_prompt(target: str, openai_server: FakeOpenAI) -> None:
    assert_sound(chats_in_tasks(target, openai_server, chats=2, turns=6))


def test_sends_gathered_on_one_async_chat_keep_each_reply_under_its_prompt(
    target: str, openai_server: FakeOpenAI
) -> None:
    assert_sound(chats_in_tasks(target, openai_server, chats=2, turns=6, shared=True))


def test_undo_racing_appends_steps_back_exactly_one_turn(target: str) -> None:
    assert_sound(undo_racing_appends(target))


def test_session_pops_racing_adds_lose_nothing_and_pop_nothing_twice(target: str) -> None:
    pytest.importorskip("agents")
    assert_sound(session_add_racing_pop(target))


def test_a_session_batch_is_one_transaction(target: str) -> None:
    pytest.importorskip("agents")
    assert batch_is_one_transaction(target)


def test_a_reply_that_lost_the_race_says_it_branched(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    store = open_store(tmp_path / "b.db")
    conversation = store.new_conversation("b")
    openai_server.script(text("first"), echo(delay=0.3))
    chat = Chat(conversation, openai_server.client(max_retries=0))
    chat.send("one")
    stream = chat.stream("two")
    assert next(stream) == "re: "  # the prompt is saved and the reply has begun
    moved = conversation.append({"role": "user", "content": "written meanwhile elsewhere"})
    rest = "".join(stream)
    assert rest == "two"
    assert stream.reply is not None and stream.reply.branched
    prompt = store.get_message(stream.reply.message.parent_id or "")
    assert prompt.message == {"role": "user", "content": "two"}
    assert conversation.head == moved  # the head stays where the other writer put it
    openai_server.script(echo())
    chat.send("three")  # the chat reloads: its request is the stored path, with the message written meanwhile
    assert openai_server.requests[-1].body["messages"][-2:] == [moved.message, {"role": "user", "content": "three"}]


# -- the tutorial's JSON file --------------------------------------------------------


def test_processes_appending_to_one_json_file_lose_nothing(tmp_path: Path) -> None:
    assert_sound(json_file_processes(str(tmp_path / "conversation_history.json"), processes=4, appends=50))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".conversation_history.json.lock",
                                                          "conversation_history.json"]


def test_chats_on_one_json_file_take_turns(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    assert_sound(json_file_chats(str(tmp_path / "conversation_history.json"), openai_server))


def test_a_turn_on_a_busy_json_file_is_refused_before_the_call(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    from chatkeep import JSONFileStore

    path = tmp_path / "conversation_history.json"
    store = JSONFileStore(path, turn_timeout=0.2)
    lease = store.lease("conversation_history")  # another turn holds the file
    try:
        chat = Chat(store.conversation("conversation_history"), openai_server.client(max_retries=0))
        with pytest.raises(Unsupported, match="in use by another chat turn"):
            chat.send("Hello?")
    finally:
        lease.release()
    assert openai_server.requests == [] and not path.exists()


def test_json_file_reads_are_copies(tmp_path: Path) -> None:
    store = open_store(tmp_path / "h.json")
    conversation = store.conversation("h")
    conversation.append({"role": "user", "content": "original"})
    conversation.messages[0]["content"] = "changed for one request"
    conversation.history()[0].message["content"] = "changed again"
    conversation.append({"role": "assistant", "content": "reply"})
    assert json.loads((tmp_path / "h.json").read_text())[0]["content"] == "original"


def test_importing_the_same_file_into_a_json_store_twice_adds_nothing(tmp_path: Path) -> None:
    source = tmp_path / "exported.json"
    source.write_text(json.dumps([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]))
    target = tmp_path / "conversation_history.json"
    env = environment(target)
    for _ in range(2):
        assert run(env, "import", str(source)).code == 0
    assert json.loads(target.read_text()) == json.loads(source.read_text())
    more = tmp_path / "more.json"
    more.write_text(json.dumps([*json.loads(source.read_text()), {"role": "user", "content": "And?"}]))
    assert run(env, "import", str(more)).code == 0
    assert [m["content"] for m in json.loads(target.read_text())] == ["Hi", "Hello", "And?"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"role": "user", "content": "Something else"}]))
    before = target.read_bytes()
    refused = run(env, "import", str(other))
    assert refused.code != 0 and "holds one conversation as a plain list" in refused.err
    assert target.read_bytes() == before


def test_fork_of_a_json_file_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "conversation_history.json"
    target.write_text(json.dumps([{"role": "user", "content": "Hi"}], indent=2))
    before = target.read_bytes()
    result = run(environment(target), "fork", "conversation_history")
    assert result.code != 0
    assert "conversation_history.json holds one conversation as a plain list" in result.err
    assert "use a .db store for branches" in result.err and "Traceback" not in result.err
    assert target.read_bytes() == before
    with pytest.raises(Unsupported):
        open_store(target).fork("conversation_history")


def test_regenerating_on_a_json_file_is_refused_before_the_call(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    target = tmp_path / "conversation_history.json"
    store = open_store(target)
    openai_server.script(text("Hello!"))
    chat = Chat(store.conversation("conversation_history"), openai_server.client(max_retries=0))
    chat.send("Hi")
    before = target.read_bytes()
    with pytest.raises(Unsupported, match="keep a second branch"):
        chat.retry()
    assert len(openai_server.requests) == 1 and target.read_bytes() == before


# -- through the CLI -----------------------------------------------------------------


def test_a_switch_while_a_reply_streams_leaves_the_reply_under_its_prompt(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    db = tmp_path / "cli.db"
    store = open_store(db)
    conversation = store.new_conversation("c")
    first = conversation.append({"role": "user", "content": "first"})
    conversation.append({"role": "assistant", "content": "re: first"})
    openai_server.script(echo(chunk_size=1, chunk_delay=0.25))  # slower than starting `chatkeep switch`
    env = environment(db, openai_server.base_url)
    chat = subprocess.Popen([sys.executable, "-m", "chatkeep", "chat", "--cid", "c", "-m", "second"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not openai_server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run(env, "switch", "c", first.id).code == 0  # while the reply streams
    out, err = chat.communicate(timeout=60)
    assert chat.returncode == 0 and out.strip() == "re: second"
    assert "kept on a branch of its own: chatkeep branches c" in err
    reply = [m for m in store.find_messages("c", kind="chat") if m.message["content"] == "re: second"][0]
    assert store.get_message(reply.parent_id or "").message == {"role": "user", "content": "second"}
    assert store.get_conversation("c").head_id == first.id


def test_reimporting_an_export_never_rewinds_turns_added_since(tmp_path: Path, samples: Path) -> None:
    export = samples / "chatgpt" / "librechat_chatgpt-export.json"
    db = tmp_path / "import.db"
    env = environment(db)
    assert run(env, "import", str(export)).code == 0
    store = open_store(db)
    record = store.list_conversations(limit=1)[0]
    conversation = store.conversation(record.id)
    added = conversation.append({"role": "user", "content": "a turn added in chatkeep"})
    assert run(env, "import", str(export)).code == 0
    assert store.get_conversation(record.id).head_id == added.id
    assert conversation.messages[-1] == {"role": "user", "content": "a turn added in chatkeep"}
