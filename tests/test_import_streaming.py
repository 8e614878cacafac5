"""Large imports stream: JSON decoded a value at a time, a huge conversation spilled to disk and written in batches."""

from __future__ import annotations

import io
import json
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatkeep import FormatError, open_store
from chatkeep.formats import chatgpt_stream, detect_format, read_conversations
from chatkeep.formats._source import json_array
from chatkeep.store import SQLiteStore, bulk
from chatkeep.store.bulk import checked_first

SAMPLES = ("chatgpt/librechat_chatgpt-tree.json", "chatgpt/DERIVED_pkuppens_subset_4convs.json",
           "chatgpt/librechat_chatgpt-export.json")


class Trickle(io.RawIOBase):
    """A real byte stream that hands out a few bytes per read, so every value is cut somewhere."""

    def __init__(self, data: bytes, seed: int) -> None:
        self.data, self.pos, self.rng = data, 0, random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self.rng.randint(1, 7), len(self.data) - self.pos)
        buffer[:size] = self.data[self.pos:self.pos + size]
        self.pos += size
        return size

    def read(self, size: int = -1) -> bytes:
        chunk = bytearray(7 if size < 0 else min(size, 7))
        return bytes(chunk[:self.readinto(chunk)])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=5), st.booleans(), st.integers(0, 2**16))
def test_an_array_read_a_few_bytes_at_a_time_decodes_as_json_loads_does(
        values: list[Any], ascii_only: bool, seed: int) -> None:
    # Numbers, multi-byte characters and \ud83d\ude00 escape pairs all get cut at a read's end somewhere.
    data = json.dumps(values, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if not ascii_only and "\\ud" in data.decode("utf-8", "surrogatepass"):
        return
    assert [value for _, value in json_array(Trickle(data, seed), "x.json", "items")] == json.loads(data)


@pytest.mark.parametrize("text, reason", [
    (b'[{"a": 1}, {"b": tru', "invalid JSON in or after items\\[1\\]: parse error: premature EOF"),
    (b'[{"a": 1}, {"b": 2}} ', "invalid JSON in or after items\\[1\\]: parse error: expected ',' or ']'"),
    (b'[{"a": NaN}]', "invalid JSON in or after items\\[0\\]: parse error: NaN is not JSON"),
    (b'[1] 2', "invalid JSON in or after items\\[1\\]: parse error: trailing garbage"),
    (b'[1, {"a": "\xff"}]', "items\\[1\\]: text is not valid UTF-8"),
])
def test_broken_arrays_are_named_by_the_element_they_break_in(text: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        list(json_array(io.BytesIO(text), "x.json", "items"))


def stored(store: SQLiteStore) -> list[tuple[Any, ...]]:
    """Every conversation as what a user sees of it: title, head path, and each message with its parent's key."""
    out = []
    for conversation in sorted(store.list_conversations(limit=1000), key=lambda c: c.title or ""):
        messages = store.find_messages(conversation.id, kind="chat")
        key_of = {m.id: m.metadata["chatgpt"]["node_id"] for m in messages}
        out.append((conversation.title, key_of.get(conversation.head_id or ""),
                    sorted((key_of[m.id], key_of.get(m.parent_id or ""), json.dumps(m.message, sort_keys=True),
                            m.status, m.model, m.created_at) for m in messages)))
    return out


def import_all(path: Path, db: Path) -> tuple[list[tuple[Any, ...]], list[str]]:
    warnings: list[str] = []
    store = open_store(db)
    try:
        store.import_conversations(read_conversations(path, warnings=warnings))
        again = store.import_conversations(read_conversations(path, warnings=[]))
        assert again.messages_added == 0
        return stored(store), warnings
    finally:
        store.close()


@pytest.mark.parametrize("sample", SAMPLES)
def test_a_conversation_spilled_to_disk_and_written_in_batches_imports_as_one_held_whole(
        samples: Path, sample: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = import_all(samples / sample, tmp_path / "whole.db")
    monkeypatch.setattr(chatgpt_stream, "SPILL_CHARS", 0)
    monkeypatch.setattr(bulk, "PLAN_BATCH", 2)
    assert import_all(samples / sample, tmp_path / "streamed.db") == expected


def big_conversation(path: Path, nodes: int, *, wrapped: bool) -> None:
    """One ChatGPT conversation of ``nodes`` messages of about 5 KB each, in a line under the empty root."""
    mapping: dict[str, Any] = {"root": {"id": "root", "message": None, "parent": None, "children": ["n0"]}}
    for n in range(nodes):
        role = "user" if n % 2 == 0 else "assistant"
        mapping[f"n{n}"] = {"id": f"n{n}", "parent": "root" if n == 0 else f"n{n - 1}",
                            "children": [f"n{n + 1}"] if n + 1 < nodes else [],
                            "message": {"id": f"n{n}", "author": {"role": role},
                                        "content": {"content_type": "text", "parts": [f"message {n} " + "x" * 5000]},
                                        "status": "finished_successfully", "create_time": 1.7e9 + n}}
    conversation = {"id": "big", "title": "Big", "create_time": 1.7e9, "mapping": mapping,
                    "current_node": f"n{nodes - 1}"}
    path.write_text(json.dumps([conversation] if wrapped else conversation))


def peak_while(work: Iterator[Any]) -> int:
    tracemalloc.start()
    try:
        for _ in work:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("wrapped", [True, False])
def test_one_huge_conversation_is_read_and_checked_without_holding_it(tmp_path: Path, wrapped: bool) -> None:
    # Issue 17: a 200 MB conversation was built whole (by the detector, then the reader): 1.9 GB peak.
    path = tmp_path / "one.json"
    big_conversation(path, 3_000, wrapped=wrapped)
    size = path.stat().st_size
    assert detect_format(path) == "chatgpt"
    assert peak_while(iter([detect_format(path)])) < size / 8
    assert peak_while(checked_first(read_conversations(path))) < size / 4
    store = open_store(tmp_path / "x.db")
    summary = store.import_conversations(read_conversations(path))
    assert summary.messages_added == 3_000
    conversation = store.list_conversations()[0]
    assert store.count_messages() == 3_000
    assert conversation.head_id is not None
    assert store.get_message(conversation.head_id).message["content"].startswith("message 2999 ")
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_pinned_ancestors_cross_batches_and_statements(tmp_path: Path, backend: str, request: pytest.FixtureRequest,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from chatkeep.store import sqlite_bulk
    from test_first_turn import EXPECTED_TREE, pinned_of_each, tree

    monkeypatch.setattr(bulk, "PLAN_BATCH", 3)  # parents in an earlier batch, already written
    monkeypatch.setattr(sqlite_bulk, "ROWS_PER_INSERT", 2)  # and in an earlier statement of the same batch
    store = open_store(request.getfixturevalue("postgres_url") if backend == "postgres" else tmp_path / "x.db")
    with store:
        store.import_conversations([tree("imported")])
        assert pinned_of_each(store, "imported") == EXPECTED_TREE
        assert store.conversation("imported").record.head_id == next(
            m.id for m in store.find_messages("imported", kind="chat") if m.message["content"] == "assistant a3")
        assert store.check_integrity() == []
