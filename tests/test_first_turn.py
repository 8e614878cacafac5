"""A new process's first turn reads only its window: the branch's tail and its pinned messages.

``TrimToBudget`` is handed a history that holds the newest messages (back to
where the droppable ones hold the budget) and the system and developer
messages before them, found through each row's ``pinned_ancestor`` instead
of a walk (see chatkeep.context.loading and chatkeep.store.pinned). These
tests check that the window it chooses is always the one the whole branch
gives: by hypothesis over random branches, budgets and chunk sizes, then in
chats against the loopback server (sync and async, and ``chatkeep chat -c``),
after a model switch, a regeneration and a policy change; and that databases
written before the column are filled in.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatdriver import MODES, Driver
from chatkeep import Chat, ContextBudgetError, KeepAll, TokenCounter, TrimToBudget, open_store
from chatkeep.context import Context, History
from chatkeep.context.loading import read_earlier, read_tail
from chatkeep.context.policies import ReadEarlier
from chatkeep.store import ANY, Draft, SQLiteStore
from chatkeep.store.bulk import ImportConversation, ImportMessage
from clitools import environment, run
from fakeopenai import FakeOpenAI
from legacy import sqlite_before
from pg import admin

COUNTER = TokenCounter("o200k_base")
KEY = "o200k_base"
POLICY = TrimToBudget()


def words(n: int, seed: int) -> str:
    return " ".join(f"w{(seed + k) % 97}" for k in range(n)) or "."


def full_history(store: Any, conversation_id: str, head_id: str | None) -> History:
    path = store.path(conversation_id, head_id=head_id) if head_id else []
    return History.of(path, COUNTER.message, key=KEY)


def choose(history: History, budget: int, extra: int = 0, *, store: Any = None, conversation_id: str = "",
           chunk: int = 64) -> tuple[Any, int]:
    """What the policy sends (or refuses), reading earlier messages as often as it asks; and how often it asked."""
    asked = 0
    while True:
        try:
            choice = POLICY.select(history, budget, extra=extra)
        except ContextBudgetError as exc:
            return ("refused", str(exc), exc.needed, exc.budget), asked
        if isinstance(choice, Context):
            return (choice.messages, choice.tokens, choice.describe(history)), asked
        assert isinstance(choice, ReadEarlier) and store is not None
        asked += 1
        assert asked <= 1_000, "ReadEarlier never settled"
        read_earlier(store, conversation_id, history, choice.tokens, chunk=chunk)


# -- by hypothesis: the partial read chooses what the whole branch chooses ------------------------------


@st.composite
def branches(draw: st.DrawFn) -> tuple[SQLiteStore, str]:
    """A conversation grown by random turns, tool calls, pinned messages, edits, regenerations and head moves."""
    store = SQLiteStore(":memory:")
    conv = store.new_conversation()
    users: list[str] = []
    seed = 0

    def add(message: dict[str, Any], **options: Any) -> Any:
        nonlocal seed
        seed += 1
        if draw(st.booleans()):  # some messages carry their count, some are counted when read
            options["token_counts"] = {KEY: COUNTER.message(message)}
        return conv.append(message, **options)

    def text() -> str:
        return words(draw(st.integers(0, 40)), seed)

    for turn in range(draw(st.integers(1, 30))):
        action = draw(st.sampled_from(["turn", "turn", "turn", "tools", "pinned", "edit", "regenerate", "move"]))
        head = conv.head
        if action == "pinned":
            add({"role": draw(st.sampled_from(["system", "developer"])), "content": text()})
        elif action == "edit" and users:
            edited = store.edit(conv.id, draw(st.sampled_from(users)), {"role": "user", "content": text()})
            users.append(edited.id)
        elif action == "regenerate" and head is not None and head.role == "assistant":
            add({"role": "assistant", "content": text()}, parent_id=head.parent_id, expect_head=ANY)
        elif action == "move" and head is not None:
            path = conv.history()
            conv.set_head(draw(st.sampled_from(path)).id)
        else:
            users.append(add({"role": "user", "content": text()}).id)
            if action == "tools":
                ids = [f"call_{turn}_{k}" for k in range(draw(st.integers(1, 3)))]
                add({"role": "assistant", "content": None, "tool_calls": [
                    {"id": i, "type": "function", "function": {"name": "f", "arguments": text()}} for i in ids]})
                for i in ids:
                    add({"role": "tool", "tool_call_id": i, "content": text()})
            add({"role": "assistant", "content": text()})
    return store, conv.id


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(branch=branches(), load_budget=st.integers(0, 3_000), budget=st.integers(20, 3_000),
       extra=st.integers(0, 60), chunk=st.integers(1, 9), regenerate=st.booleans(), prompt=st.integers(0, 40))
def test_the_partial_read_chooses_the_window_of_the_whole_branch(
    branch: tuple[SQLiteStore, str], load_budget: int, budget: int, extra: int, chunk: int, regenerate: bool,
    prompt: int,
) -> None:
    store, conversation_id = branch
    head_id = store.get_conversation(conversation_id).head_id
    # read for one budget (the chat's defaults), chosen for another (this turn's model and options)
    partial = read_tail(store, conversation_id, head_id, COUNTER.message, KEY, load_budget, chunk=chunk)
    whole = full_history(store, conversation_id, head_id)
    tail = [m.id for m in partial.items[partial.loaded_from:]]
    skipped = whole.items[:len(whole) - len(tail)]
    assert tail == [m.id for m in whole.items[len(skipped):]] and partial.skipped == bool(skipped)
    assert [m.id for m in partial.items[:partial.loaded_from]] == [m.id for m in skipped
                                                                   if m.role in ("system", "developer")]
    assert partial.last_turn() == whole.last_turn()
    # as a turn does: answer the head again, or add the new message
    if regenerate and whole.items and whole.items[-1].role == "assistant":
        partial.pop()
        whole.pop()
    elif prompt:
        stored = store.append(conversation_id, {"role": "user", "content": words(prompt, 7)},
                              parent_id=whole.head_id, expect_head=ANY)
        for history in (partial, whole):
            history.append(stored, COUNTER.message(stored.message))
    expected, _ = choose(whole, budget, extra)
    assert choose(partial, budget, extra, store=store, conversation_id=conversation_id, chunk=chunk)[0] == expected
    assert partial.pinned_tokens == whole.pinned_tokens
    store.close()


def test_a_long_branch_is_read_only_as_far_back_as_the_budget_reaches() -> None:
    store = SQLiteStore(":memory:")
    conv = store.new_conversation()
    system = conv.append({"role": "system", "content": "Be brief."})
    drafts = [Draft({"role": "user" if i % 2 == 0 else "assistant", "content": words(20, i)}) for i in range(3_000)]
    store.append_many(conv.id, drafts[:1_500])
    developer = conv.append({"role": "developer", "content": "Answer in French."})
    store.append_many(conv.id, drafts[1_500:])
    head = conv.record.head_id
    partial = read_tail(store, conv.id, head, COUNTER.message, KEY, 1_000, chunk=16)
    window = 1_000 // COUNTER.message(drafts[0].message)
    assert partial.skipped and partial.loaded_from == 2
    assert [m.id for m in partial.items[:2]] == [system.id, developer.id]
    assert window < len(partial) - 2 < 2 * window + 32  # the window, a margin, and not the 3,000
    assert partial.items[2].role == "user"  # a turn's start: no tool result is cut from its call
    assert set(partial.unsaved) == {m.id for m in partial.items}  # counted once read, for the chat to save
    whole = full_history(store, conv.id, head)
    assert choose(partial, 1_000)[0] == choose(whole, 1_000)[0]
    assert choose(partial, 50_000, store=store, conversation_id=conv.id)[1] == 1  # one more read for more room
    assert partial.skipped and choose(partial, 50_000)[0] == choose(whole, 50_000)[0]
    assert choose(partial, 10**9, store=store, conversation_id=conv.id)[0] == choose(whole, 10**9)[0]
    assert not partial.skipped and len(partial) == len(whole) == 3_002  # back to the root: everything


def test_keep_all_asks_for_every_message_of_a_partial_history() -> None:
    store = SQLiteStore(":memory:")
    conv = store.new_conversation()
    for i in range(50):
        conv.append({"role": "user" if i % 2 == 0 else "assistant", "content": words(10, i)})
    partial = read_tail(store, conv.id, conv.record.head_id, COUNTER.message, KEY, 30)
    assert partial.skipped
    assert KeepAll().select(partial, None) == ReadEarlier(None)
    read_earlier(store, conv.id, partial, None)
    assert not partial.skipped and len(partial) == 50


# -- chats against the loopback server -------------------------------------------------------------------------


def long_conversation(store: Any, size: int = 1_200) -> Any:
    """A system message, a developer one partway, tool calls, and about 25 tokens a message."""
    conv = store.new_conversation()
    conv.append({"role": "system", "content": "You are terse."})
    drafts = []
    for i in range(size):
        if i % 50 == 10:
            drafts.append(Draft({"role": "assistant", "content": None, "tool_calls": [
                {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}))
            drafts.append(Draft({"role": "tool", "tool_call_id": f"c{i}", "content": words(15, i)}))
        else:
            drafts.append(Draft({"role": "user" if i % 2 == 0 else "assistant", "content": words(20, i)}))
        if i == size // 2:
            drafts.append(Draft({"role": "developer", "content": "Answer in French."}))
    for start in range(0, len(drafts), 500):
        store.append_many(conv.id, drafts[start:start + 500])
    return conv


def expected_request(store: Any, conversation_id: str, prompt_id: str, budget: int) -> list[dict[str, Any]]:
    """The messages the whole branch up to the prompt gives under ``TrimToBudget``."""
    context = POLICY.select(full_history(store, conversation_id, prompt_id), budget)
    assert isinstance(context, Context)
    return context.messages


@pytest.mark.parametrize("mode", MODES)
def test_a_new_chat_sends_the_whole_branchs_window(mode: str, openai_server: FakeOpenAI, tmp_path: Path) -> None:
    store = open_store(tmp_path / "chat.db")
    conv = long_conversation(store)
    chat = Driver(mode, openai_server, conv, model="gpt-4o", context=TrimToBudget(), budget=3_000)
    reply = chat.turn("and now?").reply
    assert reply is not None
    sent = openai_server.requests[0].body["messages"]
    assert sent == expected_request(store, conv.id, reply.message.parent_id, 3_000)
    assert sent[:2] == [{"role": "system", "content": "You are terse."}, {"role": "developer",
                                                                          "content": "Answer in French."}]
    record = reply.message.metadata["context"]
    assert record["pinned"] == [m.id for m in conv.history() if m.role in ("system", "developer")]
    if mode in ("send", "stream"):  # the sync chat keeps what it read for the next turn
        kept = chat.sync_chat._history
        assert kept is not None and kept.skipped and len(kept) < 400  # of some 1,230 messages


@pytest.mark.parametrize("mode", MODES)
def test_a_bigger_budget_reads_further_back(mode: str, openai_server: FakeOpenAI, tmp_path: Path) -> None:
    # The reserve for the reply sets the budget: 8,000 - 6,000 at first, then 8,000 - 1,000 for one turn.
    store = open_store(tmp_path / "chat.db")
    conv = long_conversation(store)
    chat = Driver(mode, openai_server, conv, model="gpt-4o", context=TrimToBudget(), context_window=8_000,
                  max_completion_tokens=6_000)
    first = chat.turn("first?").reply
    second = chat.turn("second, with more room?", max_completion_tokens=1_000).reply
    assert first is not None and second is not None
    small, big = (r.body["messages"] for r in openai_server.requests)
    assert small == expected_request(store, conv.id, first.message.parent_id, 2_000)
    assert big == expected_request(store, conv.id, second.message.parent_id, 7_000)
    assert len(big) > 2 * len(small)


def test_a_regeneration_and_a_change_of_policy_still_send_what_the_branch_gives(
    openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    store = open_store(tmp_path / "chat.db")
    conv = long_conversation(store, size=600)
    chat = Chat(conv, openai_server.client(max_retries=0), model="gpt-4o", context=TrimToBudget(), budget=1_500)
    reply = chat.send("a question")
    again = chat.retry()  # answers the same prompt: the history drops the reply it read
    assert again.message.parent_id == reply.message.parent_id
    assert openai_server.requests[1].body["messages"] == openai_server.requests[0].body["messages"]
    chat.policy, chat.budget = KeepAll(), None  # now every message: the partial history is read again, whole
    chat.send("everything, please")
    sent = openai_server.requests[2].body["messages"]
    assert sent == [m.message for m in conv.history()[:-1]]


def test_counts_made_on_the_first_read_are_saved(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    store = open_store(tmp_path / "chat.db")
    conv = store.new_conversation()
    store.append_many(conv.id, [Draft({"role": "user" if i % 2 == 0 else "assistant", "content": words(20, i)})
                                for i in range(400)])
    Chat(conv, openai_server.client(), context=TrimToBudget(), budget=1_000).send("hi")
    counted = [m for m in conv.history() if m.token_counts and KEY in m.token_counts]
    assert 20 < len(counted) < 60 and counted == conv.history()[-len(counted):]  # the window's, not all 400


def test_the_cli_continuing_a_long_conversation_reads_only_its_window(openai_server: FakeOpenAI,
                                                                       tmp_path: Path) -> None:
    # chatkeep chat -c is a new process whose first turn is the Chat's: a window of 4,000 tokens less the
    # reply's reserve (a quarter of it) is 3,000 tokens of some 1,230 messages.
    db = tmp_path / "chat.db"
    with open_store(db) as store:
        conversation_id = long_conversation(store).id
    result = run(environment(db, openai_server.base_url), "chat", "-c", "--context", "trim", "--context-window",
                 "4000", "-m", "and now?")
    assert (result.code, result.err) == (0, "")
    with open_store(db) as store:
        path = store.path(conversation_id)
        prompt = path[-2]
        assert prompt.message == {"role": "user", "content": "and now?"}
        assert openai_server.requests[0].body["messages"] == expected_request(store, conversation_id, prompt.id,
                                                                               3_000)
        counted = [m for m in path[:-2] if m.token_counts and KEY in m.token_counts]
        pinned = [m for m in path if m.role in ("system", "developer")]
        # counted once read and saved: the window's tail and the pinned messages, not the whole branch
        assert 40 < len(counted) < 300 and {m.id for m in counted} >= {m.id for m in pinned}


# -- the store: pinned ancestors on every backend and database --------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "jsonfile"])
def test_every_backend_reads_the_same_tail(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    target = {"sqlite": tmp_path / "chat.db", "jsonfile": tmp_path / "support-42.json"}.get(backend)
    store = open_store(target if target is not None else request.getfixturevalue("postgres_url"))
    conv = store.conversation("support-42", create=True)
    conv.append({"role": "system", "content": "Be brief."})
    for i in range(120):
        conv.append({"role": "user" if i % 2 == 0 else "assistant", "content": words(12, i)})
        if i == 60:
            conv.append({"role": "developer", "content": "Now in French."})
    head = conv.record.head_id
    partial = read_tail(store, conv.id, head, COUNTER.message, KEY, 400, chunk=8)
    assert partial.skipped and [m.role for m in partial.items[:partial.loaded_from]] == ["system", "developer"]
    assert choose(partial, 400)[0] == choose(full_history(store, conv.id, head), 400)[0]
    store.close()


def tree(kind: str) -> ImportConversation:
    """A tree whose branches hold different pinned messages: system, then user, then per branch a developer."""
    def message(key: str, parent: str | None, role: str) -> ImportMessage:
        return ImportMessage({"role": role, "content": f"{role} {key}"}, key=key, parent_key=parent)

    return ImportConversation([
        message("s", None, "system"), message("u1", "s", "user"), message("a1", "u1", "assistant"),
        message("d1", "a1", "developer"), message("u2", "d1", "user"),
        message("u3", "a1", "user"), message("d2", "u3", "developer"), message("a3", "d2", "assistant"),
    ], key=f"test:{kind}", id=kind, head_key="a3")


def pinned_of_each(store: Any, conversation_id: str) -> dict[str, list[str]]:
    """Each message's pinned ancestors, by content (ids differ between stores)."""
    everything = store.find_messages(conversation_id, kind="chat")
    return {m.message["content"]: [p.message["content"] for p in store.pinned_path(conversation_id, m.id)]
            for m in everything}


