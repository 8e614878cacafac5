"""Importing DeepSeek, Grok, Chatbot UI, Google AI Studio and a ChatGPT conversation saved alone.

Each format is checked against its shared sample, then against a hand-made
file in the shapes the sample does not show (missing optional fields, more
branches, odd times), as other people's files will have them.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from chatkeep import open_store
from chatkeep.formats import detect_format, read_conversations
from chatkeep.store import SQLiteStore, StoredMessage

DEEPSEEK = "other/deepseek/deepseek-exporter_test_chat_raw_2025-11-22.json"
GROK = "other/grok/openwebui-importer_grok_example.json"
CHATBOTUI = "other/chatbot-ui/librechat_chatbotui-export.json"
AISTUDIO = "other/aistudio/openwebui-importer_aistudio_example.json"
IMAGES = "chatgpt/chatgpt-exporter_image-generation.json"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = open_store(tmp_path / "chats.db")
    yield opened
    opened.close()


def load(store: SQLiteStore, path: Path, warnings: list[str] | None = None) -> list[str]:
    return store.import_conversations(read_conversations(path, warnings=warnings)).conversation_ids


def texts(path: list[StoredMessage]) -> list[str]:
    return [m.message["content"] for m in path]


def again_adds_nothing(store: SQLiteStore, path: Path) -> None:
    summary = store.import_conversations(read_conversations(path, warnings=[]))
    assert (summary.conversations_created, summary.messages_added) == (0, 0)


# -- DeepSeek --------------------------------------------------------------------------------------

def test_deepseek_history_regenerations_edits_and_thinking(samples: Path, store: SQLiteStore) -> None:
    data = json.loads((samples / DEEPSEEK).read_text())["data"]["biz_data"]
    raw = {m["message_id"]: m for m in data["chat_messages"]}
    [chat_id] = load(store, samples / DEEPSEEK)
    chat = store.conversation(chat_id)
    assert chat.title == "test_chat" and chat.record.created_at.timestamp() == data["chat_session"]["inserted_at"]
    every = {int(m.metadata["deepseek_id"]) if "deepseek_id" in m.metadata else None: m
             for m in store.find_messages(chat_id, kind="chat")}
    assert None not in every or len(every) == 1
    stored = {m.created_at.timestamp(): m for m in store.find_messages(chat_id, kind="chat")}
    assert sorted(stored) == sorted(m["inserted_at"] for m in raw.values())
    roots = [m for m in store.find_messages(chat_id, kind="chat") if m.parent_id is None]
    assert len(roots) == 3  # the first prompt, edited twice
    # current_message_id 11: the third prompt's answer, with its THINK fragment kept apart from the answer.
    path = chat.history()
    assert texts(path) == [raw[10]["fragments"][0]["content"], raw[11]["fragments"][1]["content"]]
    assert path[-1].metadata["deepseek"]["thinking"] == raw[11]["fragments"][0]["content"]
    assert not path[-1].message["content"].startswith("Hmm")
    regenerations = {m.parent_id for m in store.find_messages(chat_id, kind="chat") if m.role == "assistant"}
    assert sum(len(store.children(p)) == 2 for p in regenerations if p) == 3  # 2 and 3, 5 and 6, 8 and 9
    assert len(chat.branches()) == 6
    again_adds_nothing(store, samples / DEEPSEEK)


def test_deepseek_account_export_and_an_older_history(store: SQLiteStore, tmp_path: Path) -> None:
    # The account export's conversations.json: a mapping tree, ISO times, a REQUEST/THINK/RESPONSE split, a search.
    def node(key: str, parent: str | None, children: list[str], message: dict[str, Any] | None) -> dict[str, Any]:
        return {"id": key, "parent": parent, "children": children, "message": message}
    export = [{"id": "conv-1", "title": "Tides", "inserted_at": "2025-03-30T04:49:36.505000+08:00",
               "updated_at": "2025-03-30T04:50:29.156000+08:00", "mapping": {
                   "root": node("root", None, ["1"], None),
                   "1": node("1", "root", ["2", "3"], {"files": [], "model": "deepseek-reasoner",
                                                        "inserted_at": "2025-03-30T04:49:37.018000+08:00",
                                                        "fragments": [{"type": "REQUEST", "content": "Why tides?"}]}),
                   "2": node("2", "1", [], {"model": "deepseek-reasoner", "inserted_at": "2025-03-30T04:49:40+08:00",
                                            "fragments": [{"type": "THINK", "content": "The moon."},
                                                          {"type": "RESPONSE", "content": "The moon's pull."}]}),
                   "3": node("3", "1", [], {"model": "deepseek-chat", "inserted_at": "2025-03-30T04:50:20+08:00",
                                            "fragments": [{"type": "SEARCH", "results": [{"url": "https://x"}]},
                                                          {"type": "RESPONSE", "content": "Gravity."}]}),
               }}]
    archive = tmp_path / "deepseek_data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("conversations.json", json.dumps(export))
        zf.writestr("user.json", "{}")
    assert detect_format(archive) == "deepseek"
    [chat_id] = load(store, archive)
    path = store.path(chat_id)  # no current node in the export: the newest leaf
    assert texts(path) == ["Why tides?", "Gravity."] and path[-1].model == "deepseek-chat"
    assert path[-1].metadata["deepseek"]["fragments"] == [{"type": "SEARCH", "results": [{"url": "https://x"}]}]
    assert path[0].created_at == datetime(2025, 3, 29, 20, 49, 37, 18000, tzinfo=timezone.utc)
    other = [m for m in store.children(path[0].id) if m.id != path[-1].id][0]
    assert other.message == {"role": "assistant", "content": "The moon's pull."}
    assert other.metadata["deepseek"]["thinking"] == "The moon."
    # A history saved before DeepSeek had fragments: content and thinking_content, a failed reply, no session times.
    older = tmp_path / "history.json"
    older.write_text(json.dumps({"code": 0, "data": {"biz_data": {
        "chat_session": {"id": "s-2", "title": "Old", "current_message_id": 2},
        "chat_messages": [
            {"message_id": 1, "parent_id": None, "role": "USER", "content": "Hi", "inserted_at": 1738000000.5},
            {"message_id": 2, "parent_id": 1, "role": "ASSISTANT", "content": "Hello", "thinking_content": "greet",
             "inserted_at": 1738000001, "status": "FINISHED", "model": "deepseek-r1"},
            {"message_id": 3, "parent_id": 1, "role": "ASSISTANT", "content": "", "status": "FAILED"},
        ]}}}))
    assert detect_format(older) == "deepseek"
    [old_id] = load(store, older)
    path = store.path(old_id)
    assert texts(path) == ["Hi", "Hello"] and path[-1].metadata["deepseek"]["thinking"] == "greet"
    assert path[-1].model == "deepseek-r1"
    failed = [m for m in store.children(path[0].id) if m.status == "error"]
    assert len(failed) == 1 and failed[0].created_at > path[-1].created_at  # no time: the import's
    again_adds_nothing(store, archive)


# -- Grok ------------------------------------------------------------------------------------------

def test_grok_export(samples: Path, store: SQLiteStore) -> None:
    data = json.loads((samples / GROK).read_text())["conversations"][0]
    [chat_id] = load(store, samples / GROK)
    chat = store.conversation(chat_id)
    responses = [r["response"] for r in data["responses"]]
    assert texts(chat.history()) == [r["message"] for r in responses]
    assert [m.role for m in chat.history()] == ["user", "assistant"] * 5  # sender "human" / "ASSISTANT"
    assert [m.model for m in chat.history()][:2] == [None, "grok-3"]  # the model the prompt asked for
    assert chat.history()[0].created_at.isoformat() == "2025-06-21T19:28:21.194663+00:00"
    assert chat.record.updated_at.isoformat() == "2025-06-21T19:30:01.846938+00:00"
    assert chat.title == data["conversation"]["title"]
    again_adds_nothing(store, samples / GROK)


def test_grok_branches_thinking_and_mongo_times(store: SQLiteStore, tmp_path: Path) -> None:
    def response(key: str, parent: str | None, sender: str, message: str, millis: int, **extra: Any) -> dict[str, Any]:
        return {"response": {"response_id": key, "parent_response_id": parent, "sender": sender, "message": message,
                             "create_time": {"$date": {"$numberLong": str(millis)}}, **extra}}
    export = {"conversations": [{
        "conversation": {"conversation_id": "g-1", "title": "Regenerated", "leaf_response_id": "a1",
                         "create_time": {"$date": {"$numberLong": "1733000000000"}}},
        "responses": [
            response("q1", None, "human", "Why is the sky blue?", 1733000000000),
            response("a1", "q1", "assistant", "Rayleigh scattering.", 1733000005000, model="grok-3",
                     thinking_trace="Short wavelengths scatter.", web_search_results=[{"url": "https://x"}]),
            response("a2", "q1", "assistant", "Because of the air.", 1733000050000, partial=True),
        ]}]}
    source = tmp_path / "prod-grok-backend.json"
    source.write_text(json.dumps(export))
    assert detect_format(source) == "grok"
    [chat_id] = load(store, source)
    path = store.path(chat_id)  # leaf_response_id: the older answer, not the newest leaf
    assert texts(path) == ["Why is the sky blue?", "Rayleigh scattering."]
    assert path[-1].metadata["grok"]["thinking"] == "Short wavelengths scatter."
    assert path[-1].metadata["grok"]["web_search_results"] == [{"url": "https://x"}]
    assert path[-1].created_at == datetime(2024, 11, 30, 20, 53, 25, tzinfo=timezone.utc)
    [other] = [m for m in store.children(path[0].id) if m.id != path[-1].id]
    assert other.status == "incomplete" and other.model is None
    again_adds_nothing(store, source)


# -- Chatbot UI ------------------------------------------------------------------------------------

def test_chatbot_ui_export(samples: Path, store: SQLiteStore) -> None:
    data = json.loads((samples / CHATBOTUI).read_text())
    ids = load(store, samples / CHATBOTUI)
    assert [store.get_conversation(i).title for i in ids] == [c["name"] for c in data["history"]]
    for conversation_id, source in zip(ids, data["history"]):
        path = store.path(conversation_id)
        assert [m.message for m in path] == [{"role": "system", "content": source["prompt"]}] + [
            {"role": m["role"], "content": m["content"]} for m in source["messages"]]
        assert {m.model for m in path if m.role == "assistant"} == {source["model"]["id"]}
        assert store.get_conversation(conversation_id).metadata["chatbotui"]["temperature"] == source["temperature"]
    again_adds_nothing(store, samples / CHATBOTUI)


def test_chatbot_ui_older_export_an_edit_becomes_a_branch(store: SQLiteStore, tmp_path: Path) -> None:
    # Version 2: no "version", no prompts; a conversation with no prompt and no model; one with no messages.
    chat = {"id": "c1", "name": "Edited", "messages": [{"role": "user", "content": "hi"},
                                                        {"role": "assistant", "content": "hello"}]}
    source = tmp_path / "chatbot_ui_history.json"
    source.write_text(json.dumps({"history": [chat, {"id": "c2", "name": "empty", "messages": []}], "folders": []}))
    assert detect_format(source) == "chatbotui"
    warnings: list[str] = []
    [chat_id] = load(store, source, warnings)
    assert warnings == [f"{source}: history[1]: no messages to import; left out"]
    assert texts(store.path(chat_id)) == ["hi", "hello"] and store.path(chat_id)[-1].model is None
    # Editing the first message in Chatbot UI drops the turns after it: a later export adds a branch.
    chat["messages"] = [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hey"}]
    source.write_text(json.dumps({"version": 4, "history": [chat], "folders": [], "prompts": []}))
    summary = store.import_conversations(read_conversations(source))
    assert (summary.conversations_created, summary.conversations_updated, summary.messages_added) == (0, 1, 2)
    assert texts(store.path(chat_id)) == ["hi there", "hey"] and len(store.conversation(chat_id).branches()) == 2


# -- Google AI Studio ------------------------------------------------------------------------------

def test_ai_studio_prompt(samples: Path, store: SQLiteStore) -> None:
    data = json.loads((samples / AISTUDIO).read_text())
    chunks = data["chunkedPrompt"]["chunks"]
    [chat_id] = load(store, samples / AISTUDIO)
    path = store.path(chat_id)
    assert texts(path) == [chunks[0]["text"], chunks[2]["text"]]  # the thought is not part of the answer
    assert path[-1].metadata["aistudio"]["thinking"] == chunks[1]["text"]
    assert path[-1].model == "gemini-3-pro-preview" and path[-1].metadata["aistudio"]["tokenCount"] == 403
    assert store.get_conversation(chat_id).title == "openwebui-importer_aistudio_example"
    now = datetime.now(timezone.utc)
    assert all(now - m.created_at < timedelta(minutes=5) for m in path)  # AI Studio keeps no times
    again_adds_nothing(store, samples / AISTUDIO)


def test_ai_studio_system_instruction_images_drive_files_and_a_last_thought(store: SQLiteStore, tmp_path: Path) -> None:
    prompt = {"runSettings": {"model": "models/gemini-2.5-flash"},
              "systemInstruction": {"parts": [{"text": "Be terse."}]},
              "chunkedPrompt": {"chunks": [
                  {"role": "user", "inlineImage": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                  {"role": "user", "driveDocument": {"id": "doc-1"}},
                  {"role": "user", "text": "What are these?"},
                  {"role": "model", "text": "A photo and a doc.", "finishReason": "STOP"},
                  {"role": "user", "text": "More?"},
                  {"role": "model", "text": "Thinking about it", "isThought": True},
              ]}}
    source = tmp_path / "Untitled prompt"
    source.write_text(json.dumps(prompt))
    assert detect_format(source) == "aistudio"
    [chat_id] = load(store, source)
    path = store.path(chat_id)
    assert [m.message for m in path][:4] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
        {"role": "user", "content": "[driveDocument: doc-1]"},
        {"role": "user", "content": "What are these?"}]
    assert path[2].metadata["aistudio"]["driveDocument"] == {"id": "doc-1"}
    last = path[-1]  # a thought with no answer after it: an empty, incomplete reply holding it
    assert last.message == {"role": "assistant", "content": ""} and last.status == "incomplete"
    assert last.metadata["aistudio"]["thinking"] == "Thinking about it"
    again_adds_nothing(store, source)


# -- a ChatGPT conversation saved alone --------------------------------------------------------------

def test_one_chatgpt_conversation_object(samples: Path, store: SQLiteStore) -> None:
    # The regression this pins: the file is one conversation, not a list, and pretty-printed, so detection once
    # took it for JSON Lines ("the first record is a str") and the importer wanted an array.
    data = json.loads((samples / IMAGES).read_text())
    [chat_id] = load(store, samples / IMAGES)
    chat = store.conversation(chat_id)
    assert chat.title == "Fixture" and chat.record.metadata["chatgpt"]["id"] == "fixture"
    now = datetime.now(timezone.utc)
    assert now - chat.record.created_at < timedelta(minutes=5)  # create_time 1 (1970) is no real time
    nodes = {m.metadata["chatgpt"]["node_id"]: m for m in store.find_messages(chat_id, kind="chat")}
    # The empty root, reasoning recaps and the hidden empty answers are left out: 17 of 25 nodes.
    assert sorted(nodes, key=lambda k: int(k[1:])) == [f"n{i}" for i in (1, 2, 3, 4, 7, 8, 9, 10, 13, 14, 15, 16,
                                                                          18, 19, 20, 21, 22)]
    # Both branch points (n5, n11) had an abandoned empty answer as their other child: one chain remains.
    assert len(chat.branches()) == 1
    # current_node n24 is a hidden empty answer: the head is its nearest kept ancestor.
    assert data["current_node"] == "n24" and chat.head is not None and chat.head.metadata["chatgpt"]["node_id"] == "n22"
    assert nodes["n1"].message["content"] == "[image: sediment://file_1]\nquestion 1"
    assert nodes["n14"].message["content"] == "[to internal_tool]\n```json\ncode 1\n```"
    again_adds_nothing(store, samples / IMAGES)
