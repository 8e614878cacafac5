"""Hostile input: huge, strange, deep or malicious data gets correct handling or a clear error,
and nothing stored before is changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatkeep import ChatkeepError, MessageError, open_store, validate_message
from chatkeep.store.bulk import ImportConversation, ImportMessage


@pytest.fixture(params=["sqlite", "jsonfile"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    opened = open_store(tmp_path / ("hostile.db" if request.param == "sqlite" else "hostile.json"))
    yield opened
    opened.close()


def conversation(store: Any) -> Any:
    return store.conversation("hostile" if store.url.endswith(".db") else store.conversation_id, create=True)


def snapshot(store: Any, conv: Any) -> list[dict[str, Any]]:
    return [m.message for m in conv.history()]


def test_a_ten_megabyte_message_round_trips_and_is_searchable(store: Any) -> None:
    conv = conversation(store)
    big = {"role": "user", "content": ("lorem ipsum dolor sit amet " * 400_000)[:10_000_000] + " needle"}
    conv.append(big)
    assert conv.messages == [big]
    assert [h.message.message["content"][-6:] for h in store.search("needle")] == ["needle"]


ODD_TEXTS = [
    "NUL \x00 in the middle",
    "lone surrogates \ud800 and \udfff",
    "right-to-left \u202eevil\u202c and Arabic مرحبا and Hebrew שלום",
    "emoji 👩‍👩‍👧‍👦 🏳️‍🌈 and combining e\u0301",
    "control \x1b[31mred\x1b[0m and \r\n line ends",
]


@pytest.mark.parametrize("text", ODD_TEXTS, ids=["nul", "surrogates", "rtl", "emoji", "control"])
def test_odd_text_round_trips(store: Any, text: str) -> None:
    conv = conversation(store)
    conv.append({"role": "user", "content": text})
    assert conv.messages == [{"role": "user", "content": text}]


def test_deeply_nested_parts_round_trip_or_are_refused_clearly(store: Any) -> None:
    conv = conversation(store)
    conv.append({"role": "user", "content": "kept"})
    before = snapshot(store, conv)
    nested: dict[str, Any] = {}
    cursor = nested
    for _ in range(200):
        cursor["inner"] = {}
        cursor = cursor["inner"]
    fine = json.loads(json.dumps({"role": "user", "content": [{"type": "text", "text": "deep", "extra": nested}]}))
    conv.append(fine)
    assert conv.messages[-1] == fine
    for _ in range(200_000):
        cursor["inner"] = {}
        cursor = cursor["inner"]
    with pytest.raises(MessageError, match="nested too deeply"):
        conv.append({"role": "user", "content": [{"type": "text", "text": "too deep", "extra": nested}]})
    assert snapshot(store, conv) == before + [fine]


SQL_LOOKING = ["'; DROP TABLE messages; --", 'Robert"); DELETE FROM conversations; --', "% _ \\ ' \"", "1 OR 1=1"]


@pytest.mark.parametrize("name", SQL_LOOKING)
def test_ids_and_titles_that_look_like_sql_are_just_text(tmp_path: Path, name: str) -> None:
    store = open_store(tmp_path / "sql.db")
    store.new_conversation("innocent").append({"role": "user", "content": "still here"})
    conv = store.new_conversation(name, title=name)
    conv.append({"role": "user", "content": name})
    assert store.get_conversation(name).title == name
    assert [c.id for c in store.list_conversations(title_contains=name)] == [name]
    assert store.conversation("innocent").messages == [{"role": "user", "content": "still here"}]
    assert store.check_integrity() == []


def test_a_hundred_thousand_message_conversation(tmp_path: Path) -> None:
    store = open_store(tmp_path / "long.db")
    messages = [ImportMessage({"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"},
                              key=str(i), parent_key=str(i - 1) if i else None) for i in range(100_000)]
    summary = store.import_conversations([ImportConversation(messages, id="long")])
    assert summary.messages_added == 100_000
    conv = store.conversation("long")
    assert [m.message["content"] for m in conv.history(last=3)] == ["message 99997", "message 99998", "message 99999"]
    assert len(conv.messages) == 100_000 and len(conv) == 100_000
    assert [h.message.message["content"] for h in store.search('"message 54321"')] == ["message 54321"]


@settings(max_examples=300, deadline=None)
@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "content", "type", "text", "tool_calls", "id", "function", "name", "arguments",
                         "tool_call_id", "image_url", "url", "refusal", "audio", "x"]), inner, max_size=5),
    max_leaves=20,
))
def test_the_validator_raises_only_its_own_errors(value: Any) -> None:
    try:
        validate_message(value)
    except MessageError:
        pass


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_a_corrupt_json_file_is_a_clear_error_and_left_alone(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    file = tmp_path_factory.mktemp("corrupt") / "history.json"
    file.write_bytes(data)
    try:
        messages = open_store(file).conversation("history").messages
    except ChatkeepError as exc:
        assert str(file) in str(exc)
    else:
        assert isinstance(messages, list)
    assert file.read_bytes() == data


def test_a_truncated_tutorial_file_is_named_with_its_position(tmp_path: Path) -> None:
    file = tmp_path / "history.json"
    whole = json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], indent=2)
    file.write_text(whole[: len(whole) // 2])
    with pytest.raises(ChatkeepError, match=r"history\.json:\d+:\d+: invalid JSON"):
        open_store(file).conversation("history").append({"role": "user", "content": "more"})
    assert file.read_text() == whole[: len(whole) // 2]
