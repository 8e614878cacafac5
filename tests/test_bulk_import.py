"""Bulk import's fast paths give what the plain ones give: JSON text, ids, spools, whole-value decoding, detection."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

from chatkeep import FormatError, MessageError, open_store
from chatkeep.formats import chatgpt_stream, detect, detect_format, read_conversations
from chatkeep.formats._scan import JsonScanner
from chatkeep.formats._source import checked_message
from chatkeep.messages import validate_message
from chatkeep.store import SQLiteStore, bulk, sqlite_bulk
from chatkeep.store.base import dumps, new_id
from chatkeep.store.bulk import ImportConversation, ImportMessage, MessageSpool, checked_first
from chatkeep.store.bulk_values import json_text, new_ids

# -- JSON text and ids -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.sampled_from(["\ud800", "\u2028\x7f\x1f", "é\n\"\\</", "1e16"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5) | st.integers(-3, 3), children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_json_text_is_the_text_dumps_writes(value: Any) -> None:
    # Floats, lone surrogates and integer keys take dumps's own path; everything else msgspec's.
    assert json_text(value) == dumps(value)


def test_json_text_of_a_message_and_of_a_float() -> None:
    assert json_text({"role": "user", "content": "Grüß dich\n"}) == '{"role":"user","content":"Grüß dich\\n"}'
    assert json_text({"usage": 1e16, "x": float("nan")}) == '{"usage":1e+16,"x":NaN}'  # as dumps writes them


def test_a_new_id_is_a_lower_case_ulid_of_now() -> None:
    before = datetime.now(timezone.utc)
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"[0-7][0-9a-hjkmnp-tv-z]{25}", value) for value in ids)
    parsed = [ULID.from_str(value.upper()) for value in ids]  # python-ulid, the reference
    assert all(str(ulid).lower() == value for ulid, value in zip(parsed, ids))
    assert all(abs((ulid.datetime - before).total_seconds()) < 5 for ulid in parsed)


def test_new_ids_are_lower_case_ulids_of_now_in_the_order_made() -> None:
    before = datetime.now(timezone.utc)
    ids = new_ids(1000) + new_ids(3)
    assert len(set(ids)) == 1003
    assert all(re.fullmatch(r"[0-9a-hjkmnp-tv-z]{26}", value) for value in ids)
    parsed = [ULID.from_str(value.upper()) for value in ids]
    assert all(str(ulid).lower() == value for ulid, value in zip(parsed, ids))
    assert all(abs((ulid.datetime - before).total_seconds()) < 5 for ulid in parsed)
    assert ids[:1000] == sorted(ids[:1000])
    assert new_ids(0) == []


# -- spools ------------------------------------------------------------------------------------


def messages(count: int) -> list[ImportMessage]:
    return [ImportMessage({"role": "user" if n % 2 == 0 else "assistant", "content": f"message {n}"},
                          key=f"k{n}", parent_key=f"k{n - 1}" if n else None,
                          created_at=datetime(2024, 5, 1, 12, 0, n % 60, 123456, tzinfo=timezone.utc),
                          model="gpt-4o" if n % 2 else None, status="incomplete" if n == 7 else "complete",
                          usage={"prompt_tokens": n} if n % 3 == 0 else None, finish_reason="stop" if n % 2 else None,
                          metadata={"chatgpt": {"node_id": f"k{n}", "hidden": n == 0}}) for n in range(count)]


@pytest.mark.parametrize("record", [1, 3, 64])
def test_a_spool_reads_back_what_was_appended_by_position_slice_and_in_order(
        record: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "SPOOL_RECORD", record)
    expected = messages(10)
    spool = MessageSpool()
    for message in expected:
        spool.append(message)
    assert len(spool) == 10
    assert list(spool) == expected
    assert spool[4] == expected[4] and spool[-1] == expected[-1] and spool[0] == expected[0]
    for start, stop, step in [(0, 10, 1), (2, 9, 1), (3, 4, 1), (5, 5, 1), (0, 10, 3), (8, 100, 1), (-4, None, 1)]:
        assert spool[start:stop:step] == expected[start:stop:step]
    with pytest.raises(IndexError):
        spool[10]


def test_checked_first_hands_out_what_it_was_given() -> None:
    listed = ImportConversation(messages(5), key="a", title="A", created_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
                                metadata={"x": [1, "y"]}, head_key="k3")
    spooled = MessageSpool()
    for message in messages(7):
        spooled.append(message)
    big = ImportConversation(spooled, key="b", checked=True)
    out = list(checked_first([listed, big, ImportConversation([], key="c")]))
    assert [item.key for item in out] == ["a", "b", "c"]
    assert out[0].messages == messages(5) and out[0].head_key == "k3" and out[0].metadata == {"x": [1, "y"]}
    assert out[0].checked and out[2].checked
    assert out[1] is big and list(out[1].messages) == messages(7)
    assert out[2].messages == []


class Tagged(dict):  # type: ignore[type-arg]
    """A dict of a type marshal does not take: its batch is pickled instead."""


def test_values_marshal_cannot_carry_come_back_from_a_spool_as_they_went_in() -> None:
    odd = messages(6)
    odd[1].created_at = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))  # another zone
    odd[2].created_at = datetime(2024, 5, 1, 12, 0)  # naive
    odd[4].metadata = Tagged(x=1)
    for batch in ([odd[0], odd[1]], [odd[2], odd[3]], [odd[4], odd[5]], messages(3)):
        back = bulk._decode(bulk._encode(batch))
        assert back == batch
        assert [type(m.metadata) for m in back] == [type(m.metadata) for m in batch]
        assert [m.created_at.tzinfo if m.created_at else None for m in back] == \
            [m.created_at.tzinfo if m.created_at else None for m in batch]


def test_every_field_of_a_message_comes_back_from_a_spool() -> None:
    """A field added to ImportMessage and forgotten by the spool's marshal rows would come back as its default."""
    full = ImportMessage({"role": "assistant", "content": "x"}, key="k", parent_key="p",
                         created_at=datetime(2024, 5, 1, 12, 0, 1, 5, tzinfo=timezone.utc), model="m",
                         status="incomplete", usage={"total_tokens": 3}, finish_reason="length",
                         metadata={"a": [1]}, kind="summary")
    defaults = ImportMessage({"role": "user", "content": "y"})
    assert all(getattr(full, f.name) != getattr(defaults, f.name) for f in dataclasses.fields(ImportMessage))
    assert bulk._decode(bulk._encode([full])) == [full]


