"""Tags, pins and the archive, through the library and the CLI, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from chatkeep import ConversationNotFound, StoreError, Unsupported, open_store
from chatkeep.store import SQLiteStore
from chatkeep.store.bulk import ImportConversation, ImportMessage
from chatkeep.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from clitools import environment, normalize, run
from fakeopenai import text


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


# -- the library ------------------------------------------------------------------------


def test_tags_are_kept_once_lower_case_and_sorted(store: SQLiteStore) -> None:
    conv = store.new_conversation("c")
    assert conv.add_tags("Work", "urgent", "work ", "Project  X") == ("project x", "urgent", "work")
    assert store.get_conversation("c").tags == ("project x", "urgent", "work")
    assert conv.remove_tags("URGENT", "never-had-it") == ("project x", "work")
    assert store.add_tags("c", "solo").tags == ("project x", "solo", "work")  # one string is one tag, not letters
    store.new_conversation("d").add_tags("work")
    assert store.tag_counts() == {"project x": 1, "solo": 1, "work": 2}


def test_bad_tags_and_missing_conversations_are_refused(store: SQLiteStore) -> None:
    store.new_conversation("c")
    for bad, reason in (("", "empty"), ("   ", "empty"), ("a\x00b", "control"), ("x" * 65, "at most 64")):
        with pytest.raises(StoreError, match=reason):
            store.add_tags("c", [bad])
    assert store.get_conversation("c").tags == ()
    for change in (lambda: store.add_tags("nope", ["x"]), lambda: store.remove_tags("nope", ["x"]),
                   lambda: store.set_pinned("nope"), lambda: store.set_archived("nope"),
                   lambda: store.suggest_title("nope", "T")):
        with pytest.raises(ConversationNotFound):
            change()


def test_pin_and_archive_keep_their_first_time_and_leave_updated_at(store: SQLiteStore) -> None:
    conv = store.new_conversation("c")
    conv.append(user("hello"))
    before = store.get_conversation("c").updated_at
    conv.pin()
    first = store.get_conversation("c").pinned_at
    conv.pin()
    assert store.get_conversation("c").pinned_at == first and conv.pinned
    conv.archive()
    record = store.get_conversation("c")
    assert record.archived and record.archived_at is not None and record.updated_at == before
    conv.unpin()
    conv.unarchive()
    assert not conv.pinned and not conv.archived


def test_deleting_a_conversation_takes_its_tags(store: SQLiteStore) -> None:
    store.new_conversation("c").add_tags("gone")
    store.delete_conversation("c")
    assert store.tag_counts() == {}
    assert store.new_conversation("c").tags == ()  # the id reused starts bare


def test_list_filters_combine(store: SQLiteStore) -> None:
    _corpus(store)

    def ids(**filters: Any) -> list[str]:
        return [r.id for r in store.list_conversations(**filters)]

    assert ids() == ["e", "d", "c", "b", "a"]                       # newest first, archived included
    assert ids(archived=False) == ["e", "d", "b", "a"]
    assert ids(archived=True) == ["c"]
    assert ids(pinned_first=True) == ["d", "a", "e", "c", "b"]      # pinned first, each part newest first
    assert ids(pinned=True) == ["d", "a"]
    assert ids(tags=["work"]) == ["d", "c", "a"]
    assert ids(tags=["work", "urgent"]) == ["d"]                    # every tag must match
    assert ids(tags=["WORK "]) == ids(tags=["work"])
    assert ids(owner="bob") == ["e", "b"]
    assert ids(model="gpt-4o") == ["d", "a"]                        # a prefix: gpt-4o-mini counts
    assert ids(model="gpt-4o-") == ["d"]
    assert ids(model="o1%") == []                                   # % is not a wildcard
    assert ids(since=datetime.now(timezone.utc) - timedelta(hours=1)) == ["e", "d", "c", "b", "a"]
    assert ids(since=datetime.now(timezone.utc) + timedelta(hours=1)) == []
    assert ids(matching="invoice", archived=False) == ["d", "b"]    # d's title, b's message
    assert ids(matching="invoice", tags=["work"], pinned=True) == ["d"]
    assert ids(limit=2, offset=1, pinned_first=True) == ["a", "e"]


def _corpus(store: SQLiteStore) -> None:
    """Five conversations, created in order a..e (so e is the most recently updated)."""
    a = store.new_conversation("a", owner="alice")
    a.append(user("Plan the sprint"))
    a.append({"role": "assistant", "content": "Sure."}, model="gpt-4o")
    a.add_tags("work")
    a.pin()
    b = store.new_conversation("b", owner="bob")
    b.append(user("Where is the invoice for March?"))
    b.append({"role": "assistant", "content": "Here."}, model="o1-preview")
    c = store.new_conversation("c", owner="alice", title="Old work")
    c.append(user("An archived chat"))
    c.add_tags("work")
    c.archive()
    d = store.new_conversation("d", owner="alice", title="Invoice reminders")
    d.append(user("Remind me"))
    d.append({"role": "assistant", "content": "Done."}, model="gpt-4o-mini")
    d.add_tags("work", "urgent")
    d.pin()
    e = store.new_conversation("e", owner="bob")
    e.append(user("Recipe for bread"))


def test_search_filters_by_tag(store: SQLiteStore) -> None:
    _corpus(store)
    assert {h.message.conversation_id for h in store.search("invoice")} == {"b"}
    store.add_tags("b", ["billing"])
    assert [h.message.conversation_id for h in store.search("invoice", tags=["billing"])] == ["b"]
    assert store.search("invoice", tags=["billing", "work"]) == []
    assert [h.message.conversation_id for h in store.search("sprint", tags=["work"])] == ["a"]
    assert store.search("sprint", tags=["urgent"]) == []
    assert [h.message.conversation_id for h in store.search("remind", tags=["work"], owner="alice")] == ["d"]


def test_generated_titles_only_fill_a_missing_one(store: SQLiteStore) -> None:
    store.new_conversation("untitled")
    store.new_conversation("named", title="Mine")
    assert store.suggest_title("untitled", "  Generated \n title ") is True
    assert store.suggest_title("untitled", "Second") is False
    assert store.suggest_title("named", "Generated") is False
    assert store.suggest_title("untitled", "   ") is False
    assert [store.get_conversation(c).title for c in ("untitled", "named")] == ["Generated title", "Mine"]


def test_the_tutorials_file_refuses_tags_pins_and_archive_up_front(tmp_path: Path) -> None:
    file = tmp_path / "conversation_history.json"
    store = open_store(file)
    conv = store.conversation("conversation_history", create=True)
    conv.append(user("hello"))
    before = file.read_bytes()
    for change in (lambda: conv.add_tags("x"), lambda: conv.remove_tags("x"), conv.pin, conv.archive,
                   lambda: store.suggest_title(conv.id, "T")):
        with pytest.raises(Unsupported, match="conversation_history.json holds one conversation"):
            change()
    assert file.read_bytes() == before
    assert store.tag_counts() == {}
    assert [r.id for r in store.list_conversations(archived=False, pinned=False)] == ["conversation_history"]
    assert store.list_conversations(tags=["x"]) == store.list_conversations(pinned=True) == []
    assert [r.id for r in store.list_conversations(matching="hello")] == ["conversation_history"]
    assert store.list_conversations(matching="goodbye") == []


def test_a_store_from_before_tags_upgrades_and_keeps_everything(tmp_path: Path) -> None:
    file = tmp_path / "old.db"
    db = sqlite3.connect(file, isolation_level=None)
    from chatkeep.store.sqlite_schema import add_functions

    add_functions(db)
    db.execute("BEGIN")
    for migration in MIGRATIONS[:9]:  # the schema as it was before m010_organize
        migration(db)
    db.execute("PRAGMA user_version = 9")
    db.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES ('old', 'Kept', "
               "'2025-01-01T00:00:00.000000Z', '2025-01-01T00:00:00.000000Z')")
    db.execute("COMMIT")
    db.close()
    with open_store(file) as store:
        record = store.get_conversation("old")
        assert (record.title, record.tags, record.pinned, record.archived) == ("Kept", (), False, False)
        store.add_tags("old", ["upgraded"])
        assert store.get_conversation("old").tags == ("upgraded",)
    assert sqlite3.connect(file).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# -- SQLite and PostgreSQL agree ---------------------------------------------------------


def test_sqlite_and_postgres_list_the_same(tmp_path: Path, postgres_url: str) -> None:
    stores = [open_store(tmp_path / "parity.db"), open_store(postgres_url)]
    try:
        for store in stores:
            _import_corpus(store)
        filters: list[dict[str, Any]] = [
            {"tags": list(t)} for t in itertools.combinations(["work", "urgent", "home", "Ünïcode tag"], 2)]
        filters += [{"pinned": p, "archived": a} for p in (None, True, False) for a in (None, True, False)]
        filters += [{"matching": q} for q in ("invoice", "INVOICE", "café", "cafe", "100%", "a_b", "東京", "☕", "")]
        filters += [{"model": m} for m in ("gpt", "gpt-4o", "o1%", "gpt_4o")]
        filters += [{"owner": "alice", "pinned_first": True}, {"since": datetime(2024, 1, 3, tzinfo=timezone.utc)},
                    {"title_contains": "budget_"}, {"limit": 2, "offset": 1, "pinned_first": True}]
        for chosen in filters:
            lists = [[(r.id, r.display_title, r.tags, r.pinned, r.archived) for r in s.list_conversations(**chosen)]
                     for s in stores]
            assert lists[0] == lists[1], chosen
        assert stores[0].tag_counts() == stores[1].tag_counts()
        for query, tags in itertools.product(("invoice", "cafe", "東京", "milk"), (["work"], ["home", "work"],
                                                                                 ["ünïcode tag"], [])):
            hits = [sorted(h.message.conversation_id for h in s.search(query, tags=tags)) for s in stores]
            assert hits[0] == hits[1], (query, tags)
    finally:
        for store in stores:
            store.close()


def _import_corpus(store: SQLiteStore) -> None:
    """The same conversations, with the same ids and times, in either store."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    spec = [
        ("p1", None, "alice", ["Invoice for the café ☕", "Sent."], "gpt-4o-mini", ["work", "urgent"], True, False),
        ("p2", "100% Budget_plan a_b", "bob", ["How much is left?", "Half."], "gpt_4o", ["work"], False, False),
        ("p3", None, "alice", ["私は東京に住んでいます", "いいですね"], "o1%preview", ["home", "Ünïcode tag"], False, True),
        ("p4", "Groceries", None, ["Milk, eggs", "Noted."], "gpt-4o", ["home", "work"], True, True),
        ("p5", None, "bob", ["", "(an image)"], None, [], False, False),
    ]
    items = [ImportConversation([
        ImportMessage(user(prompt), key="0", created_at=start + timedelta(days=n)),
        ImportMessage({"role": "assistant", "content": answer}, key="1", parent_key="0", model=model,
                      created_at=start + timedelta(days=n, minutes=1)),
    ], id=cid, key=f"parity:{cid}", title=title, owner=owner, created_at=start + timedelta(days=n))
        for n, (cid, title, owner, (prompt, answer), model, _, _, _) in enumerate(spec)]
    store.import_conversations(items)
    for cid, _, _, _, _, tags, pinned, archived in spec:
        if tags:
            store.add_tags(cid, tags)
        store.set_pinned(cid, pinned)
        store.set_archived(cid, archived)