EXPECTED_TREE = {
    "system s": [], "user u1": ["system s"], "assistant a1": ["system s"], "developer d1": ["system s"],
    "user u2": ["system s", "developer d1"], "user u3": ["system s"], "developer d2": ["system s"],
    "assistant a3": ["system s", "developer d2"],
}


def test_sqlite_and_postgres_find_the_same_pinned_messages(tmp_path: Path, postgres_url: str) -> None:
    for store in (open_store(tmp_path / "parity.db"), open_store(postgres_url)):
        with store:
            store.import_conversations([tree("imported")])
            assert pinned_of_each(store, "imported") == EXPECTED_TREE
            # a fork copies the branch to the head; appends after it inherit from the copies
            fork = store.fork_conversation("imported", new_id="forked")
            store.append("forked", {"role": "user", "content": "user after"})
            assert pinned_of_each(store, fork.id) == {
                "system s": [], "user u1": ["system s"], "assistant a1": ["system s"], "user u3": ["system s"],
                "developer d2": ["system s"], "assistant a3": ["system s", "developer d2"],
                "user after": ["system s", "developer d2"]}
            # a second import adds under messages stored by the first
            more = tree("imported")
            more.messages.append(ImportMessage({"role": "user", "content": "user u4"}, key="u4", parent_key="d1"))
            store.import_conversations([more])
            assert pinned_of_each(store, "imported")["user u4"] == ["system s", "developer d1"]
            assert store.check_integrity() == []


