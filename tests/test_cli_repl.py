"""The interactive chat on a real pseudo-terminal: slash commands, Ctrl-C and Ctrl-D."""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest

from chatkeep import open_store
from clitools import PROMPT, environment, spawn
from fakeopenai import FakeOpenAI, text


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "repl.db"


def say(child: pexpect.spawn, line: str, expected: str) -> str:
    """Type a line, wait for ``expected`` in the output and then the next prompt; return the line it was on."""
    child.sendline(line)
    child.expect_exact(expected)
    child.expect(PROMPT)
    return expected + str(child.before).split("\r\n")[0]


def leave_with_ctrl_d(child: pexpect.spawn) -> None:
    """Ctrl-D at an empty prompt leaves. The prompt may still be redrawing when the key
    arrives (a key typed then goes to the line being set up), so it is pressed again if need be."""
    for _ in range(3):
        child.sendcontrol("d")
        if child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=5) == 0:
            return
    raise AssertionError("Ctrl-D at the prompt did not end the chat")


def test_a_session_with_slash_commands(db: Path, openai_server: FakeOpenAI) -> None:
    openai_server.script(text("**Bold** hello!"), text("A second answer."), text("Regenerated answer."))
    child = spawn(environment(db, openai_server.base_url), "chat", "--title", "Greetings")
    child.expect(PROMPT)
    assert "**" not in say(child, "Hi", "hello!")  # Markdown rendered: no asterisks
    say(child, "And again?", "A second answer.")
    say(child, "/title", "Title: Greetings")
    say(child, "/title Kind words", "Title: Kind words")
    say(child, "/retry", "Regenerated answer.")
    say(child, "/undo", "The conversation now ends at: assistant: **Bold** hello!")
    conversation_id = say(child, "/id", "01")
    say(child, "/fork", "Forked: now in")
    say(child, "/nope", "Unknown command /nope")
    say(child, "/help", "/retry")
    child.sendcontrol("c")  # at the prompt: clears the line, the chat goes on
    child.expect(PROMPT)
    leave_with_ctrl_d(child)
    assert child.wait() == 0

    store = open_store(db)
    original = store.conversation(conversation_id)
    assert original.title == "Kind words"
    assert [m["content"] for m in original.messages] == ["Hi", "**Bold** hello!"]
    assert len(original) == 5  # the undone turn and the first answer to it stay as branches
    assert store.count_conversations() == 2


def test_ctrl_c_during_a_reply_keeps_what_arrived(db: Path, openai_server: FakeOpenAI) -> None:
    openai_server.script(text("word " * 200, chunk_size=5, chunk_delay=0.02))
    child = spawn(environment(db, openai_server.base_url), "chat")
    child.expect(PROMPT)
    child.sendline("Talk for a while")
    child.expect("word")
    child.sendcontrol("c")
    child.expect(r"\[interrupted: the partial reply is saved\]")
    child.expect(PROMPT)
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    store = open_store(db)
    [record] = store.list_conversations()
    reply = store.path(record.id)[-1]
    assert reply.status == "incomplete" and reply.message["content"].startswith("word")
    assert len(reply.message["content"]) < len("word " * 200)


def test_an_unreachable_server_keeps_the_chat_going(db: Path) -> None:
    with FakeOpenAI() as gone:
        address = gone.base_url
    child = spawn(environment(db, address), "chat")
    child.expect(PROMPT)
    say(child, "hello?", "cannot reach the model server")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    [record] = open_store(db).list_conversations()
    assert [m.status for m in open_store(db).path(record.id)] == ["error"]


def test_a_json_file_refuses_what_it_cannot_hold_before_any_call(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    target = tmp_path / "conversation_history.json"
    openai_server.script(text("Hello!"))
    child = spawn(environment(target, openai_server.base_url), "chat")
    child.expect(PROMPT)
    say(child, "Hi", "Hello!")
    for command in ("/retry", "/new", "/fork"):
        say(child, command, "holds one conversation as a plain list")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    assert len(openai_server.requests) == 1  # nothing refused was paid for
    assert json.loads(target.read_text()) == [{"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": "Hello!"}]


def test_a_message_refused_before_it_was_saved_stays_at_the_prompt(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    target = tmp_path / "conversation_history.json"
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    target.write_text(json.dumps([{"role": "user", "content": "Use f"},
                                  {"role": "assistant", "content": None, "tool_calls": [call]}]))
    child = spawn(environment(target, openai_server.base_url), "chat")
    child.expect(PROMPT)
    child.sendline("Never mind")
    child.expect_exact("kept at the prompt")
    child.expect(PROMPT)
    child.expect_exact("Never mind")  # offered again, ready to edit or send
    child.sendcontrol("c")
    child.expect(PROMPT)
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    assert openai_server.requests == [] and len(json.loads(target.read_text())) == 2


def test_attach_in_the_chat_goes_with_the_next_message(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    pdf = tmp_path / "notes.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + b"x" * 2000)
    openai_server.script(text("Read it."))
    child = spawn(environment(tmp_path / "attach.db", openai_server.base_url), "chat")
    child.expect(PROMPT)
    say(child, f"/attach {pdf}", "Attached notes.pdf")
    say(child, "Summarize this", "Read it.")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    parts = openai_server.requests[0].body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "file"] and parts[1]["file"]["filename"] == "notes.pdf"
