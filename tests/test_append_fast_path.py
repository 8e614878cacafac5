"""The append's fast path (issue 17) stores exactly what the general path stored.

A message that is a role and a text is checked, copied and indexed without the
general walks; the write transaction is a class instead of a generator. Each is
held here to what the slower way gave.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatkeep import MessageError, StoreError, open_store
from chatkeep.store import SQLiteStore
from chatkeep.store.base import Draft
from chatkeep.store.heads import _checked_row, _plain_row, prepare


class Text(str):
    """A str subclass: not a plain JSON value as it is, so it takes the general path."""


def same_row(message: Any, kind: str = "chat") -> None:
    draft = Draft(message, kind=kind)  # type: ignore[arg-type]
    fast, general = _plain_row(draft), _checked_row(draft)
    assert fast is not None
    assert (fast.body, fast.role, fast.text, fast.stored, fast.refs, fast.blobs, fast.draft) == (
        general.body, general.role, general.text, general.stored, general.refs, general.blobs, general.draft)
    assert list(fast.body) == list(general.body)  # the caller's key order, which the stored JSON keeps
    assert fast.body is not message and fast.stored is fast.body


@pytest.mark.parametrize("role", ["system", "developer", "user", "assistant"])
@pytest.mark.parametrize("kind", ["chat", "summary"])
def test_a_role_and_a_text_makes_the_general_paths_row(role: str, kind: str) -> None:
    same_row({"role": role, "content": "How does a write-ahead log work?"}, kind)
    same_row({"content": "keys in the caller's order", "role": role}, kind)
    same_row({"role": role, "content": ""}, kind)


@given(st.text())
def test_any_text_makes_the_general_paths_row(text: str) -> None:
    if not text.startswith("data:"):
        same_row({"role": "user", "content": text})


@pytest.mark.parametrize("message", [
    {"role": "user", "content": "hi", "name": "ada"},  # a third key
    {"role": "tool", "content": "42"},  # needs a tool_call_id
    {"role": "function", "content": "42"},  # needs a name
    {"role": "user", "content": [{"type": "text", "text": "hi"}]},  # parts
    {"role": "user", "content": None},
    {"role": "user", "content": Text("hi")},
    {"role": Text("user"), "content": "hi"},
    {"role": "user", "content": "data:text/plain;base64,aGk="},  # may be an attachment
    {"role": "robot", "content": "hi"},
    {"role": "user"},
])
def test_every_other_shape_takes_the_general_path(message: dict[str, Any]) -> None:
    assert _plain_row(Draft(message)) is None


def test_a_response_item_takes_the_general_path() -> None:
    assert _plain_row(Draft({"role": "user", "content": "hi"}, kind="response_item")) is None


def test_the_general_path_still_refuses_what_it_refused() -> None:
    with pytest.raises(MessageError, match="robot"):
        prepare([Draft({"role": "robot", "content": "hi"})])
    with pytest.raises(MessageError, match="tool_call_id"):
        prepare([Draft({"role": "tool", "content": "42"})])
    with pytest.raises(StoreError, match="status"):
        prepare([Draft({"role": "user", "content": "hi"}, status="done")])  # type: ignore[arg-type]


def test_a_text_that_is_a_data_url_is_still_kept_as_an_attachment() -> None:
    url = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(4096)).decode()
    row = prepare([Draft({"role": "user", "content": url})])[0]
    assert row.blobs and row.refs and row.stored["content"] != url


def test_an_appended_text_reads_back_as_given_and_the_callers_dict_stays_its_own(tmp_path: Path) -> None:
    with open_store(tmp_path / "chat.db") as store:
        conversation = store.new_conversation()
        message = {"content": "a lone surrogate \ud800 and ünïcode", "role": "user"}
        stored = conversation.append(message)
        message["content"] = "changed after the append"
        assert stored.message == {"content": "a lone surrogate \ud800 and ünïcode", "role": "user"}
        again = store.get_message(stored.id)
        assert again.message == stored.message and list(again.message) == ["content", "role"]
        assert [hit.message.id for hit in store.search("unicode")] == [stored.id]


def test_a_failed_write_rolls_back_and_names_the_file(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "chat.db")
    conversation = store.new_conversation()
    with pytest.raises(StoreError, match="chat.db"):
        with store._write() as db:
            db.execute("UPDATE conversations SET title = 'half done' WHERE id = ?", (conversation.id,))
            db.execute("INSERT INTO no_such_table VALUES (1)")
    with pytest.raises(KeyError):
        with store._write() as db:
            db.execute("UPDATE conversations SET title = 'half done' WHERE id = ?", (conversation.id,))
            raise KeyError("not SQLite's")
    assert store.get_conversation(conversation.id).title is None
    assert not store._db.in_transaction
    conversation.append({"role": "user", "content": "the lock was let go"})  # a second writer is not locked out
    store.close()
