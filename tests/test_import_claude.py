"""Importing claude.ai exports: the shared sample, and a hand-made export with the shapes the sample lacks."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from chatkeep import FormatError, open_store
from chatkeep.formats import detect_format, read_conversations
from chatkeep.store import SQLiteStore

SAMPLE = "claude/openwebui-importer_claude_example.json"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = open_store(tmp_path / "chats.db")
    yield opened
    opened.close()


def load(store: SQLiteStore, path: Path, warnings: list[str] | None = None) -> list[str]:
    return store.import_conversations(read_conversations(path, warnings=warnings)).conversation_ids


def test_the_sample_export(samples: Path, store: SQLiteStore) -> None:
    source = json.loads((samples / SAMPLE).read_text())
    warnings: list[str] = []
    ids = load(store, samples / SAMPLE, warnings)
    # Two of the 85 conversations have no messages: left out, each with a warning.
    assert len(ids) == 83 and store.count_messages() == 557
    assert [w.split(": ")[-1] for w in warnings] == ["no messages to import; left out"] * 2
    full = next(c for c in source if c["name"])
    conversation = next(store.conversation(i) for i in ids if store.get_conversation(i).title == full["name"])
    path = conversation.history()
    assert [m.message for m in path] == [
        {"role": "user" if m["sender"] == "human" else "assistant", "content": m["text"]} for m in full["chat_messages"]]
    assert path[1].message["content"].startswith(" Photosynthesis is how plants")  # the leading space is kept
    assert [m.created_at.isoformat() for m in path] == [
        datetime.fromisoformat(m["created_at"].replace("Z", "+00:00")).isoformat() for m in full["chat_messages"]]
    assert conversation.record.created_at.isoformat() == "2025-06-21T20:48:38.467685+00:00"
    assert conversation.head is not None and conversation.head.metadata["claude"]["uuid"] == full["chat_messages"][-1]["uuid"]
    assert len(conversation.branches()) == 1  # the export names no parents: one chain
    assert conversation.record.metadata["claude"] == {"uuid": full["uuid"], "account": full["account"]["uuid"]}


def _message(uuid: str, sender: str, created: str, content: list[dict[str, object]] | None, text: str = "",
             **extra: object) -> dict[str, object]:
    found: dict[str, object] = {"uuid": uuid, "sender": sender, "text": text, "created_at": created, **extra}
    if content is not None:
        found["content"] = content
    return found


HAND_MADE = [
    {   # tools, thinking and attachments; no account, no updated_at; a time with no zone and one with 7 digits
        "uuid": "conv-tools", "name": "Weather", "created_at": "2025-01-02T03:04:05",
        "chat_messages": [
            _message("m1", "human", "2025-01-02T03:04:05", [{"type": "text", "text": "Weather in Oslo?"}],
                     attachments=[{"file_name": "notes.txt", "file_size": 12, "file_type": "text/plain",
                                   "extracted_content": "bring a coat"}], files=[{"file_name": "map.png"}]),
            _message("m2", "assistant", "2025-01-02T03:04:09.1234567+01:00", [
                {"type": "thinking", "thinking": "I should look it up."},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "-3C, snow"}]},
                {"type": "tool_use", "name": "web_search", "input": {"query": "Oslo snow"}},  # no id
                {"type": "tool_result", "name": "web_search", "content": "lots of snow", "is_error": False},
                {"type": "text", "text": "It is -3C and snowing."},
                {"type": "token_budget"},
            ]),
        ],
    },
    {   # as claude.ai's API gives it: parents named, an edited first prompt, the current leaf on the second branch
        "uuid": "conv-branches", "name": "", "created_at": "2024-03-01T10:00:00Z", "updated_at": "2024-03-01T10:05:00Z",
        "current_leaf_message_uuid": "b4",
        "chat_messages": [
            _message("b1", "human", "2024-03-01T10:00:00Z", None, "first try",
                     parent_message_uuid="00000000-0000-4000-8000-000000000000"),
            _message("b2", "assistant", "2024-03-01T10:00:05Z", None, "answer one", parent_message_uuid="b1"),
            _message("b3", "human", "2024-03-01T10:01:00Z", None, "second try",
                     parent_message_uuid="00000000-0000-4000-8000-000000000000"),
            _message("b4", "assistant", "2024-03-01T10:01:05Z", None, "answer two", parent_message_uuid="b3"),
            _message("b5", "assistant", "2024-03-01T10:02:05Z", None, "answer two, again", parent_message_uuid="b3"),
        ],
    },
    {"uuid": "conv-empty", "name": "nothing", "chat_messages": []},
]


def test_a_hand_made_export_with_tools_thinking_attachments_and_branches(store: SQLiteStore, tmp_path: Path) -> None:
    source = tmp_path / "conversations.json"
    source.write_text(json.dumps(HAND_MADE))
    assert detect_format(source) == "claude"
    warnings: list[str] = []
    tools, branches = load(store, source, warnings)
    assert warnings == [f"{source}: conversations[2] (conversation conv-empty): no messages to import; left out"]
    path = store.path(tools)
    assert [m.message for m in path] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "-3C, snow"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "toolu_m2_1", "type": "function", "function": {
            "name": "web_search", "arguments": '{"query": "Oslo snow"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_m2_1", "content": "lots of snow"},
        {"role": "assistant", "content": "It is -3C and snowing."},
    ]
    assert path[0].metadata["claude"]["attachments"][0]["extracted_content"] == "bring a coat"
    assert path[0].metadata["claude"]["files"] == [{"file_name": "map.png"}]
    assert path[-1].metadata["claude"]["thinking"] == ["I should look it up."]
    assert path[-1].metadata["claude"]["blocks"] == [{"type": "token_budget"}]
    assert path[0].created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)  # no zone: UTC
    assert path[1].created_at.isoformat() == "2025-01-02T02:04:09.123456+00:00"
    record = store.get_conversation(tools)
    assert record.updated_at == record.created_at  # no updated_at: the creation time
    conversation = store.conversation(branches)
    assert conversation.title is None  # claude.ai's untitled chats have name ""
    assert [m.message["content"] for m in conversation.history()] == ["second try", "answer two"]
    roots = [m for m in store.find_messages(branches, kind="chat") if m.parent_id is None]
    assert [m.message["content"] for m in roots] == ["first try", "second try"]
    assert [b.current for b in conversation.branches()] == [False, True, False]
    again = store.import_conversations(read_conversations(source, warnings=[]))
    assert (again.conversations_created, again.messages_added) == (0, 0)


def test_the_export_zip_imports_like_its_conversations_json(samples: Path, store: SQLiteStore, tmp_path: Path) -> None:
    archive = tmp_path / "data-2025-06-21.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(samples / SAMPLE, "conversations.json")
        zf.writestr("users.json", "[]")
        zf.writestr("projects.json", "[]")
    assert detect_format(archive) == "claude"
    assert len(load(store, archive, [])) == 83
    assert store.import_conversations(read_conversations(samples / SAMPLE, warnings=[])).messages_added == 0


def test_an_unknown_sender_is_named(store: SQLiteStore, tmp_path: Path) -> None:
    source = tmp_path / "conversations.json"
    source.write_text(json.dumps([{"uuid": "c", "chat_messages": [_message("x", "robot", "", None, "beep")]}]))
    with pytest.raises(FormatError, match=r"conversations\[0\]\.chat_messages\[0\]\.sender: unknown sender 'robot'"):
        load(store, source)
