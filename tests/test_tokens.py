"""Token counts: offline, and equal to tiktoken's own for every text in the shared samples."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatkeep import TokenCounter
from chatkeep.context import encoding_for_model
from chatkeep.context.tokens import ENCODINGS, UnknownEncoding, _packed_file

TIKTOKEN_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}


@pytest.fixture(scope="module")
def tiktoken_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """tiktoken's own get_encoding, loaded offline from a cache seeded the way tiktoken keys it."""
    import os

    import tiktoken
    import tiktoken.registry

    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for name, url in TIKTOKEN_URLS.items():
        (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(gzip.decompress(_packed_file(name).read_bytes()))
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        yield {name: tiktoken.get_encoding(name) for name in TIKTOKEN_URLS}
    finally:
        tiktoken.registry.ENCODINGS.clear()  # the next user must not get ours from memory
        if previous is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR")
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = previous


def sample_documents(samples: Path) -> Iterator[tuple[Path, Any]]:
    for path in sorted(samples.rglob("*")):
        if path.suffix == ".json":
            yield path, json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    yield path, json.loads(line)
                except json.JSONDecodeError:
                    continue  # the invalid records are there for the importer's tests


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def cookbook_count(message: dict[str, Any], encoding: Any) -> int:
    """OpenAI cookbook's num_tokens_from_messages for one message with string values."""
    total = 3
    for key, value in message.items():
        total += len(encoding.encode(value, disallowed_special=()))
        total += 1 if key == "name" else 0
    return total


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_every_sample_text_and_message_counts_as_tiktoken_does(
    samples: Path, tiktoken_reference: dict[str, Any], name: str
) -> None:
    reference, counter = tiktoken_reference[name], TokenCounter(name)
    texts = messages = 0
    for _, document in sample_documents(samples):
        for node in walk(document):
            if isinstance(node, str):
                assert counter.text(node) == len(reference.encode(node, disallowed_special=())), node[:80]
                texts += 1
            elif isinstance(node, dict) and node.get("role") and all(isinstance(v, str) for v in node.values()):
                assert counter.message(node) == cookbook_count(node, reference)
                messages += 1
    assert texts > 1000 and messages > 50  # the samples were really read


def test_the_cookbook_examples_count_as_the_api_did() -> None:
    # OpenAI's cookbook lists these prompt_tokens as reported by the API for gpt-4o.
    counter = TokenCounter("o200k_base")
    tools = [{"type": "function", "function": {
        "name": "get_current_weather", "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]},
        }, "required": ["location"]},
    }}]
    messages = [
        {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
        {"role": "user", "content": "What's the weather like in San Francisco?"},
    ]
    assert counter.messages(messages) + counter.tools(tools, model="gpt-4o") == 101


def test_the_files_used_are_tiktokens_own() -> None:
    for name, spec in ENCODINGS.items():
        assert hashlib.sha256(gzip.decompress(_packed_file(name).read_bytes())).hexdigest() == spec["sha256"]


@pytest.mark.parametrize("model, encoding", [
    ("gpt-4o", "o200k_base"), ("gpt-4o-mini-2024-07-18", "o200k_base"), ("gpt-4.1-nano", "o200k_base"),
    ("gpt-5", "o200k_base"), ("o3-mini", "o200k_base"), ("o1", "o200k_base"), ("ft:gpt-4o-mini:acme::abc", "o200k_base"),
    ("gpt-4", "cl100k_base"), ("gpt-4-turbo", "cl100k_base"), ("gpt-3.5-turbo-0125", "cl100k_base"),
    ("openai/gpt-4o", "o200k_base"),
])
def test_the_encoding_follows_the_model(model: str, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


def test_an_unknown_model_names_the_setting() -> None:
    with pytest.raises(UnknownEncoding, match="pass encoding="):
        encoding_for_model("llama3.1:8b")
    assert encoding_for_model("llama3.1:8b", default="cl100k_base") == "cl100k_base"


def test_special_token_text_counts_as_text() -> None:
    assert TokenCounter().text("<|endoftext|>") > 1
