"""Importing the shared sample files: ChatGPT exports, fine-tuning JSONL, ShareGPT, the tutorial's file."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatkeep import FormatError, open_store, validate_message
from chatkeep.formats import IMPORT_FORMATS, detect_format, read_conversations
from chatkeep.store import SQLiteStore, StoredMessage
from chatkeep.store.bulk import ImportSummary

SUPPORTED = {
    "chatgpt/librechat_chatgpt-tree.json": "chatgpt",
    "chatgpt/librechat_chatgpt-export.json": "chatgpt",
    "chatgpt/librechat_chatgpt-citations.json": "chatgpt",
    "chatgpt/chatgpt2graph_conversations.json": "chatgpt",
    "chatgpt/DERIVED_pkuppens_subset_4convs.json": "chatgpt",
    "finetune/openai-cookbook_toy_chat_fine_tuning.jsonl": "jsonl",
    "finetune/openai-cookbook_drone_training.jsonl": "jsonl",
    "plain/chatgpt-cli_history.json": "messages",
    "plain/DERIVED_llm_cassette_tool_calls_messages.json": "messages",
    "other/sharegpt/fastchat_dummy_conversation.json": "sharegpt",
    "other/sharegpt/llamafactory_glaive_toolcall_en_demo.json": "sharegpt",
    "other/sharegpt/llamafactory_mllm_demo.json": "sharegpt",
    # Issue 18: the formats of tests/test_import_*.py, and a ChatGPT conversation saved alone.
    "chatgpt/chatgpt-exporter_image-generation.json": "chatgpt",
    "claude/openwebui-importer_claude_example.json": "claude",
    "openwebui/librechat_openwebui-export.json": "openwebui",
    "openwebui/openwebui-importer_webui-json.json": "openwebui",
    "librechat/librechat_librechat-tree.json": "librechat",
    "librechat/librechat_librechat-opts-nonr-branches.json": "librechat",
    "librechat/librechat_librechat-linear.json": "librechat",
    "other/chatbot-ui/librechat_chatbotui-export.json": "chatbotui",
    "other/llm/DERIVED_llm_logs_json_docs_example.json": "llm",
    "other/deepseek/deepseek-exporter_test_chat_raw_2025-11-22.json": "deepseek",
    "other/grok/openwebui-importer_grok_example.json": "grok",
    "other/aistudio/openwebui-importer_aistudio_example.json": "aistudio",
}
UNSUPPORTED = [
    "other/responses_api/DERIVED_llm_test_responses_tool_use.decoded.json",
    "other/responses_api/llm_test_responses_tool_use.yaml",
    "other/chat_completions_traffic/DERIVED_llm_test_tool_use_chain_of_two_calls.decoded.json",
]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    postgres = request.param == "postgres"
    opened = open_store(request.getfixturevalue("postgres_url") if postgres else tmp_path / "x.db")
    yield opened
    opened.close()


def load(store: SQLiteStore, path: Path, warnings: list[str] | None = None) -> ImportSummary:
    return store.import_conversations(read_conversations(path, warnings=warnings))


def by_node(store: SQLiteStore, conversation_id: str) -> dict[str, StoredMessage]:
    return {m.metadata["chatgpt"]["node_id"]: m for m in store.find_messages(conversation_id, kind="chat")}


def texts(path: list[StoredMessage]) -> list[str]:
    return [m.message["content"] for m in path]


def counts(store: SQLiteStore) -> tuple[int, int]:
    return store.count_conversations(), store.count_messages()


# -- detection ------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", SUPPORTED.items())
def test_each_supported_sample_is_recognized_by_its_content(samples: Path, name: str, expected: str) -> None:
    assert detect_format(samples / name) == expected


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_a_sample_of_another_format_is_refused_naming_the_file(samples: Path, name: str) -> None:
    with pytest.raises(FormatError, match="not a format chatkeep imports") as caught:
        detect_format(samples / name)
    assert caught.value.file == str(samples / name)


def test_detection_does_not_go_by_the_file_name(samples: Path, tmp_path: Path) -> None:
    disguised = tmp_path / "notes.txt"
    shutil.copy(samples / "finetune/openai-cookbook_toy_chat_fine_tuning.jsonl", disguised)
    assert detect_format(disguised) == "jsonl"
    assert set(IMPORT_FORMATS) == {"messages", "jsonl", "chatgpt", "sharegpt", "claude", "openwebui", "librechat",
                                   "chatbotui", "llm", "deepseek", "grok", "aistudio", "llm-db", "agents-db",
                                   "langchain-db"}


# -- every sample, and importing twice -------------------------------------------

@pytest.mark.parametrize("name", SUPPORTED)
def test_importing_the_same_sample_again_adds_nothing(samples: Path, store: SQLiteStore, name: str) -> None:
    first = load(store, samples / name, warnings=[])
    assert first.conversations_created > 0 and first.messages_added > 0
    before = counts(store)
    again = load(store, samples / name, warnings=[])
    assert (again.conversations_created, again.conversations_updated, again.messages_added) == (0, 0, 0)
    assert again.messages_skipped == first.messages_added + first.messages_skipped
    assert counts(store) == before
    for record in store.list_conversations(limit=None):  # what was stored is sendable as it is
        for stored in store.find_messages(record.id, kind="chat"):
            validate_message(stored.message)


# -- ChatGPT exports ----------------------------------------------------------------

def test_chatgpt_branches_head_title_model_and_the_interrupted_reply(samples: Path, store: SQLiteStore) -> None:
    summary = load(store, samples / "chatgpt/librechat_chatgpt-tree.json")
    # 13 nodes: the empty root and the hidden system prompt are left out.
    assert (summary.conversations_created, summary.messages_added) == (1, 11)
    conversation = store.conversation(summary.conversation_ids[0])
    assert conversation.title == "Assist user with summary"
    assert conversation.record.created_at.isoformat() == "2024-05-01T17:37:11.148505+00:00"
    assert conversation.record.metadata["chatgpt"]["id"] == "d5dc5307-6807-41a0-8b04-4acee626eeb7"
    # current_node is the second answer to "tell me a joke", after the edited "hi again".
    assert texts(conversation.history()) == [
        "hi there", "Hello! How can I assist you today?", "hi again", "Hey! Welcome back. What's on your mind?",
        "tell me a joke",
        "Sure, here's one for you:\n\nWhy don't scientists trust atoms?\n\nBecause they make up everything!",
    ]
    head = conversation.head
    assert head is not None and head.metadata["chatgpt"]["node_id"] == "f63b8e17-aa5c-4ca6-a1bf-d4d285e269b8"
    assert head.model == "text-davinci-002-render-sha" and head.finish_reason == "stop"
    nodes = by_node(store, conversation.id)
    edited = store.children(nodes["bda8a275-886d-4f59-b38c-d7037144f0d5"].id)
    assert [m.message["content"] for m in edited] == ["so cool bro", "hi again"]
    regenerated = store.children(nodes["aaa20127-b9e3-44f6-afbe-a2475838625a"].id)
    assert [m.metadata["chatgpt"]["node_id"][:8] for m in regenerated] == ["d0d2a7df", "f63b8e17"]
    story = nodes["ada93f81-f59e-4b31-933d-1357efd68bfc"]
    assert story.status == "incomplete" and story.metadata["chatgpt"]["status"] == "in_progress"
    assert story.message["content"].startswith("Sure! Here's a short story for you:")
    assert texts(store.path(conversation.id, head_id=story.id))[:4] == [
        "hi there", "Hello! How can I assist you today?", "so cool bro", "Thanks! What brings you here today?"]
    assert nodes["aaa297ba-e2da-440e-84f4-e62e7be8b003"].parent_id is None  # the tree stays connected


def test_chatgpt_browsing_becomes_labelled_assistant_messages(samples: Path, store: SQLiteStore) -> None:
    summary = load(store, samples / "chatgpt/librechat_chatgpt-export.json")
    assert summary.conversations_created == 2
    web = store.conversation(summary.conversation_ids[0])
    assert web.title == "Conversation 1. Web Search"
    path = web.history()
    assert [m.role for m in path].count("tool") == 0  # no tool message without its call
    assert path[1].message["content"] == (
        '[to browser]\n```\nsearch("Volkswagen Transporter fuel consumption with 8 people l/km")\n```')
    assert path[1].model == "gpt-4" and path[1].metadata["chatgpt"]["recipient"] == "browser"
    assert path[2].message["content"].startswith("[browser result]\n# 【0†Volkswagen Transporter MPG")
    assert path[2].metadata["chatgpt"] == {
        "node_id": "374bbcc8-2013-4387-8cd8-3e64abbd60ca", "author_role": "tool", "author_name": "browser",
        "recipient": "all", "content_type": "tether_browsing_display", "status": "finished_successfully"}
    quote = path[4].message["content"]
    assert quote.startswith("[browser quote]\n2021 Volkswagen Transporter T6.1 L2H1 2.0 TDI 110HP specs, dimensions\n"
                            "https://www.ultimatespecs.com/car-specs/Volkswagen/118424/")
    assert path[-1].message["content"].startswith("The fuel consumption figures for the 2014 Volkswagen Transporter")


def test_chatgpt_code_interpreter_keeps_code_and_output(samples: Path, store: SQLiteStore) -> None:
    summary = load(store, samples / "chatgpt/chatgpt2graph_conversations.json")
    path = store.path(summary.conversation_ids[0])
    assert path[0].message == {
        "role": "user",
        "content": "given two random independent variables x,y in U(0,1),"
                   " what is the average distance between them?\n\n\n"}
    assert path[2].message["content"].startswith("[to python]\n```python\nfrom sympy import symbols, integrate, Abs")
    assert path[3].message["content"] == "[python output]\n```\n0\n```"
    assert path[3].model is None and path[2].model == "gpt-4-code-interpreter"
    assert sum(m.metadata["chatgpt"]["content_type"] == "execution_output" for m in path) == 11
    assert not [m for m in path if m.role == "system"]  # empty custom instructions are left out


def test_chatgpt_plugins_errors_and_a_regeneration_off_the_current_branch(samples: Path, store: SQLiteStore) -> None:
    summary = load(store, samples / "chatgpt/DERIVED_pkuppens_subset_4convs.json")
    titles = [store.get_conversation(i).title for i in summary.conversation_ids]
    assert titles == ["GitHub Wikis & Source Code", "Improve Website Recommendations.", "What is Terraform?",
                      "Logo design for Pieterkuppens.net."]
    plugin = texts(store.path(summary.conversation_ids[0]))
    assert plugin[3].startswith('[to show_me.get_MermaidRoute]\n{\n  "mermaid"')
    assert plugin[4].startswith('[show_me.get_MermaidRoute result]\n{"results":[{"errorMessage"')
    browsing = texts(store.path(summary.conversation_ids[1]))
    assert browsing[2] == ("[browser error]\ntool_error: Error when executing command `open_url(www.pieterkuppens.net)`"
                           "\nFailed to fetch page.\nUnknown error fetching url www.pieterkuppens.net")
    # The system node (mapping key 99b29482, message id 42fda3a8) is left out; the question becomes the root.
    terraform = store.path(summary.conversation_ids[2])
    assert texts(terraform)[0] == "wat is terraform?" and terraform[0].parent_id is None
    logo = summary.conversation_ids[3]
    nodes = by_node(store, logo)
    older, newer = store.children(nodes["c42c6b04-0a3c-4563-897d-b7317866288d"].id)
    on_branch = {m.id for m in store.path(logo)}
    assert older.id in on_branch and newer.id not in on_branch  # current_node follows the older answer
    assert newer.message["content"].startswith("If you'd like a third color")


def test_a_trimmed_chatgpt_conversation_imports_with_warnings(samples: Path, store: SQLiteStore) -> None:
    warnings: list[str] = []
    summary = load(store, samples / "chatgpt/librechat_chatgpt-citations.json", warnings)
    assert (summary.conversations_created, summary.messages_added) == (1, 2)
    path = store.path(summary.conversation_ids[0])
    assert [m.metadata["chatgpt"]["node_id"][:8] for m in path] == ["9e874379", "4b3aec6b"]
    assert path[1].message["content"].startswith("Signal Sciences is a web application security company")
    assert len(warnings) == 2
    assert "conversation d6523d1e-7ec3-474f-a363-0e9dffdb3d93" in warnings[0]
    assert "parent 5cc5e87b-2b74-485a-b3a7-23cb25f202db is missing" in warnings[0]
    assert "current_node '88a0cf9f-e860-4b34-8e7e-65f8346f4862' is not in the mapping" in warnings[1]


def test_a_later_export_adds_only_the_new_turn_and_moves_the_head(samples: Path, store: SQLiteStore,
                                                                 tmp_path: Path) -> None:
    original = samples / "chatgpt/librechat_chatgpt-tree.json"
    first = load(store, original)
    export = json.loads(original.read_text())
    mapping = export[0]["mapping"]
    mapping["f63b8e17-aa5c-4ca6-a1bf-d4d285e269b8"]["children"] = ["new-node"]
    mapping["new-node"] = {"id": "new-node", "parent": "f63b8e17-aa5c-4ca6-a1bf-d4d285e269b8", "children": [],
                           "message": {"id": "new-node", "author": {"role": "user"}, "create_time": 1714590000.0,
                                       "content": {"content_type": "text", "parts": ["ha, good one"]}}}
    export[0]["current_node"] = "new-node"
    later = tmp_path / "conversations.json"
    later.write_text(json.dumps(export))
    second = load(store, later)
    assert (second.conversations_created, second.conversations_updated, second.messages_added) == (0, 1, 1)
    assert store.conversation(first.conversation_ids[0]).messages[-1] == {"role": "user", "content": "ha, good one"}


def test_a_chatgpt_export_zip_imports_like_its_conversations_json(samples: Path, store: SQLiteStore,
                                                                 tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(samples / "chatgpt/librechat_chatgpt-export.json", "conversations.json")
        zf.writestr("chat.html", "<html></html>")
        zf.writestr("file-abc.png", b"\x89PNG")
    assert detect_format(archive) == "chatgpt"
    summary = load(store, archive)
    assert (summary.conversations_created, summary.messages_added) == (2, 19)
    again = load(store, samples / "chatgpt/librechat_chatgpt-export.json")
    assert again.messages_added == 0


# ChatGPT's larger exports (since early 2026) hold conversations-000.json, conversations-001.json, ...
# and no conversations.json; the rest of the zip is as before.
PARTS = ["chatgpt/librechat_chatgpt-export.json", "chatgpt/chatgpt2graph_conversations.json",
         "chatgpt/DERIVED_pkuppens_subset_4convs.json"]


def split_export(samples: Path, archive: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, part in zip(names, PARTS, strict=True):
            zf.write(samples / part, name)
        zf.writestr("export_manifest.json", "{}")
        zf.writestr("chat.html", "<html></html>")
        zf.writestr("user.json", "{}")
    return archive


def test_a_chatgpt_export_split_into_numbered_parts_imports_every_part(samples: Path, store: SQLiteStore,
                                                                       tmp_path: Path) -> None:
    # The parts are read by their number, not their order in the zip: 2 before 10.
    archive = split_export(samples, tmp_path / "export.zip",
                           ["conversations-000.json", "conversations-010.json", "conversations-002.json"])
    assert detect_format(archive) == "chatgpt"
    summary = load(store, archive)
    with open_store(tmp_path / "apart.db") as apart:
        wholes = [load(apart, samples / PARTS[at]) for at in (0, 2, 1)]
        expected = counts(apart)
        titles = [apart.get_conversation(cid).title for whole in wholes for cid in whole.conversation_ids]
    assert (summary.conversations_created, summary.messages_added) == expected
    assert [store.get_conversation(cid).title for cid in summary.conversation_ids] == titles
    again = load(store, archive)
    assert (again.conversations_created, again.messages_added) == (0, 0)


def test_a_broken_part_of_a_split_export_is_named(samples: Path, store: SQLiteStore, tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(samples / PARTS[0], "conversations-000.json")
        zf.writestr("conversations-001.json", json.dumps([{"id": "c1", "mapping": 5}]))
    with pytest.raises(FormatError, match=r"export\.zip!conversations-001\.json: conversations\[0\]\.mapping"):
        list(read_conversations(archive))
    warnings: list[str] = []
    summary = load(store, archive, warnings)
    assert summary.conversations_created == 2
    assert len(warnings) == 1 and "export.zip!conversations-001.json: conversations[0].mapping" in warnings[0]


def test_a_zip_with_conversations_json_reads_it_and_not_stray_parts(samples: Path, store: SQLiteStore,
                                                                      tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(samples / PARTS[0], "conversations.json")
        zf.write(samples / PARTS[1], "old/conversations-000.json")
    assert (load(store, archive).conversations_created, counts(store)[1]) == (2, 19)


def test_multimodal_thoughts_and_custom_instructions(store: SQLiteStore, tmp_path: Path) -> None:
    def node(key: str, parent: str | None, role: str, content: dict[str, object], **extra: object) -> dict[str, object]:
        return {"id": key, "parent": parent, "children": [],
                "message": {"id": key, "author": {"role": role}, "content": content, **extra}}
    mapping = {
        "root": {"id": "root", "parent": None, "children": ["ctx"], "message": None},
        "ctx": node("ctx", "root", "user", {"content_type": "user_editable_context",
                                            "user_profile": "I am a chemist.", "user_instructions": "Be brief."}),
        "ask": node("ask", "ctx", "user", {"content_type": "multimodal_text", "parts": [
            {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-XYZ", "width": 10},
            "What is this?"]}),
        "think": node("think", "ask", "assistant", {"content_type": "thoughts",
                                                    "thoughts": [{"summary": "Looking", "content": "A flask."}]}),
        "recap": node("recap", "think", "assistant", {"content_type": "reasoning_recap", "content": "Thought for 2s"}),
        "answer": node("answer", "recap", "assistant", {"content_type": "text", "parts": ["A flask."]},
                       status="finished_successfully", metadata={"model_slug": "o3"}),
    }
    export = tmp_path / "conversations.json"
    export.write_text(json.dumps([{"id": "c1", "title": "Flask", "mapping": mapping, "current_node": "answer"}]))
    summary = load(store, export)
    assert store.conversation(summary.conversation_ids[0]).messages == [
        {"role": "system", "content": "I am a chemist.\n\nBe brief."},
        {"role": "user", "content": "[image: file-service://file-XYZ]\nWhat is this?"},
        {"role": "assistant", "content": "[thoughts]\nLooking\nA flask."},
        {"role": "assistant", "content": "A flask."},
    ]


def test_broken_chatgpt_trees_import_as_far_as_they_are_sound(store: SQLiteStore, tmp_path: Path) -> None:
    message = {"author": {"role": "user"}, "content": {"content_type": "text", "parts": ["hello"]}}
    mapping = {
        "a": {"parent": None, "children": ["b"], "message": message},
        "b": {"parent": "a", "children": [], "message": {**message, "author": {"role": "assistant"}}},
        "x": {"parent": "y", "children": ["y"], "message": message},  # x and y are each other's parent
        "y": {"parent": "x", "children": ["x"], "message": message},
    }
    export = tmp_path / "conversations.json"
    export.write_text(json.dumps([{"id": "loop", "mapping": mapping, "current_node": "b"}]))
    with pytest.raises(FormatError, match=r"conversation loop\): 2 node\(s\) left out, not objects or on a cycle"):
        load(store, export)
    assert counts(store) == (0, 0)
    warnings: list[str] = []
    summary = load(store, export, warnings)
    assert summary.messages_added == 2 and len(warnings) == 1 and str(export) in warnings[0]


# -- fine-tuning JSONL -----------------------------------------------------------

def test_fine_tuning_jsonl_keeps_tools_and_placeholder_call_ids(samples: Path, store: SQLiteStore) -> None:
    source = samples / "finetune/openai-cookbook_drone_training.jsonl"
    first = json.loads(source.read_text().splitlines()[0])
    summary = load(store, source)
    assert (summary.conversations_created, summary.messages_added) == (103, 309)
    record = store.get_conversation(summary.conversation_ids[0])
    assert record.metadata["tools"] == first["tools"] and record.metadata["parallel_tool_calls"] is False
    reply = store.conversation(record.id).messages[-1]
    assert reply == first["messages"][-1] and "content" not in reply
    assert reply["tool_calls"][0]["id"] == "call_id"


def test_the_toy_file_imports_every_record(samples: Path, store: SQLiteStore) -> None:
    # The cookbook calls two of these invalid for fine-tuning (no user message; a
    # reply too long); as conversations they are valid, and kept.
    summary = load(store, samples / "finetune/openai-cookbook_toy_chat_fine_tuning.jsonl")
    assert (summary.conversations_created, summary.messages_added) == (5, 19)
    lengths = [len(store.path(i)) for i in summary.conversation_ids]
    assert lengths == [3, 9, 2, 2, 3]
    banana = store.path(summary.conversation_ids[4])[-1].message["content"]
    assert banana.startswith("Eat a banana!Eat a banana!") and len(banana) > 20000


def test_invalid_jsonl_records_are_reported_with_their_line_numbers_and_skipped(store: SQLiteStore,
                                                                                tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello", "weight": 0}]}
    lines = [json.dumps(good), '{"messages": [', json.dumps({"prompt": "old style"}), "",
             json.dumps({"messages": [{"role": "robot", "content": "beep"}]}),
             json.dumps({"messages": [{"role": "user", "content": "second"}]}), "[1, 2]"]
    source = tmp_path / "train.jsonl"
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=r"train\.jsonl:2:\d+: invalid JSON"):
        load(store, source)
    assert counts(store) == (0, 0)
    warnings: list[str] = []
    summary = load(store, source, warnings)
    assert (summary.conversations_created, summary.messages_added) == (2, 3)
    assert warnings == [
        f"{source}:2:15: invalid JSON: Expecting value",
        f"{source}:3: missing messages",
        f"{source}:5: messages[0].role: unknown role 'robot' (expected one of assistant, developer, function,"
        " system, tool, user)",
        f"{source}:7: expected an object with messages, got list",
    ]
    # weight is no key of chatkeep's and survives storage.
    assert store.conversation(summary.conversation_ids[0]).messages[1] == good["messages"][1]


# -- ShareGPT ------------------------------------------------------------------------

def test_sharegpt_human_and_gpt_turns(samples: Path, store: SQLiteStore) -> None:
    summary = load(store, samples / "other/sharegpt/fastchat_dummy_conversation.json")
    assert (summary.conversations_created, summary.messages_added) == (500, 2000)
    first = store.conversation(summary.conversation_ids[0])
    assert first.messages == [
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant",
         "content": "I am Vicuna, a language model trained by researchers"
                    " from Large Model Systems Organization (LMSYS)."},
        {"role": "user", "content": "Have a nice day!"}, {"role": "assistant", "content": "You too!"}]
    assert first.record.metadata["sharegpt_id"] == "identity_0"


def test_sharegpt_function_calls_become_paired_tool_calls(samples: Path, store: SQLiteStore) -> None:
    source = samples / "other/sharegpt/llamafactory_glaive_toolcall_en_demo.json"
    records = json.loads(source.read_text())
    summary = load(store, source)
    # Identical records are one conversation: the demo repeats 35 of its 300.
    distinct = {json.dumps(r, sort_keys=True) for r in records}
    assert summary.conversations_created == len(distinct) == 265
    conversation = store.conversation(summary.conversation_ids[0])
    messages = conversation.messages
    assert [m["role"] for m in messages][:6] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    assert messages[3] == {"role": "assistant", "tool_calls": [{
        "id": "call_3_0", "type": "function",
        "function": {"name": "search_recipes", "arguments": '{"ingredients": ["chicken", "bell peppers", "rice"]}'}}]}
    assert messages[4]["tool_call_id"] == "call_3_0" and messages[4]["content"].startswith('{"recipes": [')
    tools = conversation.record.metadata["tools"]
    assert tools[0]["type"] == "function" and tools[0]["function"]["name"] == "search_recipes"


def test_sharegpt_with_openai_keys_and_images(samples: Path, store: SQLiteStore) -> None:
    summary = load(store, samples / "other/sharegpt/llamafactory_mllm_demo.json")
    assert summary.conversations_created == 6
    conversation = store.conversation(summary.conversation_ids[0])
    assert conversation.messages[0] == {"content": "<image>Who are they?", "role": "user"}
    assert conversation.record.metadata["images"] == ["mllm_demo_data/1.jpg", "mllm_demo_data/1.jpg"]


def test_sharegpt_as_json_lines(store: SQLiteStore, tmp_path: Path) -> None:
    source = tmp_path / "data.jsonl"
    source.write_text(json.dumps({"id": "a", "conversations": [{"from": "human", "value": "hi"}]}) + "\n"
                      + json.dumps({"conversations": [{"from": "gpt", "value": 3}]}) + "\n")
    assert detect_format(source) == "sharegpt"
    warnings: list[str] = []
    assert load(store, source, warnings).messages_added == 1
    assert warnings == [f"{source}:2: conversations[0].value: expected a string"]


def test_a_sharegpt_record_with_an_unknown_speaker_is_named(store: SQLiteStore, tmp_path: Path) -> None:
    source = tmp_path / "data.json"
    source.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        {"system": "Be kind.", "conversations": [{"from": "human", "value": "hi"}, {"from": "wizard", "value": "?"}]},
        {"conversations": [{"from": "observation", "value": "42"}]},
    ]))
    with pytest.raises(FormatError, match=r"records\[1\]\.conversations\[1\]\.from: unknown speaker 'wizard'"):
        load(store, source)
    warnings: list[str] = []
    assert load(store, source, warnings).conversations_created == 1
    assert warnings[1] == f"{source}: records[2].conversations[0]: an observation with no function_call before it"


# -- the tutorial's file ---------------------------------------------------------------

def test_the_tutorials_file_is_one_conversation(samples: Path, store: SQLiteStore) -> None:
    source = samples / "plain/DERIVED_llm_cassette_tool_calls_messages.json"
    summary = load(store, source)
    conversation = store.conversation(summary.conversation_ids[0])
    assert conversation.messages == json.loads(source.read_text())  # refusal: null, annotations: [] kept
    assert conversation.title == "DERIVED_llm_cassette_tool_calls_messages"


def test_a_grown_tutorial_file_adds_its_new_turns_and_an_edited_one_a_branch(samples: Path, store: SQLiteStore,
                                                                             tmp_path: Path) -> None:
    messages = json.loads((samples / "plain/chatgpt-cli_history.json").read_text())
    source = tmp_path / "conversation_history.json"
    source.write_text(json.dumps(messages, indent=2))
    first = load(store, source)
    source.write_text(json.dumps([*messages, {"role": "user", "content": "Paris"}], indent=2))
    assert load(store, source).messages_added == 1
    source.write_text(json.dumps([*messages[:2], {"role": "assistant", "content": "Which city?"}], indent=2))
    branched = load(store, source)
    assert (branched.conversations_created, branched.messages_added) == (0, 1)
    conversation_id = first.conversation_ids[0]
    assert store.count_messages(conversation_id) == 5
    assert texts(store.path(conversation_id))[-1] == "Which city?"


def test_a_byte_order_mark_is_no_obstacle(samples: Path, store: SQLiteStore, tmp_path: Path) -> None:
    source = tmp_path / "history.json"
    source.write_bytes(b"\xef\xbb\xbf" + (samples / "plain/chatgpt-cli_history.json").read_bytes())
    assert detect_format(source) == "messages"
    assert load(store, source).messages_added == 3


def test_an_invalid_message_names_the_file_and_field(store: SQLiteStore, tmp_path: Path) -> None:
    source = tmp_path / "history.json"
    source.write_text(json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                  {"role": "user", "content": "x"}, {"role": "tool", "content": "42"}]))
    with pytest.raises(FormatError) as caught:
        load(store, source)
    assert str(caught.value) == f"{source}: messages[3].tool_call_id: expected a string, got null"
    assert counts(store) == (0, 0)


def test_a_stray_tool_calls_field_is_a_format_error(store: SQLiteStore, tmp_path: Path) -> None:
    # Found by the fuzz tests: tool_calls on a user message once reached the store and failed there.
    source = tmp_path / "history.json"
    source.write_text(json.dumps([{"role": "user", "content": "", "tool_calls": 1}]))
    with pytest.raises(FormatError, match=r"messages\[0\]\.tool_calls: only assistant messages carry tool_calls"):
        load(store, source)


# -- failed imports change nothing ---------------------------------------------------------

@pytest.fixture
def filled(samples: Path, store: SQLiteStore) -> tuple[SQLiteStore, tuple[int, int]]:
    load(store, samples / "chatgpt/librechat_chatgpt-tree.json")
    return store, counts(store)


def test_a_truncated_export_raises_naming_the_file_and_changes_nothing(
        samples: Path, filled: tuple[SQLiteStore, tuple[int, int]], tmp_path: Path) -> None:
    store, before = filled
    data = (samples / "chatgpt/DERIVED_pkuppens_subset_4convs.json").read_bytes()
    truncated = tmp_path / "conversations.json"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FormatError, match=r"invalid JSON in or after conversations\[2\]: parse error: premature EOF"
                       ) as caught:
        load(store, truncated, warnings=[])
    assert caught.value.file == str(truncated)
    assert counts(store) == before  # the two whole conversations read before the cut were undone


def test_a_corrupt_zip_raises_and_changes_nothing(samples: Path, filled: tuple[SQLiteStore, tuple[int, int]],
                                                  tmp_path: Path) -> None:
    store, before = filled
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(samples / "chatgpt/librechat_chatgpt-export.json", "conversations.json")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # damage the compressed stream
    archive.write_bytes(bytes(data))
    with pytest.raises(FormatError) as caught:
        load(store, archive)
    assert caught.value.file is not None and caught.value.file.startswith(str(archive))
    cut = tmp_path / "cut.zip"
    cut.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(FormatError, match="not a readable zip archive"):
        load(store, cut)
    assert counts(store) == before


@pytest.mark.parametrize("entry", ["../evil", "folder/../../evil", "/etc/evil"])
def test_a_zip_with_an_entry_outside_it_is_refused(samples: Path, filled: tuple[SQLiteStore, tuple[int, int]],
                                                   tmp_path: Path, entry: str) -> None:
    store, before = filled
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(samples / "chatgpt/librechat_chatgpt-export.json", "conversations.json")
        zf.writestr(zipfile.ZipInfo(entry), "gotcha")
    with pytest.raises(FormatError, match=r"unsafe entry name") as caught:
        load(store, archive)
    assert entry in str(caught.value) and caught.value.file == str(archive)
    assert counts(store) == before


def test_a_zip_bomb_is_refused(filled: tuple[SQLiteStore, tuple[int, int]], tmp_path: Path) -> None:
    store, before = filled
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conversations.json", b"[" + b" " * (8 * 2**20) + b"]")
    with pytest.raises(FormatError, match=r"compressed \d+ times \(over 200\): refusing a likely zip bomb"):
        load(store, archive)
    assert counts(store) == before


def test_a_zip_without_an_export_and_an_empty_file_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.png", b"\x89PNG")
    with pytest.raises(FormatError, match=r"without conversations.json \(or conversations-000.json and the rest\)"):
        detect_format(archive)
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        list(read_conversations(empty))
    with pytest.raises(FormatError, match="unknown import format 'csv'"):
        read_conversations(empty, "csv")
    with pytest.raises(FormatError, match="cannot open"):
        list(read_conversations(tmp_path / "missing.json", "chatgpt"))