# -- validation's fast path --------------------------------------------------------------------


@pytest.mark.parametrize("message", [
    {"role": "user", "content": "hi"}, {"content": "", "role": "assistant"}, {"role": "system", "content": "x"},
    {"role": "developer", "content": "x"},
])
def test_a_plain_message_is_checked_as_validate_message_checks_it(message: dict[str, Any]) -> None:
    checked = checked_message(message, "m", "f.json")
    assert checked == validate_message(message) and list(checked) == list(message) and checked is not message


@pytest.mark.parametrize("message", [
    {"role": "tool", "content": "x"}, {"role": "function", "content": "x"}, {"role": "robot", "content": "x"},
    {"role": ["user"], "content": "x"}, {"role": "user", "content": 3},
])
def test_a_message_the_fast_path_cannot_vouch_for_gets_the_full_check(message: dict[str, Any]) -> None:
    with pytest.raises(FormatError) as raised:
        checked_message(message, "m", "f.json")
    with pytest.raises(MessageError) as expected:
        validate_message(message, field="m")
    assert str(expected.value) in str(raised.value)


# -- decoding a whole value ----------------------------------------------------------------------


def scanner_over(text: str) -> JsonScanner:
    return JsonScanner(io.BytesIO(text.encode("utf-8")))


def test_a_small_value_is_decoded_whole_and_a_large_one_left_for_the_walk() -> None:
    small, large = {"a": [1, 2, {"b": "é"}]}, {"a": "x" * 5000}  # large: over the limit, though in the buffer
    scanner = scanner_over(json.dumps([small, large, 7]))
    items = scanner.items()
    next(items)
    assert scanner.small_value(1000) == (small, json.dumps(small))
    next(items)
    assert scanner.small_value(1000) is None  # nothing consumed: the value is still there to read
    assert scanner.value() == large
    next(items)
    assert scanner.small_value(1000) == (7, "7")  # "]" follows: the number is whole
    number = scanner_over("12")
    assert number.small_value(1000) is None  # a number at the end of what was read may go on
    assert number.value() == 12


