"""Hostile and random input: importers raise only chatkeep's errors, and a big export stays in bounded memory."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatkeep import ChatkeepError, FormatError, open_store
from chatkeep.formats import IMPORT_FORMATS, detect_format, read_conversations

FORMATS: list[str | None] = [None, *IMPORT_FORMATS]


def import_each_way(path: Path) -> None:
    """Detect, then import as every format, strict and lenient: anything but a ChatkeepError fails the test."""
    try:
        detect_format(path)
    except FormatError:
        pass
    with open_store(":memory:") as store:
        for format in FORMATS:
            for warnings in (None, []):
                before = (store.count_conversations(), store.count_messages())
                try:
                    store.import_conversations(read_conversations(path, format, warnings=warnings))
                except ChatkeepError:
                    assert (store.count_conversations(), store.count_messages()) == before


keys = st.sampled_from([
    "mapping", "message", "parent", "children", "author", "role", "name", "content", "content_type", "parts",
    "text", "result", "recipient", "status", "metadata", "current_node", "create_time", "title", "id",
    "conversations", "messages", "from", "value", "system", "tools", "tool_calls", "tool_call_id", "function",
    "arguments", "type", "images", "weight", "asset_pointer", "finish_details", "language", "thoughts",
]) | st.text(max_size=8)
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=12) | st.sampled_from(["user", "assistant", "tool", "system", "human", "gpt", "text",
                                                      "code", "function_call", "observation", "a", "b", "in_progress"]))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=30)


def node(parent: Any, role: Any, content: Any) -> dict[str, Any]:
    return {"parent": parent, "children": [], "message": {"author": {"role": role}, "content": content}}


node_ids = st.sampled_from(["a", "b", "c", "d"])
chatgpt_like = st.builds(
    lambda nodes, current, extra: {"id": "c", "mapping": nodes, "current_node": current, **extra},
    st.dictionaries(node_ids, st.builds(node, st.none() | node_ids | json_values,
                                        st.sampled_from(["user", "assistant", "tool", "system", "x"]) | json_values,
                                        st.fixed_dictionaries({"content_type": scalars, "parts": json_values})
                                        | json_values), max_size=4),
    node_ids | json_values,
    st.dictionaries(keys, json_values, max_size=2),
)
sharegpt_like = st.builds(
    lambda turns, extra: {"conversations": turns, **extra},
    st.lists(st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", "function_call", "observation", "?"])
                                     | json_values, "value": st.text(max_size=20) | json_values}), max_size=5),
    st.dictionaries(st.sampled_from(["system", "tools", "id", "images"]), json_values, max_size=2),
)
message_like = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool", "system", "function"]) | json_values,
     "content": st.text(max_size=12) | json_values},
    optional={"tool_calls": json_values, "tool_call_id": st.text(max_size=4) | json_values, "weight": json_values},
)
finetune_like = st.builds(lambda messages, extra: {"messages": messages, **extra}, st.lists(message_like, max_size=4),
                          st.dictionaries(st.sampled_from(["tools", "parallel_tool_calls", "images"]), json_values,
                                          max_size=2))
records = json_values | chatgpt_like | sharegpt_like | message_like | finetune_like


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600))
def test_random_bytes_raise_only_chatkeep_errors(folder: Path, data: bytes) -> None:
    path = folder / "bytes"
    path.write_bytes(data)
    import_each_way(path)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(records, max_size=4), as_lines=st.booleans())
def test_random_json_raises_only_chatkeep_errors(folder: Path, items: list[Any], as_lines: bool) -> None:
    path = folder / "records"
    text = "\n".join(json.dumps(item) for item in items) if as_lines else json.dumps(items)
    path.write_text(text)
    import_each_way(path)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["chatgpt/librechat_chatgpt-tree.json",
                             "finetune/openai-cookbook_toy_chat_fine_tuning.jsonl",
                             "other/sharegpt/llamafactory_mllm_demo.json",
                             "plain/DERIVED_llm_cassette_tool_calls_messages.json"]),
       cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4))
def test_damaged_samples_raise_only_chatkeep_errors(samples: Path, folder: Path, name: str, cut: float,
                                                    flips: list[tuple[float, int]]) -> None:
    data = bytearray((samples / name).read_bytes())
    for where, byte in flips:
        data[int(where * (len(data) - 1))] = byte
    path = folder / "damaged"
    path.write_bytes(bytes(data[: max(1, int(cut * len(data)))]))
    import_each_way(path)


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(st.tuples(st.sampled_from(["conversations.json", "export/conversations.json", "../x", "a.png",
                                                   "/abs", "C:/x", "dir/"]),
                                  st.binary(max_size=200)
                                  | st.lists(records, max_size=3).map(json.dumps).map(str.encode),
                                  st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])),
                        max_size=3, unique_by=lambda entry: entry[0]),
       cut=st.none() | st.floats(0, 1), flip=st.none() | st.tuples(st.floats(0, 1), st.integers(0, 255)))
def test_random_zips_raise_only_chatkeep_errors(folder: Path, entries: list[tuple[str, bytes, int]],
                                                cut: float | None, flip: tuple[float, int] | None) -> None:
    path = folder / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content, compression in entries:
            archive.writestr(zipfile.ZipInfo(name), content, compress_type=compression)
    data = bytearray(path.read_bytes())
    if flip is not None and data:
        data[int(flip[0] * (len(data) - 1))] = flip[1]
    path.write_bytes(bytes(data[: int(cut * len(data))] if cut is not None else data))
    import_each_way(path)


def test_deep_nesting_is_refused_quickly(folder: Path) -> None:
    # The C parser's cost grows with the square of the depth: 20 KB of "[" once took a gigabyte.
    for format in ("chatgpt", "sharegpt", "jsonl", "messages"):
        path = folder / f"deep.{format}"
        path.write_text("[" * 200_000 if format != "jsonl" else '{"messages": ' + "[" * 200_000)
        started = time.monotonic()
        with pytest.raises(FormatError, match="nested deeper than 100 levels|invalid JSON"):
            list(read_conversations(path, format, warnings=None))
        assert time.monotonic() - started < 2


def write_export(path: Path, size: int) -> None:
    """A synthetic ChatGPT export of about ``size`` bytes, written a conversation at a time."""
    rng = random.Random(7)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    with path.open("w") as out:
        out.write("[")
        written, number = 0, 0
        while written < size:
            mapping: dict[str, Any] = {"root": {"id": "root", "message": None, "parent": None, "children": []}}
            parent = "root"
            for turn in range(8):
                key = f"c{number}-n{turn}"
                mapping[parent]["children"].append(key)
                text = " ".join(rng.choice(words) for _ in range(200))
                citations = [{"url": f"https://example.com/{i}", "text": text[:400]} for i in range(10)]
                mapping[key] = {"id": key, "parent": parent, "children": [], "message": {
                    "id": key, "author": {"role": "user" if turn % 2 == 0 else "assistant"},
                    "create_time": 1700000000.0 + turn, "content": {"content_type": "text", "parts": [text]},
                    "status": "finished_successfully", "metadata": {"model_slug": "gpt-4o", "citations": citations}}}
                parent = key
            conversation = {"id": f"conv-{number}", "title": f"Synthetic {number}", "create_time": 1700000000.0,
                            "update_time": 1700000100.0, "mapping": mapping, "current_node": parent}
            chunk = ("," if number else "") + json.dumps(conversation)
            out.write(chunk)
            written += len(chunk)
            number += 1
        out.write("]")


_MEASURE = """
import json, resource, sys, tracemalloc
from chatkeep import open_store
from chatkeep.formats import read_conversations
store = open_store(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
summary = store.import_conversations(read_conversations(sys.argv[1]))
traced = tracemalloc.get_traced_memory()[1]
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"conversations": summary.conversations_created, "messages": summary.messages_added,
                  "traced": traced, "rss_growth": grown * 1024}))
"""


@pytest.mark.slow
def test_a_large_export_imports_in_memory_that_does_not_grow_with_the_file(tmp_path: Path) -> None:
    export = tmp_path / "conversations.json"
    write_export(export, 50 * 2**20)
    size = export.stat().st_size
    # A fresh process, so the peak resident size counts the C parser and SQLite too.
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(export), str(tmp_path / "x.db")],
                         capture_output=True, text=True, check=True)
    measured = json.loads(run.stdout)
    assert measured["conversations"] > 500 and measured["messages"] == 8 * measured["conversations"]
    assert measured["traced"] < 16 * 2**20, measured  # Python objects: one conversation at a time
    assert measured["rss_growth"] < size / 3, measured