def old_rows() -> list[tuple[str, str | None, str]]:
    """(id, parent, role): the tree above, as an older chatkeep stored it."""
    return [("s", None, "system"), ("u1", "s", "user"), ("a1", "u1", "assistant"), ("d1", "a1", "developer"),
            ("u2", "d1", "user"), ("u3", "a1", "user"), ("d2", "u3", "developer"), ("a3", "d2", "assistant")]


def test_an_sqlite_database_from_before_the_column_is_filled_in(tmp_path: Path) -> None:
    from chatkeep.store.sqlite_schema import SCHEMA_VERSION, m011_pinned_ancestors

    file = tmp_path / "old.db"
    db = sqlite_before(file, m011_pinned_ancestors)
    db.execute("INSERT INTO conversations (id, created_at, updated_at, head_id) VALUES ('old', "
               "'2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z', NULL)")
    for message_id, parent, role in old_rows():
        db.execute("INSERT INTO messages (id, conversation_id, parent_id, role, body, text, created_at)"
                   " VALUES (?, 'old', ?, ?, ?, ?, '2025-01-01T00:00:00.000000Z')",
                   (message_id, parent, role, json.dumps({"role": role, "content": f"{role} {message_id}"}),
                    f"{role} {message_id}"))
    db.execute("UPDATE conversations SET head_id = 'a3'")
    db.execute("COMMIT")
    db.close()
    with open_store(file) as store:
        assert pinned_of_each(store, "old") == EXPECTED_TREE
        assert store.check_integrity() == []
        assert [m.id for m in store.path("old")] == ["s", "u1", "a1", "u3", "d2", "a3"]  # read as before
    assert sqlite3.connect(file).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_postgres_database_from_before_the_column_is_filled_in(postgres_url: str) -> None:
    from chatkeep.store.postgres_schema import MIGRATIONS, m009_pinned_ancestors

    with admin(postgres_url) as conn, conn.transaction():
        conn.execute("CREATE TABLE chatkeep_schema (version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        for number, migration in enumerate(MIGRATIONS[:MIGRATIONS.index(m009_pinned_ancestors)], start=1):
            migration(conn)
            conn.execute("INSERT INTO chatkeep_schema (version, name) VALUES (%s, %s)", (number, migration.__name__))
        conn.execute("INSERT INTO conversations (id, created_at, updated_at) VALUES ('old', now(), now())")
        for message_id, parent, role in old_rows():
            conn.execute("INSERT INTO messages (id, conversation_id, parent_id, role, body, text, created_at)"
                         " VALUES (%s, 'old', %s, %s, %s, %s, now())",
                         (message_id, parent, role, json.dumps({"role": role, "content": f"{role} {message_id}"}),
                          f"{role} {message_id}"))
        conn.execute("UPDATE conversations SET head_id = 'a3'")
    with open_store(postgres_url) as store:
        assert pinned_of_each(store, "old") == EXPECTED_TREE
        assert store.check_integrity() == []
        store.append("old", {"role": "user", "content": "user new"})
        assert pinned_of_each(store, "old")["user new"] == ["system s", "developer d2"]


def test_appends_racing_at_the_head_inherit_its_pinned_messages(postgres_url: str) -> None:
    # An append at the head reads the head after waiting for the conversation's lock; the parent it then
    # finds was committed after the statement began, which only a fresh snapshot (a volatile function) sees.
    from concurrent.futures import ThreadPoolExecutor

    with open_store(postgres_url) as store:
        conv = store.new_conversation()
        system = conv.append({"role": "system", "content": "Be brief."})

        def append(worker: int) -> None:
            for i in range(25):
                store.append(conv.id, {"role": "user", "content": f"{worker}.{i}"})

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(append, range(8)))
        assert store.check_integrity() == []
        assert len(conv.history()) == 201
        assert all(store.pinned_path(conv.id, m.id) == [system] for m in conv.history()[1:])