def test_a_broken_value_is_left_to_the_walk_which_names_the_error() -> None:
    scanner = scanner_over('{"a": [1, 2}')
    assert scanner.small_value(1000) is None
    with pytest.raises(ValueError, match="parse error"):
        scanner.value()


def chatgpt_conversation(key: str, nodes: int, *, text: str = "hello", deep: int = 0) -> dict[str, Any]:
    mapping: dict[str, Any] = {"root": {"id": "root", "message": None, "parent": None, "children": ["n0"]}}
    for n in range(nodes):
        nested: Any = "end"
        for _ in range(deep if n == nodes - 1 else 0):
            nested = [nested]
        mapping[f"n{n}"] = {
            "id": f"n{n}", "parent": "root" if n == 0 else f"n{n - 1}",
            "children": [f"n{n + 1}"] if n + 1 < nodes else [],
            "message": {"id": f"n{n}", "author": {"role": "user" if n % 2 == 0 else "assistant"},
                        "content": {"content_type": "text", "parts": [f"{text} {n}"]},
                        "metadata": {"nested": nested}, "status": "finished_successfully",
                        "create_time": 1.7e9 + n}}
    return {"id": key, "title": key, "create_time": 1.7e9, "mapping": mapping, "current_node": f"n{nodes - 1}"}


def stored(path: Path, db: Path) -> list[Any]:
    store = open_store(db)
    try:
        store.import_conversations(read_conversations(path))
        return [(c.title, [(m.message, m.status, m.created_at, m.metadata) for m in store.path(c.id)])
                for c in sorted(store.list_conversations(), key=lambda c: c.title or "")]
    finally:
        store.close()


def test_conversations_decoded_whole_import_as_those_read_a_node_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([chatgpt_conversation(f"c{n}", n + 2, text="ünïcode \ud83d\ude00") for n in range(6)]))
    whole = stored(path, tmp_path / "whole.db")
    monkeypatch.setattr(chatgpt_stream, "WHOLE_CHARS", 0)
    assert stored(path, tmp_path / "walked.db") == whole
    assert len(whole) == 6


def test_a_conversation_without_an_id_is_known_again_however_it_was_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its key hashes its content: whole, walked, or spilled to disk, the same conversation hashes the same.
    conversation = chatgpt_conversation("no id", 30)
    del conversation["id"]
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([conversation]))
    store = open_store(tmp_path / "x.db")
    assert store.import_conversations(read_conversations(path)).messages_added == 30
    monkeypatch.setattr(chatgpt_stream, "SPILL_CHARS", 0)
    again = store.import_conversations(read_conversations(path))
    assert (again.conversations_created, again.messages_added, again.messages_skipped) == (0, 0, 30)
    store.close()


@pytest.mark.parametrize("whole", [True, False])
def test_the_depth_limit_is_the_same_for_a_conversation_decoded_whole_or_walked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whole: bool) -> None:
    if not whole:
        monkeypatch.setattr(chatgpt_stream, "WHOLE_CHARS", 0)
    # [ conversation { mapping { node { message { metadata { nested: 94 lists: 100 levels in all.
    fits, too_deep = tmp_path / "fits.json", tmp_path / "deep.json"
    fits.write_text(json.dumps([chatgpt_conversation("ok", 2, deep=94)]))
    too_deep.write_text(json.dumps([chatgpt_conversation("ok", 2, deep=95)]))
    assert len(stored(fits, tmp_path / "fits.db")[0][1]) == 2
    with pytest.raises(FormatError, match=r"conversations\[0\]: nested deeper than 100 levels"):
        stored(too_deep, tmp_path / "deep.db")


