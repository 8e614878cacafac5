"""The Store contract: every backend passes the same tests.

The tests on ``store`` run on every backend: SQLite, PostgreSQL and the
tutorial's JSON file, which must either do what is asked or refuse it up front
with ``Unsupported`` and change nothing. Those on ``db_store`` need several
conversations, branches and bookkeeping, which the JSON file has no place for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatkeep import (
    ConversationNotFound,
    HeadMoved,
    JSONFileStore,
    MessageError,
    MessageNotFound,
    StoreError,
    Unsupported,
    open_store,
)
from chatkeep.store import ANY, Draft, SQLiteStore

#: An encrypted SQLite store (SQLCipher, tests/test_encryption.py) runs the suite too; a raw key opens it fast.
ENCRYPTED_KEY = "x'" + "c4" * 32 + "'"


def _encrypted(tmp_path: Path) -> SQLiteStore:
    pytest.importorskip("sqlcipher3")
    return SQLiteStore(tmp_path / "chat.db", key=ENCRYPTED_KEY)


@pytest.fixture(params=["sqlite", "sqlite-encrypted", "postgres", "jsonfile"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore | JSONFileStore]:
    if request.param == "sqlite-encrypted":
        opened: SQLiteStore | JSONFileStore = _encrypted(tmp_path)
        yield opened
        opened.close()
        return
    if request.param == "postgres":
        target: str | Path = request.getfixturevalue("postgres_url")
    else:
        target = {"sqlite": tmp_path / "chat.db", "jsonfile": tmp_path / "support-42.json"}[request.param]
    opened = open_store(target)
    yield opened
    opened.close()


@pytest.fixture(params=["sqlite", "sqlite-encrypted", "postgres"])
def db_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    """The database backends: several conversations, branches and bookkeeping."""
    postgres = request.param == "postgres"
    if request.param == "sqlite-encrypted":
        opened = _encrypted(tmp_path)
    else:
        opened = open_store(request.getfixturevalue("postgres_url") if postgres else tmp_path / "chat.db")
    yield opened
    opened.close()


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_get_or_create_opens_the_same_conversation(store: SQLiteStore | JSONFileStore) -> None:
    first = store.conversation("support-42", create=True)
    first.append(user("hello"))
    again = store.conversation("support-42", create=True)
    assert again.messages == [user("hello")]


def test_creating_an_existing_id_fails(store: SQLiteStore | JSONFileStore) -> None:
    store.create_conversation("support-42")
    with pytest.raises(StoreError, match="already exists"):
        store.create_conversation("support-42")


def test_append_returns_the_stored_message_and_moves_the_head(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    first = conv.append(user("one"))
    second = conv.append({"role": "assistant", "content": "two"})
    assert second.parent_id == first.id
    assert first.parent_id is None
    assert conv.head == second
    assert store.get_message(second.id) == second
    assert store.get_conversation("support-42").head_id == second.id
    assert second.role == "assistant" and second.text == "two"


def test_path_is_oldest_first_and_last_k_is_the_tail(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    for i in range(10):
        conv.append(user(str(i)))
    assert [m["content"] for m in conv.messages] == [str(i) for i in range(10)]
    assert [m.message["content"] for m in conv.history(last=3)] == ["7", "8", "9"]
    assert conv.history(last=0) == []
    assert len(conv.history(last=50)) == 10
    assert len(conv) == store.count_messages("support-42") == 10


def test_unknown_keys_survive_storage(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    message = {"role": "user", "content": "hi", "x_trace": {"span": [1, 2, {"deep": None}]}}
    conv.append(message)
    assert conv.messages == [message]


def test_a_wrong_message_is_refused_and_nothing_is_stored(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    conv.append(user("kept"))
    with pytest.raises(MessageError, match=r"message\.role: unknown role 'robot'"):
        conv.append({"role": "robot", "content": "x"})
    assert conv.messages == [user("kept")]


def test_missing_things_raise_not_found(store: SQLiteStore | JSONFileStore) -> None:
    store.conversation("support-42", create=True)
    with pytest.raises(ConversationNotFound):
        store.get_conversation("nope")
    with pytest.raises(KeyError):
        store.conversation("nope")
    with pytest.raises(ConversationNotFound):
        store.append("nope", user("x"))
    with pytest.raises(MessageNotFound):
        store.get_message("404404")


def test_children_follow_the_tree(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    a = conv.append(user("a"))
    b = conv.append(user("b"))
    assert store.children(a.id) == [b]
    assert store.children(b.id) == []


def test_delete_removes_the_messages(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    conv.append(user("bye"))
    conv.delete()
    assert store.count_messages() == 0


def holds_branches(store: object) -> bool:
    return not isinstance(store, JSONFileStore)


def snapshot(store: SQLiteStore | JSONFileStore) -> list[object]:
    return [(m.id, m.parent_id, m.message) for m in store.path("support-42")]


def test_a_chain_is_appended_in_one_step(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    first = conv.append(user("q"))
    chain = store.append_many("support-42", [Draft({"role": "assistant", "content": "a"}), Draft(user("q2"))],
                              parent_id=first.id)
    assert [m.parent_id for m in chain] == [first.id, chain[0].id]
    assert [m.head_moved for m in chain] == [True, True] and conv.head == chain[-1]
    with pytest.raises(MessageError):  # one bad message fails the whole chain
        store.append_many("support-42", [Draft(user("fine")), Draft({"role": "robot", "content": "x"})])
    assert len(conv) == 3


def test_the_head_moves_only_by_compare_and_set(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    question = conv.append(user("question"))
    answer = conv.append({"role": "assistant", "content": "answer"})
    before = snapshot(store)
    if not holds_branches(store):
        with pytest.raises(Unsupported, match="needs a branch"):
            conv.append({"role": "assistant", "content": "late"}, parent_id=question.id)
        assert snapshot(store) == before
        return
    late = conv.append({"role": "assistant", "content": "late"}, parent_id=question.id)
    assert late.branched and conv.head == answer
    with pytest.raises(HeadMoved, match="moved on"):
        conv.set_head(late.id, expect_head=question.id)
    conv.set_head(late.id, expect_head=answer.id)
    assert conv.head == late


def test_edit_undo_pop_and_fork_are_one_step_or_refused(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    question = conv.append(user("2+2?"))
    answer = conv.append({"role": "assistant", "content": "4"})
    if not holds_branches(store):
        before = snapshot(store)
        for operation in (lambda: conv.edit(question.id, user("3+3?")), conv.undo,
                          lambda: store.pop("support-42"), lambda: store.fork("support-42"),
                          lambda: store.require("branches")):
            with pytest.raises(Unsupported, match="holds one conversation as a plain list"):
                operation()
        assert snapshot(store) == before
        return
    edited = conv.edit(question.id, user("3+3?"))
    assert edited.parent_id is None and conv.head == edited
    conv.set_head(answer.id)
    assert conv.undo() is None and conv.head is None  # back to before the only question
    conv.set_head(answer.id)
    assert store.pop("support-42") == answer and conv.head == question
    fork = store.fork("support-42", title="Copy")
    conv.append({"role": "assistant", "content": "four"})
    assert fork.messages == [user("2+2?")] and fork.title == "Copy"
    fork.append({"role": "assistant", "content": "IV"})
    assert conv.messages == [user("2+2?"), {"role": "assistant", "content": "four"}]


def test_reads_are_copies_the_caller_may_change(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    conv.append(user("original"))
    conv.messages[0]["content"] = "changed"
    conv.history()[0].message["content"] = "changed"
    assert conv.messages == [user("original")] == store.branch_bodies("support-42")


def test_usage_integrity_and_what_the_store_holds(store: SQLiteStore | JSONFileStore) -> None:
    conv = store.conversation("support-42", create=True)
    conv.append(user("hi"))
    conv.append({"role": "assistant", "content": "hello"}, model="gpt-4o", usage={"prompt_tokens": 3,
                                                                                  "completion_tokens": 1})
    usage = store.usage_by_model("support-42")
    assert sum(row["replies"] for row in usage.values()) == 1
    assert store.check_integrity() == []
    lease = store.lease("support-42")
    lease.store.append("support-42", user("through the lease"))
    lease.release()
    assert conv.messages[-1] == user("through the lease")
    if holds_branches(store):
        store.require("branches")
        store.require("conversations")


def test_calibrations_are_kept_per_server_and_model(store: SQLiteStore | JSONFileStore) -> None:
    assert store.calibration("http://a", "m").samples == 0
    store.record_calibration("http://a", "m", 100, 180)
    after = store.record_calibration("http://a", "m", 100, 150, window=2048)
    assert (after.samples, after.worst, after.window) == (2, 1.8, 2048)
    assert after.mean == pytest.approx(1.65)
    assert store.calibration("http://a", "m") == after
    assert store.calibration("http://a", "other").samples == 0
    assert store.calibration("http://b", "m").samples == 0


def test_lookup_keys_find_messages_again(db_store: SQLiteStore) -> None:
    conversation = db_store.new_conversation("k")
    first = conversation.append(user("one"), keys=("chain:a",))
    [second] = db_store.append_many("k", [Draft(user("two"), keys=("chain:b", "response:r1"))])
    assert db_store.find_keys(["chain:a", "chain:b", "response:r1", "chain:missing"]) == {
        "chain:a": ("k", first.id), "chain:b": ("k", second.id), "response:r1": ("k", second.id)}
    newer = conversation.append(user("three"), keys=("response:r1",))  # a key given again moves on
    assert db_store.find_keys(["response:r1"]) == {"response:r1": ("k", newer.id)}
    db_store.delete_conversation("k")
    assert db_store.find_keys(["chain:a"]) == {}


# -- database stores ----------------------------------------------------------------


def test_generated_ids_sort_by_creation_time(db_store: SQLiteStore) -> None:
    ids = []
    for _ in range(3):
        ids.append(db_store.new_conversation().id)
        time.sleep(0.002)
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_list_is_newest_first_paginated_and_filtered(db_store: SQLiteStore) -> None:
    for name in ["alpha", "beta", "gamma 100%"]:
        db_store.new_conversation(name, title=name.title())
    db_store.conversation("alpha").append(user("bump"))  # alpha is now the most recent
    assert [c.id for c in db_store.list_conversations()] == ["alpha", "gamma 100%", "beta"]
    assert [c.id for c in db_store.list_conversations(limit=1, offset=1)] == ["gamma 100%"]
    assert [c.id for c in db_store.list_conversations(title_contains="100%")] == ["gamma 100%"]
    assert [c.id for c in db_store.list_conversations(title_contains="_")] == []
    assert db_store.count_conversations() == 3


def test_owners_are_kept_apart(db_store: SQLiteStore) -> None:
    db_store.new_conversation("a", owner="ana")
    db_store.new_conversation("b", owner="bo")
    assert [c.id for c in db_store.list_conversations(owner="ana")] == ["a"]


def test_rename_and_metadata(db_store: SQLiteStore) -> None:
    conv = db_store.new_conversation("x", metadata={"source": "test"})
    conv.rename("A better title")
    record = conv.record
    assert record.title == "A better title" and record.metadata == {"source": "test"}
    assert record.updated_at >= record.created_at


def test_bookkeeping_is_kept(db_store: SQLiteStore) -> None:
    conv = db_store.new_conversation("x")
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}
    stored = conv.append(
        {"role": "assistant", "content": "partial"}, model="gpt-4o-2024-08-06", usage=usage,
        latency_ms=12.5, finish_reason=None, status="incomplete", token_counts={"o200k_base": 7},
        metadata={"request_id": "r1"},
    )
    assert db_store.get_message(stored.id) == stored
    assert stored.status == "incomplete" and stored.usage == usage


def test_update_message_changes_status_only(db_store: SQLiteStore) -> None:
    conv = db_store.new_conversation("x")
    stored = conv.append(user("hi"))
    updated = db_store.update_message(stored.id, status="error", error="APIConnectionError: refused")
    assert (updated.status, updated.error, updated.message) == ("error", "APIConnectionError: refused", stored.message)
    with pytest.raises(StoreError, match="status"):
        db_store.update_message(stored.id, status="done")  # type: ignore[arg-type]


def test_branches_and_head_moves(db_store: SQLiteStore) -> None:
    conv = db_store.new_conversation("x")
    q = conv.append(user("question"))
    a1 = conv.append({"role": "assistant", "content": "first answer"})
    # Named under q while the head is a1: it waits on a branch of its own.
    a2 = conv.append({"role": "assistant", "content": "second answer"}, parent_id=q.id)
    assert (a1.head_moved, a2.head_moved, a2.branched) == (True, False, True)
    assert [m.id for m in conv.history()] == [q.id, a1.id]
    assert db_store.children(q.id) == [a1, a2]
    conv.set_head(a2.id)
    assert [m.id for m in conv.history()] == [q.id, a2.id]
    assert [m.id for m in db_store.path("x", head_id=a1.id)] == [q.id, a1.id]
    side = conv.append(user("aside"), parent_id=q.id, move_head=False)
    assert conv.head == a2 and side.parent_id == q.id
    forced = conv.append(user("switch to me"), parent_id=q.id, expect_head=ANY)
    assert forced.head_moved and conv.head == forced


def test_messages_stay_in_their_conversation(db_store: SQLiteStore) -> None:
    one = db_store.new_conversation("one")
    other = db_store.new_conversation("other")
    m = one.append(user("mine"))
    with pytest.raises(MessageNotFound):
        other.append(user("x"), parent_id=m.id)
    with pytest.raises(MessageNotFound):
        other.set_head(m.id)


def test_delete_leaves_other_conversations(db_store: SQLiteStore) -> None:
    db_store.new_conversation("one").append(user("1"))
    db_store.new_conversation("two").append(user("2"))
    db_store.delete_conversation("one")
    assert db_store.count_messages() == 1
    assert db_store.conversation("two").messages == [user("2")]
    with pytest.raises(ConversationNotFound):
        db_store.delete_conversation("one")


@pytest.mark.parametrize("bad", ["", "  padded ", "tab\there"])
def test_bad_conversation_ids_are_refused(db_store: SQLiteStore, bad: str) -> None:
    with pytest.raises(StoreError, match="conversation id"):
        db_store.create_conversation(bad)


def test_edit_starts_a_branch_and_branches_lists_them(db_store: SQLiteStore) -> None:
    conv = db_store.new_conversation("x")
    question = conv.append(user("What is 2+2?"))
    conv.append({"role": "assistant", "content": "4"})
    edited = conv.edit(question.id, user("What is 3+3?"))
    answer = conv.append({"role": "assistant", "content": "6"})
    assert conv.messages == [user("What is 3+3?"), {"role": "assistant", "content": "6"}]
    found = conv.branches()
    assert [(b.tip.message["content"], b.length, b.current) for b in found] == [("4", 2, False), ("6", 2, True)]
    conv.set_head(found[0].tip.id)  # back to the first branch
    assert conv.messages == [user("What is 2+2?"), {"role": "assistant", "content": "4"}]
    assert edited.parent_id is None and answer.parent_id == edited.id
    with pytest.raises(MessageNotFound):
        db_store.new_conversation("y").edit(question.id, user("not mine"))
