"""Importing LibreChat exports: its three real layouts, and hand-made ones for the older ``messagesTree`` and agents' parts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatkeep import open_store
from chatkeep.formats import detect_format, read_conversations
from chatkeep.store import SQLiteStore, StoredMessage

TREE = "librechat/librechat_librechat-tree.json"
FLAT = "librechat/librechat_librechat-opts-nonr-branches.json"
LINEAR = "librechat/librechat_librechat-linear.json"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = open_store(tmp_path / "chats.db")
    yield opened
    opened.close()


def load(store: SQLiteStore, path: Path) -> str:
    [conversation_id] = store.import_conversations(read_conversations(path, warnings=[])).conversation_ids
    return conversation_id


def texts(path: list[StoredMessage]) -> list[str]:
    return [m.message["content"] for m in path]


def test_the_recursive_tree_with_two_branch_points(samples: Path, store: SQLiteStore) -> None:
    source = json.loads((samples / TREE).read_text())
    conversation = store.conversation(load(store, samples / TREE))
    assert conversation.title == "Troubleshooting Python Virtual Environment Activation Issue"
    path = conversation.history()
    # options.promptPrefix is the system prompt; the head is LibreChat's default view: the last child each time.
    assert texts(path)[:3] == ["You are an expert software engineer.", source["messages"][0]["text"],
                               source["messages"][0]["children"][0]["text"]]
    assert texts(path)[3:] == ["lol", source["messages"][0]["children"][0]["children"][1]["children"][0]["text"]]
    answer = path[2]
    assert answer.model == "gpt-4-turbo" and answer.finish_reason == "stop"
    assert answer.metadata["librechat"]["sender"] == "Software Engineer"
    assert [len(store.children(m.id)) for m in path] == [1, 1, 2, 1, 0]
    thanks = next(m for m in store.children(answer.id) if m.message["content"] == "thanks")
    assert [m.message["content"][:16] for m in store.children(thanks.id)] == ["You're welcome! "] * 2
    assert len(conversation.branches()) == 3
    # Times: the first two messages have theirs; later ones (written before LibreChat kept times) take their parent's.
    assert path[1].created_at.isoformat() == "2024-05-01T16:35:11.530000+00:00"
    assert path[3].created_at == answer.created_at and path[0].created_at == path[1].created_at
    assert conversation.record.metadata["librechat"]["options"]["model"] == "gpt-4-turbo"


def test_the_flat_list_with_two_roots(samples: Path, store: SQLiteStore) -> None:
    conversation_id = load(store, samples / FLAT)
    roots = [m for m in store.find_messages(conversation_id, kind="chat") if m.parent_id is None]
    assert texts(roots) == ["tell me a long story", "tell me a long long story"]  # an edited first message
    assert [len(store.children(m.id)) for m in roots] == [2, 1]
    path = store.path(conversation_id)
    assert texts(path)[0] == "tell me a long long story" and path[-1].created_at.isoformat() == "2024-05-28T18:14:08.403000+00:00"
    assert path[-1].status == "incomplete" and path[-1].finish_reason == "incomplete"


def test_the_linear_export_without_options(samples: Path, store: SQLiteStore) -> None:
    conversation_id = load(store, samples / LINEAR)
    path = store.path(conversation_id)
    assert [m.role for m in path] == ["user", "assistant"] and path[0].parent_id is None
    assert path[0].created_at == path[1].created_at  # both share createdAt in the file
    assert path[1].model == "gpt-4o" and path[1].status == "complete"


def _message(key: str, parent: str, user: bool, text: str, **extra: Any) -> dict[str, Any]:
    return {"messageId": key, "parentMessageId": parent, "isCreatedByUser": user, "text": text,
            "sender": "User" if user else "Agent", **extra}


def test_older_messages_tree_and_agents_parts(store: SQLiteStore, tmp_path: Path) -> None:
    nil = "00000000-0000-0000-0000-000000000000"
    export = {
        "conversationId": "hand-1", "title": "Agents", "endpoint": "agents", "recursive": True,
        "messagesTree": [_message("q1", nil, True, "Search cats", createdAt="2024-04-09T14:32:05Z", children=[
            _message("r1", "q1", False, "", createdAt="2024-04-09T14:32:09.5Z", model="gpt-4o", content=[
                {"type": "think", "think": "Use the tool."},
                {"type": "text", "text": {"value": "Searching."}},
                {"type": "tool_call", "tool_call": {"id": "call_a", "name": "search", "args": '{"q":"cats"}',
                                                   "output": "3 cats"}},
                {"type": "text", "text": "Found 3 cats."},
                {"type": "image_file", "image_file": {"file_id": "f1"}},
            ], children=[]),
            _message("r2", "q1", False, "partial", unfinished=True, error=False, children=[]),
        ])],
    }
    source = tmp_path / "export.json"
    source.write_text(json.dumps(export))
    assert detect_format(source) == "librechat"
    conversation_id = load(store, source)
    path = store.path(conversation_id)
    assert texts(path) == ["Search cats", "partial"]  # the last child is LibreChat's default branch
    first = store.children(path[0].id)[0]
    run = [first]
    while store.children(run[-1].id):
        run.append(store.children(run[-1].id)[0])
    assert [m.message for m in run] == [
        {"role": "assistant", "content": "Searching.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "search", "arguments": '{"q":"cats"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "3 cats"},
        {"role": "assistant", "content": "Found 3 cats."}]
    assert run[-1].metadata["librechat"]["reasoning"] == "Use the tool."
    assert run[-1].metadata["librechat"]["content"] == [{"type": "image_file", "image_file": {"file_id": "f1"}}]
    assert run[-1].created_at.isoformat() == "2024-04-09T14:32:09.500000+00:00"
    assert path[1].status == "incomplete" and path[1].created_at == path[0].created_at
    assert store.import_conversations(read_conversations(source)).messages_added == 0