def test_a_spilled_mapping_prepares_each_node_once_as_it_is_read() -> None:
    # Issue 17: each node of a spilled mapping was decoded twice, once read and once again on the walk.
    seen: list[str] = []

    def prepare(key: str, node: Any) -> Any:
        seen.append(key)
        if key == "bad":
            raise ValueError("prepared on the walk, where its error belongs")
        return {"text": node["text"].upper(), "parts": [1.5, None, True]}

    nodes = chatgpt_stream.Nodes(prepare)
    values = {f"n{n}": {"text": f"node {n} ü 😀 \ud800"} for n in range(5)}
    values["bad"] = {"text": "x"}
    for number, (key, node) in enumerate(values.items()):
        nodes.add(key, node, json.dumps(node), chatgpt_stream.SPILL_CHARS + number)  # spilled from the first
    assert nodes.spilled and seen == list(values)
    assert [nodes.prepared(f"n{n}") for n in (4, 0, 2)] == [prepare(f"n{n}", values[f"n{n}"]) for n in (4, 0, 2)]
    assert seen == [*values, "n4", "n0", "n2"]  # read back, not prepared again
    with pytest.raises(ValueError, match="where its error belongs"):
        nodes.prepared("bad")
    assert nodes.whole() == values  # the nodes themselves too, for a conversation hashed whole


