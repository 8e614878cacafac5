"""SQLite's search backlog: appended messages wait for the index, and every search still finds them.

An append notes its row in ``search_backlog`` instead of writing an FTS5
segment of its own (issue 17). These tests hold that nothing is ever
unsearchable for it: a search moves the backlog into the index first, a
read-only store searches what waits through a temporary index, the backlog
stays bounded, and a client without chatkeep's functions may insert, change
and delete messages. PostgreSQL keeps its index in each write; test_search
holds both databases to the same results.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chatkeep import open_store
from chatkeep.store.sqlite import SQLiteStore
from chatkeep.store.sqlite_schema import m014_search_backlog
from chatkeep.store.sqlite_search_backlog import BACKLOG_LIMIT
from legacy import sqlite_before


def waiting(file: Path) -> int:
    with sqlite3.connect(file) as db:
        return int(db.execute("SELECT count(*) FROM search_backlog").fetchone()[0])


def found(store: SQLiteStore, query: str, **options: Any) -> list[str]:
    return [hit.message.message["content"] for hit in store.search(query, **{"limit": 100, **options})]


def test_an_appended_message_waits_in_the_backlog_and_the_next_search_finds_it(tmp_path: Path) -> None:
    store = open_store(tmp_path / "chat.db")
    conversation = store.new_conversation()
    conversation.append({"role": "user", "content": "where is the lighthouse"})
    assert waiting(tmp_path / "chat.db") == 1
    assert found(store, "lighthouse") == ["where is the lighthouse"]
    assert waiting(tmp_path / "chat.db") == 0  # the search moved it into the index
    assert [c.id for c in store.list_conversations(matching="lighthouse")] == [conversation.id]
    assert store.check_integrity() == []


def test_the_backlog_is_indexed_by_the_append_that_finds_it_past_its_limit(tmp_path: Path) -> None:
    store = open_store(tmp_path / "chat.db")
    conversation = store.new_conversation()
    most = 0
    for n in range(2 * BACKLOG_LIMIT + 10):
        conversation.append({"role": "user", "content": f"note number{n}"})
        most = max(most, waiting(tmp_path / "chat.db"))
    assert most == BACKLOG_LIMIT
    assert waiting(tmp_path / "chat.db") < BACKLOG_LIMIT
    assert len(store.search("note", limit=1000)) == 2 * BACKLOG_LIMIT + 10
    assert found(store, "number7") == ["note number7"]


def test_a_read_only_store_finds_what_waits_in_the_backlog(tmp_path: Path) -> None:
    file = tmp_path / "chat.db"
    store = open_store(file)
    older = store.new_conversation(title="older")
    older.append({"role": "user", "content": "the old harbour map"})
    store.search("map")  # indexed
    newer = store.new_conversation(title="newer")
    newer.append({"role": "user", "content": "a new harbour photo"})
    newer.append({"role": "assistant", "content": "the harbour at dawn"})
    store.close()
    assert waiting(file) == 2

    reader = open_store(file, read_only=True)
    assert reader.read_only
    assert found(reader, "harbour", order="newest") == ["the harbour at dawn", "a new harbour photo",
                                                         "the old harbour map"]
    assert sorted(found(reader, "harbour")) == ["a new harbour photo", "the harbour at dawn", "the old harbour map"]
    assert found(reader, "harbour", order="newest", conversation_id=newer.id) == ["the harbour at dawn",
                                                                                 "a new harbour photo"]
    pages = [found(reader, "harbour", order="newest", limit=1, offset=n) for n in range(4)]
    assert pages == [["the harbour at dawn"], ["a new harbour photo"], ["the old harbour map"], []]
    assert found(reader, "photo") == ["a new harbour photo"] and found(reader, "harbour -dawn -map") == [
        "a new harbour photo"]
    assert {c.title for c in reader.list_conversations(matching="harbour")} == {"older", "newer"}
    assert [c.title for c in reader.list_conversations(matching="dawn")] == ["newer"]
    assert waiting(file) == 2  # a read-only store writes nothing


def test_a_reader_finds_what_a_writer_appends_while_it_is_open(tmp_path: Path) -> None:
    file = tmp_path / "chat.db"
    writer = open_store(file)
    reader = open_store(file, read_only=True)
    conversation = writer.new_conversation()
    for word in ("first", "second", "third"):
        conversation.append({"role": "user", "content": f"the {word} lantern"})
        assert found(reader, word) == [f"the {word} lantern"]
    assert len(found(reader, "lantern")) == 3


def test_a_client_without_chatkeeps_functions_may_insert_change_and_delete_messages(tmp_path: Path) -> None:
    file = tmp_path / "chat.db"
    store = open_store(file)
    conversation = store.new_conversation()
    kept = conversation.append({"role": "user", "content": "indexed before the change"})
    doomed = store.new_conversation().append({"role": "user", "content": "waiting and then deleted"})
    store.search("indexed")
    changed = conversation.append({"role": "user", "content": "waiting and then changed"})
    with sqlite3.connect(file) as db:  # plain sqlite3: no chatkeep_search_words()
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("INSERT INTO messages (id, conversation_id, parent_id, role, body, text, created_at) VALUES"
                   " ('outside', ?, ?, 'user', ?, 'written from outside', '2026-01-01T00:00:00.000000Z')",
                   (conversation.id, changed.id, json.dumps({"role": "user", "content": "written from outside"})))
        db.execute("UPDATE messages SET text = 'rewritten after indexing' WHERE id = ?", (kept.id,))
        db.execute("UPDATE messages SET text = 'rewritten while waiting' WHERE id = ?", (changed.id,))
        db.execute("DELETE FROM messages WHERE id = ?", (doomed.id,))
    assert found(store, "outside") == ["written from outside"]
    assert len(store.search("rewritten")) == 2
    assert store.search("indexed") == [] and store.search("deleted") == [] and store.search("changed") == []
    assert store.check_integrity() == []


def test_a_database_from_before_the_backlog_keeps_its_index(tmp_path: Path) -> None:
    file = tmp_path / "old.db"
    db = sqlite_before(file, m014_search_backlog)
    db.execute("INSERT INTO conversations (id, created_at, updated_at) VALUES ('old', '2024-01-01', '2024-01-01')")
    db.execute("INSERT INTO messages (id, conversation_id, role, body, text, created_at) VALUES ('m0', 'old', 'user',"
               " ?, 'an indexed old message', '2024-01-01')",
               (json.dumps({"role": "user", "content": "an indexed old message"}),))
    db.execute("COMMIT")
    db.close()
    store = open_store(file)
    assert waiting(file) == 0
    store.conversation("old").append({"role": "assistant", "content": "a new message"})
    assert waiting(file) == 1
    assert sorted(found(store, "message")) == ["a new message", "an indexed old message"]
    assert store.check_integrity() == []


def test_a_search_never_waits_for_another_writer_to_index_the_backlog(tmp_path: Path) -> None:
    file = tmp_path / "chat.db"
    store = open_store(file, busy_timeout=2)
    store.new_conversation().append({"role": "user", "content": "searched while an import runs"})
    other = sqlite3.connect(file, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a long import in another process holds the write lock
    try:
        started = time.monotonic()
        assert found(store, "import") == ["searched while an import runs"]
        assert [c.title for c in store.list_conversations(matching="import")] == [None]
        assert time.monotonic() - started < 1
        assert waiting(file) == 1  # left for a search that can take the lock
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert found(store, "import") == ["searched while an import runs"] and waiting(file) == 0


WRITER = """
import sys
from chatkeep import open_store
conversation = open_store(sys.argv[1]).conversation(sys.argv[2])
for i in range(int(sys.argv[4])):
    conversation.append({"role": "user", "content": f"note {sys.argv[3]}x{i}"})
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "jsonfile"])
def test_two_writers_at_once_and_a_searcher_lose_no_message_from_search(backend: str, tmp_path: Path,
                                                                        request: pytest.FixtureRequest) -> None:
    target = (str(request.getfixturevalue("postgres_url")) if backend == "postgres"
              else str(tmp_path / ("chat.json" if backend == "jsonfile" else "chat.db")))
    store = open_store(target)
    names = ("first", "second")
    shared = store.new_conversation().id  # both write after one head (a JSON file holds one conversation)
    each = BACKLOG_LIMIT // 2 + 20  # together past the limit: an append indexes the backlog meanwhile
    errors = [tmp_path / f"{name}.err" for name in names]
    writers = []
    for name, error in zip(names, errors):
        with open(error, "wb") as stream:
            writers.append(subprocess.Popen([sys.executable, "-c", WRITER, target, shared, name, str(each)], stderr=stream))
    while any(writer.poll() is None for writer in writers):
        found_now = store.search("note", limit=1000)  # searching while both write
        assert len({hit.message.id for hit in found_now}) == len(found_now)
    assert [writer.wait() for writer in writers] == [0, 0], [error.read_text() for error in errors]
    hits = store.search("note", limit=1000)
    assert sorted(hit.message.message["content"] for hit in hits) == sorted(
        f"note {name}x{i}" for name in names for i in range(each))