# -- the command line ----------------------------------------------------------------------


def test_cli_tag_pin_archive_and_list(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    with open_store(db) as store:
        _corpus(store)
    env = environment(db)
    assert run(env, "tag", "b", "Billing", "Q1 report").out == "b: billing, q1 report\n"
    assert run(env, "untag", "b", "q1 report").out == "b: billing\n"
    assert run(env, "pin", "e").code == 0
    assert run(env, "archive", "a", "b").code == 0
    assert normalize(run(env, "list").out) == (  # pinning leaves the order of updates: e is the newest
        "e\tRecipe for bread [pinned]\t1\t<time>\t\n"
        "d\tInvoice reminders [pinned]\t2\t<time>\turgent, work\n"
    )
    assert [line.split("\t")[0] for line in run(env, "list", "--archived").out.splitlines()] == ["a", "c", "b"]
    assert [line.split("\t")[0] for line in run(env, "list", "--all").out.splitlines()] == ["e", "d", "a", "c", "b"]
    assert run(env, "list", "--all", "--tag", "work", "--tag", "urgent").out.startswith("d\t")
    assert [line.split("\t")[0] for line in run(env, "list", "--all", "--pinned").out.splitlines()] == ["e", "d", "a"]
    assert run(env, "list", "--model", "o1", "--all").out.startswith("b\tWhere is the invoice for March? [archived]")
    assert run(env, "list", "--owner", "bob").out.startswith("e\t")
    assert run(env, "list", "--since", "1h").out.count("\n") == 2 and run(env, "list", "--since", "2999-01-01").out == ""
    listed = json.loads(run(env, "list", "--all", "--json", "-q", "invoice").out)
    assert [(r["id"], r["tags"], r["pinned"], r["archived"]) for r in listed] == [
        ("d", ["urgent", "work"], True, False), ("b", ["billing"], False, True)]
    assert normalize(run(env, "show", "d").out).splitlines()[1] == (
        "d · 2 messages on this branch · updated <time> · tags: urgent, work · pinned")
    assert [h["conversation_id"] for h in json.loads(run(env, "search", "invoice", "--tag", "billing", "--json").out)] \
        == ["b"]
    assert run(env, "tags").out == "billing\t1\nurgent\t1\nwork\t3\n"
    assert run(env, "unarchive", "a").code == 0 and run(env, "unpin", "e", "d").code == 0
    assert [line.split("\t")[0] for line in run(env, "list").out.splitlines()] == ["a", "e", "d"]


def test_chat_continue_skips_archived_conversations(tmp_path: Path, openai_server: Any) -> None:
    db = tmp_path / "cli.db"
    with open_store(db) as store:
        store.new_conversation("older").append(user("kept out"))
        store.new_conversation("newest").append(user("put away"))
        store.set_archived("newest")
    openai_server.script(text("continued"))
    assert run(environment(db, openai_server.base_url), "chat", "-c", "-m", "hi").out == "continued\n"
    assert [m["content"] for m in openai_server.requests[0].body["messages"]] == ["kept out", "hi"]


def test_cli_errors_are_one_line_and_change_nothing(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    with open_store(db) as store:
        store.new_conversation("c")
    env = environment(db)
    missing = run(env, "pin", "c", "nope")
    assert missing.code == 1 and missing.err.count("\n") == 1 and "nope" in missing.err
    assert not open_store(db).get_conversation("c").pinned  # all must exist before any changes
    bad = run(env, "tag", "c", "  ")
    assert bad.code == 1 and "empty tag" in bad.err
    both = run(env, "list", "--archived", "--all")
    assert both.code == 2 and "choose one" in both.err
    since = run(env, "list", "--since", "soon")
    assert since.code == 2 and "a span such as 12h, 7d" in since.err
    json_file = run(environment(tmp_path / "conversation_history.json"), "tag", "conversation_history", "x")
    assert json_file.code == 1 and "cannot keep tags" in json_file.err