def test_a_spilled_export_zip_brings_its_files_as_one_held_whole(samples: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from test_attachment_files import IMAGES, SMALL, export_zip
    from test_attachments import picture

    archive = export_zip(tmp_path / "export.zip", [json.loads((samples / IMAGES).read_text())], {
        "file_1-3b1f0c2e-8d1a-4c55-9a55-0f7a0f3c1d11.png": picture("PNG", SMALL, 1),
        "user-abc/file_2-2d0c9f3e-1b6a-4f9e-8c1d-5e2a4b6c8d0f.png": picture("WEBP", SMALL, 2),
    })

    def imported(db: Path) -> tuple[Any, ...]:
        store = open_store(db)
        warnings: list[str] = []
        try:
            [chat_id] = store.import_conversations(read_conversations(archive, warnings=warnings)).conversation_ids
            # (No times: this sample has none, and the import stands its own in.)
            return ([(m.message, m.parent_id is None, m.metadata) for m in store.find_messages(chat_id, kind="chat")],
                    warnings, store.attachment_stats())
        finally:
            store.close()

    whole = imported(tmp_path / "whole.db")
    monkeypatch.setattr(chatgpt_stream, "SPILL_CHARS", 0)
    assert imported(tmp_path / "spilled.db") == whole
    assert whole[2]["attachments"] == 2 and len(whole[1]) == 3  # the files came, and the missing ones were named


# -- detection ---------------------------------------------------------------------------------


def deepseek_like(nodes: int) -> dict[str, Any]:
    """A ChatGPT-shaped conversation whose last node has DeepSeek's ``fragments``: that one node decides."""
    conversation = chatgpt_conversation("d", nodes, text="x" * 100)
    conversation["mapping"][f"n{nodes - 1}"]["message"]["fragments"] = [{"type": "RESPONSE", "content": "hi"}]
    return conversation


def test_a_large_first_conversation_is_told_without_decoding_all_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 17: the detector decoded the whole first conversation (of a one-conversation export, the whole file).
    monkeypatch.setattr(detect, "_DECODE_CHARS", 4096)
    monkeypatch.setattr(detect, "_NEEDLE_READ", 7)  # a needle is cut between two reads somewhere
    path = tmp_path / "one.json"
    text = json.dumps([chatgpt_conversation("big", 200, text="y" * 100)])
    path.write_text(text[:len(text) // 2] + " this is never read")  # broken past the first 4 KB
    assert detect_format(path) == "chatgpt"
    path.write_text(json.dumps([deepseek_like(200)]))
    assert detect_format(path) == "deepseek"  # "fragments" is in the file: every node is looked at
    with zipfile.ZipFile(tmp_path / "export.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", json.dumps([deepseek_like(200)]))
    assert detect_format(tmp_path / "export.zip") == "deepseek"
    with zipfile.ZipFile(tmp_path / "export2.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", json.dumps([chatgpt_conversation("big", 200, text="y" * 100)]))
    assert detect_format(tmp_path / "export2.zip") == "chatgpt"


# -- writing -----------------------------------------------------------------------------------


def small(key: str, count: int, *, head: int | None = None) -> ImportConversation:
    rows = [ImportMessage({"role": "user" if n % 2 == 0 else "assistant", "content": f"{key} {n}"}, key=f"{key}{n}",
                          parent_key=f"{key}{n - 1}" if n else None) for n in range(count)]
    return ImportConversation(rows, key=key, title=key, head_key=f"{key}{head if head is not None else count - 1}")


def test_small_conversations_are_written_many_to_an_insert(tmp_path: Path) -> None:
    # Each INSERT makes the search index write a segment: one per conversation was the import's largest cost.
    store = open_store(tmp_path / "x.db")
    assert isinstance(store, SQLiteStore)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    summary = store.import_conversations([small(f"c{n}", 10) for n in range(120)])
    store._db.set_trace_callback(None)
    # Distinct: SQLite traces a statement again as it steps through its triggers.
    inserts = {sql for sql in statements if sql.startswith("INSERT INTO messages (")}
    assert summary.messages_added == 1200
    assert len(inserts) == -(-1200 // sqlite_bulk.ROWS_PER_INSERT)
    for n in (0, 57, 119):
        conversation = store.conversation(summary.conversation_ids[n])
        assert [m["content"] for m in conversation.messages] == [f"c{n} {i}" for i in range(10)]
    assert store.check_integrity() == []
    store.close()


def test_a_conversation_twice_in_one_import_is_added_to_not_repeated(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_bulk, "ROWS_PER_INSERT", 1000)  # the first one's rows still wait when it comes again
    store = open_store(tmp_path / "x.db")
    summary = store.import_conversations([small("a", 3), small("b", 2), small("a", 5, head=4), small("a", 4, head=3)])
    assert (summary.conversations_created, summary.conversations_updated) == (2, 1)
    assert (summary.messages_added, summary.messages_skipped) == (7, 3 + 4)
    [a] = [c for c in store.list_conversations() if c.title == "a"]
    assert [m["content"] for m in store.conversation(a.id).messages] == [f"a {n}" for n in range(5)]
    assert store.check_integrity() == []
    store.close()


def test_the_search_index_after_a_bulk_import_holds_what_appends_one_by_one_give(tmp_path: Path) -> None:
    # Rows written 500 to an INSERT, across conversations, index the same words as one message a transaction.
    texts = ["Café ☕ costs $5 + tip", "東京 tower at dusk", "x" * 300 + " long-word and_under_score", "",
             "plain ascii words only", "emoji 👩‍💻 and NUL \x00 inside", "Straße STRASSE strasse"]
    conversations = [ImportConversation([ImportMessage({"role": "user" if n % 2 == 0 else "assistant",
                                                        "content": f"{texts[(c + n) % len(texts)]} {c}-{n}"},
                                                       key=f"{c}-{n}", parent_key=f"{c}-{n - 1}" if n else None)
                                         for n in range(9)], key=f"c{c}", id=f"c{c}") for c in range(130)]
    bulked, appended = open_store(tmp_path / "bulk.db"), open_store(tmp_path / "append.db")
    assert isinstance(bulked, SQLiteStore) and isinstance(appended, SQLiteStore)
    bulked.import_conversations(conversations)
    for item in conversations:
        conversation = appended.conversation(item.id or "", create=True)
        for imported in item.messages:
            conversation.append(imported.message)

    def index(store: SQLiteStore) -> list[tuple[Any, ...]]:
        return store._db.execute("SELECT m.conversation_id, m.text, f.words FROM messages m"
                                 " JOIN messages_fts f ON f.rowid = m.seq ORDER BY m.seq").fetchall()

    appended.search("plain")  # a search first moves the appends' backlog into the index
    assert index(bulked) == index(appended) and len(index(bulked)) == 130 * 9
    for store in (bulked, appended):
        store._db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
        assert [hit.message.message["content"] for hit in store.search("tower 5-3")] == ["東京 tower at dusk 5-3"]
        store.close()
