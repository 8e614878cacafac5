"""Context policies: what a turn sends, checked alone, by hypothesis, and end to end."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatdriver import MODES, Driver
from chatkeep import Chat, ContextBudgetError, KeepAll, Summarize, TokenCounter, TrimToBudget, open_store
from chatkeep.context import CONTEXT_WINDOWS, Context, History, context_window
from chatkeep.context.windows import UnknownContextWindow
from chatkeep.store import StoredMessage
from fakeopenai import FakeOpenAI, text, tool_calls

COUNTER = TokenCounter("o200k_base")


def stored(i: int, message: dict[str, Any]) -> StoredMessage:
    return StoredMessage(id=f"m{i}", conversation_id="c", parent_id=f"m{i - 1}" if i else None,
                         message=message, created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))


def history_of(messages: list[dict[str, Any]]) -> History:
    return History.of([stored(i, m) for i, m in enumerate(messages)], COUNTER.message, key="o200k_base")


# -- windows ------------------------------------------------------------------------


def test_windows_follow_the_model_family_and_can_be_overridden() -> None:
    assert context_window("gpt-4o-2024-08-06") == 128_000
    assert context_window("gpt-4.1-mini") == 1_047_576
    assert context_window("gpt-4") == 8_192 and context_window("gpt-4-turbo") == 128_000
    assert context_window("my-llama", {"my-llama": 32_768}) == 32_768
    assert context_window("gpt-4o", {"gpt-4o": 64_000}) == 64_000
    assert "gpt-4o" in CONTEXT_WINDOWS


def test_an_unknown_window_names_the_setting() -> None:
    with pytest.raises(UnknownContextWindow, match="pass context_window="):
        context_window("my-llama")


# -- trimming, by hypothesis -------------------------------------------------------------

words = st.text(alphabet="abc def ghi.", min_size=1, max_size=60)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": draw(words)}]
    for turn in range(draw(st.integers(1, 25))):
        messages.append({"role": "user", "content": draw(words)})
        if draw(st.booleans()):
            ids = [f"call_{turn}_{k}" for k in range(draw(st.integers(1, 3)))]
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": i, "type": "function", "function": {"name": "f", "arguments": draw(words)}} for i in ids]})
            messages += [{"role": "tool", "tool_call_id": i, "content": draw(words)} for i in ids]
        if draw(st.booleans()):
            messages.append({"role": "developer", "content": draw(words)})
        messages.append({"role": "assistant", "content": draw(words)})
    return messages


@settings(max_examples=150, deadline=None)
@given(messages=conversations(), slack=st.integers(0, 400))
def test_a_trimmed_context_fits_keeps_system_messages_tool_pairs_and_order(
    messages: list[dict[str, Any]], slack: int
) -> None:
    history = history_of(messages)
    pinned = [m for m in messages if m["role"] in ("system", "developer")]
    budget = history.pinned_tokens + COUNTER.message(messages[-1]) + 3 + slack
    context = TrimToBudget().select(history, budget)
    sent = context.messages
    assert context.tokens == COUNTER.messages(sent) <= budget
    assert [m for m in sent if m["role"] in ("system", "developer")] == pinned
    assert sent[-1] == messages[-1]
    positions = [next(i for i, m in enumerate(messages) if m is s) for s in sent]
    assert positions == sorted(positions)  # order kept
    first_free = next(m for m in sent if m["role"] not in ("system", "developer"))
    assert first_free["role"] != "tool"
    for i, message in enumerate(sent):  # every call is answered, every result has its call
        if message.get("tool_calls"):
            answered = {m["tool_call_id"] for m in sent[i + 1:] if m["role"] == "tool"}
            assert {c["id"] for c in message["tool_calls"]} <= answered
        if message["role"] == "tool":
            assert any(message["tool_call_id"] in {c["id"] for c in m.get("tool_calls") or []} for m in sent[:i])


def test_trimming_keeps_everything_that_fits() -> None:
    messages = [{"role": "user", "content": f"message {i}"} for i in range(10)]
    history = history_of(messages)
    assert TrimToBudget().select(history, 10_000).messages == messages
    small = TrimToBudget().select(history, COUNTER.messages(messages[-3:]))
    assert small.messages == messages[-3:] and small.start == 7


def test_keep_all_refuses_with_the_numbers() -> None:
    history = history_of([{"role": "user", "content": "word " * 100}])
    with pytest.raises(ContextBudgetError, match=r"needs 10\d tokens but the budget is 50"):
        KeepAll().select(history, 50)
    assert isinstance(KeepAll().select(history, None), Context)


def test_trim_refuses_when_the_newest_message_alone_cannot_fit() -> None:
    history = history_of([{"role": "system", "content": "be brief"}, {"role": "user", "content": "word " * 100}])
    with pytest.raises(ContextBudgetError, match="the system messages and the newest message"):
        TrimToBudget().select(history, 60)


# -- in a chat, against the loopback server -------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Any:
    return open_store(tmp_path / "chat.db")


def test_counts_are_stored_once_per_message(openai_server: FakeOpenAI, store: Any) -> None:
    conv = store.new_conversation()
    chat = Chat(conv, openai_server.client(), model="gpt-4o")
    chat.send("Hello there, how are you?")
    for message in conv.history():
        assert message.token_counts == {"o200k_base": COUNTER.message(message.message)}


def test_counts_missing_from_older_messages_are_saved_in_one_go(openai_server: FakeOpenAI, store: Any) -> None:
    conv = store.new_conversation()
    for i in range(5):
        conv.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"imported {i}"})
    Chat(conv, openai_server.client()).send("next")
    assert all(m.token_counts and "o200k_base" in m.token_counts for m in conv.history())


@pytest.mark.parametrize("mode", MODES)
def test_keep_all_refuses_before_the_call(mode: str, openai_server: FakeOpenAI, store: Any) -> None:
    chat = Driver(mode, openai_server, store.new_conversation(), model="gpt-4o", context_window=60)
    with pytest.raises(ContextBudgetError, match="budget is"):
        chat.turn("word " * 100)
    assert openai_server.requests == []
    assert [(m.role, m.status) for m in chat.conversation.history()] == [("user", "error")]


@pytest.mark.parametrize("mode", MODES)
def test_each_reply_records_what_was_sent(mode: str, openai_server: FakeOpenAI, store: Any) -> None:
    conv = store.new_conversation()
    conv.append({"role": "system", "content": "Be brief."})
    for i in range(6):
        conv.append({"role": "user", "content": f"question {i} " * 20})
        conv.append({"role": "assistant", "content": f"answer {i} " * 20})
    budget = 300
    chat = Driver(mode, openai_server, conv, model="gpt-4o", context=TrimToBudget(), budget=budget)
    reply = chat.turn("and now?").reply
    assert reply is not None
    sent = openai_server.requests[0].body["messages"]
    record = reply.message.metadata["context"]
    assert record["tokens"] == COUNTER.messages(sent) <= budget and record["budget"] == budget
    assert record["count"] == len(sent) and sent[0] == {"role": "system", "content": "Be brief."}
    path = conv.history()
    assert record["to"] == path[-2].id and record["pinned"] == [path[0].id]
    assert store.get_message(record["from"]).message == sent[1]


def test_tool_definitions_count_against_the_budget(openai_server: FakeOpenAI, store: Any) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Look a word up in a big dictionary.",
                                               "parameters": {"type": "object", "properties": {}}}}]
    chat = Chat(store.new_conversation(), openai_server.client(), tools=tools)
    reply = chat.send("hi")
    assert reply.message.metadata["context"]["tokens"] == COUNTER.messages([{"role": "user", "content": "hi"}]) + COUNTER.tools(tools)


def test_unknown_models_work_with_keep_all_and_ask_for_a_window_to_trim(openai_server: FakeOpenAI, store: Any) -> None:
    chat = Chat(store.new_conversation(), openai_server.client(), model="my-own-model")
    assert str(chat.send("hi")) == "ok"
    trimming = Chat(store.new_conversation(), openai_server.client(), model="my-own-model",
                    context=TrimToBudget(), encoding="cl100k_base")
    with pytest.raises(UnknownContextWindow, match="context_window="):
        trimming.send("hi")  # the server does not say its window either
    ok = Chat(store.new_conversation(), openai_server.client(), model="my-own-model",
              context=TrimToBudget(), encoding="cl100k_base", context_window=8_192)
    assert str(ok.send("hi")) == "ok"
    assert context_window("llama3.1:8b") == context_window("Meta-Llama-3.1-8B-Instruct") == 131_072


# -- summarize, end to end -------------------------------------------------------------


def long_turn(i: int) -> str:
    return f"Turn {i}: " + "the quick brown fox jumps over the lazy dog " * 6


@pytest.mark.parametrize("mode", MODES)
def test_summaries_are_made_once_stored_reused_and_extended(mode: str, openai_server: FakeOpenAI, store: Any) -> None:
    conv = store.new_conversation()
    conv.append({"role": "system", "content": "You are terse."})
    openai_server.default = text("noted " * 10)
    policy = Summarize(model="gpt-4o-mini", prompt="Summarize this, please.", keep=0.5)
    chat = Driver(mode, openai_server, conv, model="gpt-4o", context=policy, budget=700)
    turns = 0
    while not any(r.body["model"] == "gpt-4o-mini" for r in openai_server.requests):
        chat.turn(long_turn(turns))
        turns += 1
        assert turns < 20, "no summary was ever asked for"
    ask = next(r.body for r in openai_server.requests if r.body["model"] == "gpt-4o-mini")
    assert ask["messages"][0] == {"role": "system", "content": "Summarize this, please."}
    assert ask["messages"][1]["content"].startswith("Conversation:\nuser: Turn 0: the quick brown fox")
    [summary] = store.find_messages(conv.id, kind="summary")
    covers = summary.metadata["summary"]
    assert covers["from"] == conv.history()[1].id and covers["count"] >= 2
    assert summary.message["content"].startswith("Summary of the earlier conversation:\nnoted")
    assert conv.head.role == "assistant" and summary.id not in {m.id for m in conv.history()}

    # The next turn reuses the stored summary: no new summary call, and it is sent.
    before = len(openai_server.requests)
    chat.turn("One more short question?")
    assert [r.body["model"] for r in openai_server.requests[before:]] == ["gpt-4o"]
    sent = openai_server.requests[-1].body["messages"]
    assert sent[0]["content"] == "You are terse." and sent[1] == summary.message
    assert conv.head.metadata["context"]["summary"] == summary.id

    # Growing past the budget again extends it, from the earlier summary.
    while len(store.find_messages(conv.id, kind="summary")) < 2:
        chat.turn(long_turn(turns))
        turns += 1
        assert turns < 40, "the summary was never extended"
    second_ask = [r.body for r in openai_server.requests if r.body["model"] == "gpt-4o-mini"][1]
    assert second_ask["messages"][1]["content"].startswith("Earlier summary:\nnoted")
    newest = store.find_messages(conv.id, kind="summary")[-1]
    assert newest.metadata["summary"]["from"] == covers["from"]
    assert newest.metadata["summary"]["extends"] == summary.id
    assert len(conv.history()) == 1 + 2 * (turns + 1)  # the originals all stay


def test_a_new_chat_on_the_same_conversation_finds_the_summary(openai_server: FakeOpenAI, store: Any) -> None:
    conv = store.new_conversation()
    openai_server.default = text("fine")
    chat = Chat(conv, openai_server.client(), context=Summarize(), budget=500)
    for i in range(8):
        chat.send(long_turn(i))
    summaries = store.find_messages(conv.id, kind="summary")
    assert summaries
    before = len(openai_server.requests)
    Chat(conv, openai_server.client(), context=Summarize(), budget=500).send("short")
    assert len(openai_server.requests) == before + 1
    assert openai_server.requests[-1].body["messages"][0] == summaries[-1].message


def test_tool_calls_in_the_kept_part_keep_their_results(openai_server: FakeOpenAI, store: Any) -> None:
    conv = store.new_conversation()
    chat = Chat(conv, openai_server.client(), context=TrimToBudget(), budget=400)
    for i in range(4):
        openai_server.script(tool_calls([{"id": f"c{i}", "name": "f", "arguments": "{}"}]), text("done " * 10))
        chat.send(long_turn(i))
        chat.add_tool_result(f"c{i}", "result " * 5)
        chat.send()
    for request in openai_server.requests:
        sent = request.body["messages"]
        assert sent[0]["role"] != "tool"
