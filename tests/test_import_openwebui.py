"""Open WebUI: importing its export and its single chats, and ``chatkeep export --format openwebui`` back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatkeep import open_store
from chatkeep.formats import detect_format, read_conversations
from chatkeep.store import SQLiteStore, StoredMessage
from clitools import environment, run

EXPORT = "openwebui/librechat_openwebui-export.json"
CHAT = "openwebui/openwebui-importer_webui-json.json"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = open_store(tmp_path / "chats.db")
    yield opened
    opened.close()


def load(store: SQLiteStore, path: Path, warnings: list[str] | None = None) -> list[str]:
    return store.import_conversations(read_conversations(path, warnings=warnings)).conversation_ids


def bodies(path: list[StoredMessage]) -> list[dict[str, Any]]:
    return [m.message for m in path]


def test_the_export_list_reasoning_tools_and_times(samples: Path, store: SQLiteStore) -> None:
    reasoning, tool, simple = load(store, samples / EXPORT)
    chat = store.conversation(reasoning)
    assert chat.title == "Chat with reasoning" and chat.record.created_at.timestamp() == 1700000000
    assert bodies(chat.history()) == [{"role": "user", "content": "What is 15 * 17?"},
                                      {"role": "assistant", "content": "255"}]
    answer = chat.history()[-1]
    assert answer.metadata["openwebui"]["reasoning"] == "15 * 17 = 15 * 10 + 15 * 7 = 150 + 105 = 255"
    assert answer.model == "deepseek-r1" and answer.created_at.timestamp() == 1700000010
    assert bodies(store.path(tool)) == [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Paris: 18C, rain"},
        {"role": "assistant", "content": "The weather in Paris is 18C with rain."}]
    assert store.conversation(tool).head is not None and store.conversation(tool).head.metadata["openwebui"]["id"] == "ta2"
    assert [m.model for m in store.path(simple)] == [None, "llama3.1:latest"]


def test_one_chat_taken_from_the_database(samples: Path, store: SQLiteStore) -> None:
    source = json.loads((samples / CHAT).read_text())
    [chat_id] = load(store, samples / CHAT)
    chat = store.conversation(chat_id)
    assert chat.title == "\U0001f9e0 Goldwater Rule Ethics"
    assert chat.record.created_at.timestamp() == 1744577557.127  # chat.timestamp is in milliseconds
    path = chat.history()
    messages = source["history"]["messages"]
    assert [m.message["content"] for m in path] == [messages[m.metadata["openwebui"]["id"]]["content"] for m in path]
    assert "can''t" in path[0].message["content"]  # the SQL dump's doubled quote is the file's, and kept
    assert path[-1].usage == {"prompt_tokens": 26, "completion_tokens": 310, "total_tokens": 336}
    assert path[-1].metadata["openwebui"]["modelName"] == "DeepSeek: DeepSeek V3 (free)"
    assert path[-1].metadata["openwebui"]["id"] == source["history"]["currentId"]
    assert chat.record.metadata["openwebui"] == {"models": ["deepseek/deepseek-chat:free"]}


def _node(key: str, parent: str | None, children: list[str], role: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"id": key, "parentId": parent, "childrenIds": children, "role": role, "content": content, **extra}


#: An older export, no ``output``: a regenerated answer (currentId on the first one), tool calls and reasoning
#: only in the content's HTML, an image file, Ollama usage, an unfinished and a failed reply, millisecond times.
HAND_MADE = [{
    "id": "hand-1", "title": "Branches", "created_at": 1714000000, "updated_at": 1714000900,
    "chat": {"title": "Branches", "models": ["llama3"], "history": {"currentId": "a1", "messages": {
        "u1": _node("u1", None, ["a1", "a2"], "user", "Look at this", timestamp=1714000000,
                    files=[{"type": "image", "url": "data:image/png;base64,iVBORw0KGgo="},
                           {"type": "file", "name": "doc.pdf", "id": "f1"}]),
        "a2": _node("a2", "u1", [], "assistant", "Second try", model="llama3", timestamp=1714000600, done=False),
        "a1": _node("a1", "u1", ["u2"], "assistant",
                    '<details type="reasoning" done="true" duration="2">\n<summary>Thought for 2 seconds</summary>\n'
                    '&gt; A cat &amp; a hat.\n&gt; Two lines.\n</details>\n'
                    '<details type="tool_calls" done="true" id="call_9" name="describe" '
                    'arguments="&quot;{\\&quot;detail\\&quot;: 1}&quot;" result="&quot;a cat&quot;" files="" embeds="">\n'
                    "<summary>Tool Executed</summary>\n</details>\nIt is a cat.",
                    model="llama3", timestamp=1714000010,
                    usage={"eval_count": 12, "total_duration": 123456}),
        "u2": _node("u2", "a1", ["a3"], "user", "Thanks", timestamp=1714000020),
        "a3": _node("a3", "u2", [], "assistant", "", model="llama3", timestamp=1714000030,
                    error={"content": "Ollama: 500"}),
    }}},
}]


def test_a_hand_made_older_export_with_branches_html_details_and_files(store: SQLiteStore, tmp_path: Path) -> None:
    source = tmp_path / "chat-export.json"
    source.write_text(json.dumps(HAND_MADE))
    assert detect_format(source) == "openwebui"
    [chat_id] = load(store, source)
    chat = store.conversation(chat_id)
    assert bodies(chat.history()) == [
        {"role": "user", "content": [{"type": "text", "text": "Look at this"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "describe", "arguments": '{"detail": 1}'}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "a cat"},
        {"role": "assistant", "content": "It is a cat."},
    ]
    first, reply = chat.history()[0], chat.history()[-1]
    assert first.metadata["openwebui"]["files"] == [{"type": "file", "name": "doc.pdf", "id": "f1"}]
    assert reply.metadata["openwebui"]["reasoning"] == "A cat & a hat.\nTwo lines."
    assert reply.metadata["openwebui"]["usage"] == {"eval_count": 12, "total_duration": 123456} and reply.usage is None
    [regenerated] = [m for m in store.children(first.id) if m.message.get("content") == "Second try"]
    assert regenerated.status == "incomplete"  # done: false
    failed = [m for m in store.find_messages(chat_id, kind="chat") if m.metadata.get("openwebui", {}).get("id") == "a3"]
    assert failed[0].status == "error" and failed[0].metadata["openwebui"]["error"] == {"content": "Ollama: 500"}
    assert len(chat.branches()) == 2
    assert store.import_conversations(read_conversations(source)).messages_added == 0


def _shape(value: Any) -> Any:
    """A JSON value's shape: its keys and types, not its values."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def test_the_export_has_the_samples_shape_and_imports_back_the_same(samples: Path, tmp_path: Path) -> None:
    db, again = tmp_path / "chats.db", tmp_path / "again.db"
    for name in (EXPORT, "librechat/librechat_librechat-tree.json", "claude/openwebui-importer_claude_example.json"):
        assert run(environment(db), "import", str(samples / name)).code == 0
    exported = tmp_path / "openwebui.json"
    result = run(environment(db), "export", "--all", "--format", "openwebui", "-o", str(exported))
    assert result.code == 0, result.err
    records = json.loads(exported.read_text())
    sample = json.loads((samples / EXPORT).read_text())
    record_keys = set(sample[0]) | {"chat"}
    assert all(set(record) == record_keys for record in records)
    assert all({"title", "models", "history"} <= set(record["chat"]) for record in records)
    tool = next(r for r in records if r["title"] == "Chat with tool call")
    [reply] = [m for m in tool["chat"]["history"]["messages"].values() if m["role"] == "assistant"]
    [sample_reply] = [m for m in sample[1]["chat"]["history"]["messages"].values() if m["role"] == "assistant"]
    assert [item["type"] for item in reply["output"]] == [item["type"] for item in sample_reply["output"]]
    for ours, theirs in zip(reply["output"], sample_reply["output"]):
        assert _shape(ours) == {key: value for key, value in _shape(theirs).items() if key != "id"}
    assert set(reply) == set(sample_reply)
    assert reply["content"].startswith('<details type="tool_calls" done="true" id="call_1" name="get_weather"')

    assert run(environment(again), "import", str(exported)).code == 0
    before, after = open_store(db), open_store(again)
    try:
        first = {r.id: r for r in before.list_conversations(limit=None)}
        second = {r.metadata["openwebui"]["id"]: r for r in after.list_conversations(limit=None)}
        assert set(first) == set(second) and len(first) == 3 + 1 + 83
        for key, record in first.items():
            assert second[key].title == record.title
            _same_tree(before, record.id, after, second[key].id)
        thought = next(r for r in second.values() if r.title == "Chat with reasoning")
        assert after.path(thought.id)[-1].metadata["openwebui"]["reasoning"].startswith("15 * 17 = 15 * 10")
    finally:
        before.close()
        after.close()


def _tree(store: SQLiteStore, conversation_id: str) -> tuple[set[tuple[Any, ...]], list[str]]:
    """A conversation as its set of paths (root to each message, as JSON) and the current path."""
    found = store.find_messages(conversation_id, kind="chat")
    by_id = {m.id: m for m in found}

    def path(message: StoredMessage) -> tuple[Any, ...]:
        out = []
        at: StoredMessage | None = message
        while at is not None:
            out.append(json.dumps(at.message, sort_keys=True))
            at = by_id.get(at.parent_id) if at.parent_id else None
        return tuple(reversed(out))

    current = [json.dumps(m.message, sort_keys=True) for m in store.path(conversation_id)]
    return {path(m) for m in found}, current


def _same_tree(before: SQLiteStore, first: str, after: SQLiteStore, second: str) -> None:
    assert _tree(before, first) == _tree(after, second)
    old, new = before.path(first), after.path(second)
    assert [int(m.created_at.timestamp()) for m in old] == [int(m.created_at.timestamp()) for m in new]
    assert [m.model for m in old if m.role == "assistant"][-1:] == [m.model for m in new if m.role == "assistant"][-1:]
