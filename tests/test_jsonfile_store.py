"""The tutorial's conversation_history.json, read and written the tutorial's way, but safely."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chatkeep import FormatError, JSONFileStore, StoreError, Unsupported, open_store

TUTORIAL = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, how are you?"},
    {"role": "assistant", "content": "I'm doing well — thanks for asking! \u2728"},
]


def tutorial_bytes(messages: list[dict[str, str]]) -> bytes:
    """What the tutorial's own json.dump(messages, f, indent=2) writes."""
    return json.dumps(messages, indent=2).encode()


def test_reads_what_the_tutorial_wrote(tmp_path: Path) -> None:
    file = tmp_path / "conversation_history.json"
    with open(file, "w") as f:
        json.dump(TUTORIAL, f, indent=2)
    store = open_store(file)
    assert isinstance(store, JSONFileStore)
    assert store.conversation("conversation_history").messages == TUTORIAL


@pytest.mark.parametrize("content", [None, "", "[]"])
def test_a_missing_or_empty_file_is_an_empty_conversation(tmp_path: Path, content: str | None) -> None:
    file = tmp_path / "conversation_history.json"
    if content is not None:
        file.write_text(content)
    assert open_store(file).conversation("conversation_history").messages == []


def test_writes_the_same_bytes_as_the_tutorial(tmp_path: Path) -> None:
    file = tmp_path / "conversation_history.json"
    conv = open_store(file).conversation("conversation_history", create=True)
    for message in TUTORIAL:
        conv.append(message)
    assert file.read_bytes() == tutorial_bytes(TUTORIAL)


def test_a_new_file_is_owner_only_and_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    new = tmp_path / "new.json"
    open_store(new).conversation("new").append(TUTORIAL[1])
    assert new.stat().st_mode & 0o777 == 0o600
    mine = tmp_path / "mine.json"
    mine.write_text("[]")
    os.chmod(mine, 0o640)
    open_store(mine).conversation("mine").append(TUTORIAL[1])
    assert mine.stat().st_mode & 0o777 == 0o640


def test_a_corrupt_file_names_the_position_and_is_left_untouched(tmp_path: Path) -> None:
    file = tmp_path / "conversation_history.json"
    broken = '[\n  {"role": "user", "content": "hi"},\n  {"role": "assistant", "content": \n'
    file.write_text(broken)
    store = open_store(file)
    with pytest.raises(FormatError) as caught:
        store.conversation("conversation_history").append(TUTORIAL[1])
    assert str(caught.value).startswith(f"{file}:4:1: invalid JSON")
    assert caught.value.line == 4
    assert file.read_text() == broken


def test_a_wrong_message_in_the_file_names_its_index(tmp_path: Path) -> None:
    file = tmp_path / "h.json"
    file.write_text(json.dumps([TUTORIAL[0], {"role": "bot", "content": "x"}]))
    with pytest.raises(FormatError, match=r"h\.json: messages\[1\]\.role: unknown role 'bot'"):
        open_store(file).conversation("h").messages


def test_not_an_array_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "h.json"
    file.write_text('{"messages": []}')
    with pytest.raises(FormatError, match="expected a JSON array of messages, got dict"):
        open_store(file).conversation("h").messages


def test_no_temporary_file_is_left_behind_only_the_documented_lock(tmp_path: Path) -> None:
    file = tmp_path / "h.json"
    conv = open_store(file).conversation("h")
    for message in TUTORIAL:
        conv.append(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".h.json.lock", "h.json"]
    assert (tmp_path / ".h.json.lock").stat().st_mode & 0o777 == 0o600


def test_one_file_one_branch(tmp_path: Path) -> None:
    store = open_store(tmp_path / "h.json")
    conv = store.conversation("h")
    first = conv.append(TUTORIAL[1])
    conv.append(TUTORIAL[2])
    with pytest.raises(Unsupported, match=r"h\.json holds one conversation as a plain list.*needs a branch"):
        conv.append(TUTORIAL[1], parent_id=first.id)
    with pytest.raises(Unsupported, match="move its head without losing messages"):
        conv.set_head(first.id)
    with pytest.raises(StoreError, match="holds one conversation, 'h'"):
        store.create_conversation("other")


def test_sees_changes_made_by_another_writer(tmp_path: Path) -> None:
    file = tmp_path / "h.json"
    store = open_store(file)
    assert store.conversation("h").messages == []
    file.write_text(json.dumps(TUTORIAL, indent=2))
    assert store.conversation("h").messages == TUTORIAL
