"""Titles: every conversation has a display title, and a model may write one after the first reply.

The title model is asked through the real SDK against the loopback server,
in all four modes; its request never holds up the reply and its failures
never fail the turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from chatkeep import AsyncChat, Chat, Conversation, Reply, open_store
from chatkeep.client.titles import clean_title
from chatkeep.store import JSONFileStore, SQLiteStore
from chatkeep.store.base import derive_title
from clitools import environment, run
from fakeopenai import FakeOpenAI, error, slow, text

MODES = ["send", "stream", "async-send", "async-stream"]



# -- the title made from the first message --------------------------------------------


def test_a_derived_title_is_the_first_line_cut_at_a_word() -> None:
    assert derive_title("\n\n  How   do I\tboil an egg?\nSecond line") == "How do I boil an egg?"
    long = "Explain the difference between optimistic and pessimistic locking in PostgreSQL please"
    assert derive_title(long) == "Explain the difference between optimistic and pessimistic…"
    assert len(derive_title(long)) <= 61
    assert derive_title("x" * 100) == "x" * 60 + "…"  # no word boundary: cut inside the word
    assert derive_title("東京" * 40) == "東京" * 30 + "…"
    assert derive_title("   \n\t") == ""


def test_every_conversation_has_a_display_title(store: SQLiteStore) -> None:
    named = store.new_conversation("named", title="Boiling eggs")
    named.append({"role": "user", "content": "How long?"})
    untitled = store.new_conversation("untitled")
    untitled.append({"role": "system", "content": "You are terse."})
    untitled.append({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]})
    untitled.append({"role": "assistant", "content": "A cat."})
    untitled.append({"role": "user", "content": "What is the weather in Paris tomorrow?\nAnd after?"})
    store.new_conversation("empty")

    # The first user message with text gives the title (an image alone has none).
    assert store.get_conversation("untitled").display_title == "What is the weather in Paris tomorrow?"
    assert untitled.display_title == "What is the weather in Paris tomorrow?" and untitled.title is None
    assert {r.id: r.display_title for r in store.list_conversations()} == {
        "named": "Boiling eggs", "untitled": "What is the weather in Paris tomorrow?", "empty": "Untitled"}


def test_the_tutorials_file_has_a_display_title_too(tmp_path: Path) -> None:
    store = open_store(tmp_path / "conversation_history.json")
    conv = store.conversation("conversation_history", create=True)
    conv.append({"role": "user", "content": "Hello, how are you?"})
    assert store.list_conversations()[0].display_title == "Hello, how are you?"


def test_list_q_finds_titles_and_content(store: SQLiteStore) -> None:
    store.new_conversation("trip", title="Trip to Kyoto").append({"role": "user", "content": "Plan three days"})
    store.new_conversation("eggs").append({"role": "user", "content": "How long to boil an egg? Café style"})
    store.new_conversation("other").append({"role": "user", "content": "Something else entirely"})

    def matching(query: str) -> list[str]:
        return sorted(r.id for r in store.list_conversations(matching=query))

    assert matching("kyoto") == ["trip"]              # the title, any case
    assert matching("boil") == ["eggs"]               # a message's words
    assert matching("three days") == ["trip"]         # content of a titled conversation
    assert matching("cafe") == ["eggs"]               # as search reads words: diacritics folded
    assert matching("to") == ["eggs", "trip"]         # "Trip to Kyoto" and "How long to boil"
    assert matching("100%_off") == [] and matching('"') == []  # nothing to find, and no error


def test_cli_list_q_and_show_use_the_display_title(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    with open_store(db) as store:
        store.new_conversation("eggs").append({"role": "user", "content": "How long to boil an egg?"})
        store.new_conversation("trip", title="Trip to Kyoto")
    env = environment(db)
    listed = run(env, "list", "-q", "egg")
    assert (listed.code, listed.out.split("\t")[:3]) == (0, ["eggs", "How long to boil an egg?", "1"])
    assert run(env, "list", "-q", "KYOTO").out.startswith("trip\tTrip to Kyoto\t")
    assert run(env, "show", "eggs").out.startswith("# How long to boil an egg?\n")
    assert run(env, "export", "eggs", "-f", "markdown").out.startswith("# How long to boil an egg?\n")


# -- titles written by a model --------------------------------------------------------


def _turn(mode: str, server: FakeOpenAI, conv: Conversation, message: str, **options: Any) -> tuple[Reply, str | None]:
    """One turn in ``mode``; returns the reply and the title as the turn ended (the chat is closed afterwards)."""
    if mode.startswith("async"):
        return asyncio.run(_async_turn(mode, server, conv, message, **options))
    with Chat(conv, server.client(max_retries=0), **options) as chat:
        if mode == "send":
            reply: Reply | None = chat.send(message)
        else:
            stream = chat.stream(message)
            for _ in stream:
                pass
            reply = stream.reply
        title_as_the_turn_ended = conv.title
    assert reply is not None
    return reply, title_as_the_turn_ended


async def _async_turn(mode: str, server: FakeOpenAI, conv: Conversation, message: str,
                      **options: Any) -> tuple[Reply, str | None]:
    async with server.async_client(max_retries=0) as client:
        async with AsyncChat(conv, client, **options) as chat:
            if mode == "async-send":
                reply: Reply | None = await chat.send(message)
            else:
                stream = chat.stream(message)
                async for _ in stream:
                    pass
                reply = stream.reply
            title_as_the_turn_ended = conv.title
    assert reply is not None
    return reply, title_as_the_turn_ended


@pytest.mark.parametrize("mode", MODES)
def test_a_title_is_written_after_the_first_reply_without_holding_it_up(
        mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    conv = store.new_conversation()
    openai_server.script(text("Sunny, 21 degrees."), slow(1.5, text('"Paris Weather Today."')))
    reply, title_as_the_turn_ended = _turn(mode, openai_server, conv, "What is the weather in Paris?",
                                           model="gpt-4o", title_model="gpt-4o-mini")
    assert str(reply) == "Sunny, 21 degrees."
    assert title_as_the_turn_ended is None  # the reply came back while the title's 1.5 s request was still out
    assert conv.title == "Paris Weather Today"  # closing the chat waited for it; quotes and the full stop go
    asked = openai_server.requests[-1].body
    assert asked["model"] == "gpt-4o-mini" and "stream" not in asked
    assert "What is the weather in Paris?" in asked["messages"][1]["content"]
    assert "Sunny, 21 degrees." in asked["messages"][1]["content"]


@pytest.mark.parametrize("mode", ["send", "async-send"])
def test_a_title_given_meanwhile_is_never_replaced(mode: str, openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    conv = store.new_conversation()

    def rename_while_the_title_is_written() -> None:
        time.sleep(0.3)
        conv.rename("Mine")

    openai_server.script(text("Hi!"), slow(1.0, text("Generated")))
    import threading
    renamer = threading.Thread(target=rename_while_the_title_is_written)
    renamer.start()
    _turn(mode, openai_server, conv, "Hello", title_model="gpt-4o-mini")
    renamer.join()
    assert conv.title == "Mine"


@pytest.mark.parametrize("mode", ["send", "async-stream"])
def test_a_failing_title_never_fails_the_turn(mode: str, openai_server: FakeOpenAI, store: SQLiteStore,
                                              caplog: pytest.LogCaptureFixture) -> None:
    conv = store.new_conversation()
    openai_server.script(text("Here you are."), error(500, "title service down sk-live-abcdefghijklmnop"))
    with caplog.at_level(logging.WARNING, logger="chatkeep.titles"):
        reply, _ = _turn(mode, openai_server, conv, "Tell me a joke", title_model="gpt-4o-mini")
    assert str(reply) == "Here you are." and conv.head is not None and conv.head.status == "complete"
    assert conv.title is None and conv.display_title == "Tell me a joke"
    [logged] = [r.getMessage() for r in caplog.records if r.name == "chatkeep.titles"]
    assert f"could not write a title for conversation {conv.id}" in logged and "InternalServerError" in logged
    assert "abcdefghijklmnop" not in logged  # a key-shaped string is never logged


def test_only_an_untitled_conversation_is_titled_and_only_once(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    conv = store.new_conversation()
    openai_server.script(text("one"), text("First title"), text("two"))
    with Chat(conv, openai_server.client(max_retries=0), title_model="gpt-4o-mini") as chat:
        chat.send("hello")
        chat.close()
        chat.send("again")  # one title per chat: no second request
    assert conv.title == "First title"
    assert [r.body["model"] for r in openai_server.requests] == ["gpt-4o", "gpt-4o-mini", "gpt-4o"]

    titled = store.new_conversation(title="Named by me")
    openai_server.script(text("three"))
    with Chat(titled, openai_server.client(max_retries=0), title_model="gpt-4o-mini") as chat:
        chat.send("hi")
    assert len(openai_server.requests) == 4 and titled.title == "Named by me"  # nothing asked: it has a title


def test_without_title_model_nothing_more_is_asked(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    conv = store.new_conversation()
    with Chat(conv, openai_server.client()) as chat:
        chat.send("hello")
    assert len(openai_server.requests) == 1 and conv.title is None


def test_async_close_gives_up_on_a_title_that_takes_too_long(openai_server: FakeOpenAI, store: SQLiteStore) -> None:
    conv = store.new_conversation()
    openai_server.script(text("quick"), slow(5, text("Too late")))

    async def main() -> float:
        async with openai_server.async_client(max_retries=0) as client:
            chat = AsyncChat(conv, client, title_model="gpt-4o-mini")
            await chat.send("hi")
            started = time.perf_counter()
            await chat.close(timeout=0.3)
            return time.perf_counter() - started

    assert asyncio.run(main()) < 2.0
    assert conv.title is None


def test_the_tutorials_file_is_never_titled(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    store = JSONFileStore(tmp_path / "conversation_history.json")
    conv = store.conversation("conversation_history", create=True)
    with Chat(conv, openai_server.client(), title_model="gpt-4o-mini") as chat:
        chat.send("hello")
    assert len(openai_server.requests) == 1  # the file keeps no title: none is asked for


def test_a_models_answer_is_cleaned_into_a_title() -> None:
    assert clean_title('**Title:** "Boiling the Perfect Egg."\n\nI chose this because...') == "Boiling the Perfect Egg"
    assert clean_title("# Kyoto trip plan") == "Kyoto trip plan"
    assert clean_title("「東京の天気」") == "東京の天気"
    assert clean_title("   ") is None
    assert len(clean_title("word " * 50) or "") <= 81


def test_cli_auto_title_from_the_flag_and_from_the_settings(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    env = environment(db, openai_server.base_url, CHATKEEP_CONFIG=str(tmp_path / "settings.toml"))
    openai_server.script(text("Ten minutes."), text("Boiling eggs"))
    assert run(env, "chat", "-m", "How long to boil an egg?", "--auto-title").out == "Ten minutes.\n"
    assert run(env, "config", "set", "auto_title", "true").code == 0
    assert run(env, "config", "set", "title_model", "cheap-model").code == 0
    openai_server.script(text("Paris."), text("French capital"))
    assert run(env, "chat", "-m", "Capital of France?").out == "Paris.\n"
    openai_server.script(text("No title."))
    assert run(env, "chat", "-m", "Untitled, please", "--no-auto-title").code == 0
    titles = sorted(r.display_title for r in open_store(db).list_conversations())
    assert titles == ["Boiling eggs", "French capital", "Untitled, please"]
    assert [r.body["model"] for r in openai_server.requests] == [
        "gpt-4o", "gpt-4o-mini", "gpt-4o", "cheap-model", "gpt-4o"]
