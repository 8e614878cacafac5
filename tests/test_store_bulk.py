"""Importing whole conversations, forking, and full-text search, on the database stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatkeep import MessageError, StoreError, open_store
from chatkeep.store import SQLiteStore
from chatkeep.store.bulk import ImportConversation, ImportMessage


@pytest.fixture(params=["sqlite", "postgres"])
def db_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    postgres = request.param == "postgres"
    opened = open_store(request.getfixturevalue("postgres_url") if postgres else tmp_path / "chat.db")
    yield opened
    opened.close()


def tree() -> ImportConversation:
    """A question with two answers (a regenerated branch), the second one current."""
    return ImportConversation(
        [
            ImportMessage({"role": "user", "content": "Name a colour"}, key="q"),
            ImportMessage({"role": "assistant", "content": "Red"}, key="a1", parent_key="q"),
            ImportMessage({"role": "assistant", "content": "Blue"}, key="a2", parent_key="q", model="gpt-4o"),
        ],
        key="test:tree", title="Colours", head_key="a2",
        created_at=datetime(2024, 1, 2, tzinfo=timezone.utc),
    )


def test_an_import_keeps_the_tree_head_title_and_times(db_store: SQLiteStore) -> None:
    summary = db_store.import_conversations([tree()])
    assert (summary.conversations_created, summary.messages_added) == (1, 3)
    conv = db_store.conversation(summary.conversation_ids[0])
    assert conv.messages == [{"role": "user", "content": "Name a colour"}, {"role": "assistant", "content": "Blue"}]
    record = conv.record
    assert record.title == "Colours" and record.created_at.year == 2024
    [question] = conv.history(last=2)[:1]
    assert [m.message["content"] for m in db_store.children(question.id)] == ["Red", "Blue"]


def test_importing_again_adds_nothing_and_new_messages_are_added(db_store: SQLiteStore) -> None:
    first = db_store.import_conversations([tree()])
    again = db_store.import_conversations([tree()])
    assert (again.conversations_created, again.messages_added, again.messages_skipped) == (0, 0, 3)
    grown = tree()
    grown.messages.append(ImportMessage({"role": "user", "content": "Another"}, key="q2", parent_key="a2"))
    grown.head_key = "q2"
    third = db_store.import_conversations([grown])
    assert (third.conversations_updated, third.messages_added) == (1, 1)
    assert db_store.conversation(first.conversation_ids[0]).messages[-1] == {"role": "user", "content": "Another"}


def test_a_failed_import_changes_nothing(db_store: SQLiteStore) -> None:
    db_store.new_conversation("kept").append({"role": "user", "content": "before"})
    broken = ImportConversation([ImportMessage({"role": "user", "content": "fine"}, key="1"),
                                 ImportMessage({"role": "robot", "content": "bad"}, key="2", parent_key="1")], key="b")
    with pytest.raises(MessageError, match=r"conversation 'b', message 2\.role: unknown role 'robot'"):
        db_store.import_conversations([tree(), broken])
    assert db_store.count_conversations() == 1 and db_store.count_messages() == 1
    orphan = ImportConversation([ImportMessage({"role": "user", "content": "x"}, key="1", parent_key="nowhere")])
    with pytest.raises(StoreError, match="parent 'nowhere' not found"):
        db_store.import_conversations([orphan])
    assert db_store.count_conversations() == 1


def test_fork_copies_the_branch_up_to_a_message(db_store: SQLiteStore) -> None:
    conv = db_store.new_conversation("original", title="Plans")
    first = conv.append({"role": "user", "content": "one"})
    conv.append({"role": "assistant", "content": "two"})
    whole = db_store.fork("original")
    assert whole.messages == conv.messages and whole.title == "Plans (fork)"
    early = db_store.fork("original", at=first.id, new_id="early", title="Early")
    assert early.id == "early" and early.messages == [{"role": "user", "content": "one"}]
    early.append({"role": "user", "content": "diverge"})
    assert len(conv) == 2  # the original is untouched


def conversation_with(db_store: SQLiteStore) -> None:
    conv = db_store.new_conversation("weather", title="Weather")
    conv.append({"role": "user", "content": "What is the weather in Paris today?"})
    conv.append({"role": "assistant", "content": "Sunny in Paris, 21 degrees."}, model="gpt-4o-2024-08-06")
    other = db_store.new_conversation("cooking", title="Cooking")
    other.append({"role": "user", "content": "How long do I boil an egg in Paris water?"})


def test_search_ranks_highlights_and_filters(db_store: SQLiteStore) -> None:
    conversation_with(db_store)
    hits = db_store.search("paris")
    assert len(hits) == 3 and all("[Paris]" in h.snippet() for h in hits)
    assert [h.message.role for h in db_store.search("paris", role="assistant")] == ["assistant"]
    assert [h.conversation_title for h in db_store.search("paris", conversation_id="cooking")] == ["Cooking"]
    assert len(db_store.search("paris", model="gpt-4o")) == 1
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    assert db_store.search("paris", since=tomorrow) == []
    assert len(db_store.search("paris", until=tomorrow)) == 3
    assert sorted(h.message.message["content"][:4] for h in db_store.search('"in paris" -sunny')) == ["How ", "What"]
    assert len(db_store.search("weath*")) == 1


@settings(max_examples=200, deadline=None)
@given(query=st.lists(st.sampled_from(list('abc "*()-+:^\'\\;%_.é€') + [" AND ", " OR ", "NOT ", "NEAR", "-"]),
                      max_size=15).map("".join))
def test_any_query_text_is_safe(query: str) -> None:
    store = open_store(":memory:")
    store.new_conversation("c").append({"role": "user", "content": "abc and or not near"})
    store.search(query)  # never raises


def test_deleted_messages_leave_the_index(db_store: SQLiteStore) -> None:
    conversation_with(db_store)
    db_store.delete_conversation("weather")
    assert [h.conversation_title for h in db_store.search("paris")] == ["Cooking"]
    assert db_store.check_integrity() == []
