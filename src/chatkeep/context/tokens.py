"""Exact, offline token counts for OpenAI chat messages.

tiktoken downloads its encoding files on first use, which fails without a
network. The ``bpe-openai`` package ships the same ``o200k_base`` and
``cl100k_base`` files; chatkeep checks them against tiktoken's own sha256
hashes and builds tiktoken ``Encoding`` objects from them, so counts are
tiktoken's, byte for byte, with no download.

Message counts follow OpenAI's published chat format (the cookbook's
``num_tokens_from_messages``, checked there against the API): 3 tokens a
message, 1 more for a ``name``, 3 to prime the reply; tool definitions follow
the cookbook's ``num_tokens_for_tools``. Text is exact; images and other
non-text parts are estimated (see ``part_tokens``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ChatkeepError
from .images import image_tokens_of_url

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "TOKENS_PER_MESSAGE",
    "REPLY_PRIMING",
    "TokenCounter",
    "encoding_for_model",
    "get_encoding",
]

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>

# tiktoken_ext.openai_public: the split patterns, special tokens and file hashes.
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
ENCODINGS: dict[str, dict[str, Any]] = {
    "o200k_base": {
        "pat_str": _O200K_PATTERN,
        "special_tokens": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    },
    "cl100k_base": {
        "pat_str": _CL100K_PATTERN,
        "special_tokens": {
            "<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276,
        },
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    },
}

# Model name prefixes, longest first wins; the o-series and gpt-4o onwards use o200k_base.
_MODEL_ENCODINGS: list[tuple[str, str]] = [
    ("gpt-4o", "o200k_base"), ("gpt-4.1", "o200k_base"), ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"), ("chatgpt-4o", "o200k_base"), ("o1", "o200k_base"),
    ("o3", "o200k_base"), ("o4", "o200k_base"), ("codex-", "o200k_base"),
    ("gpt-4", "cl100k_base"), ("gpt-3.5", "cl100k_base"), ("gpt-35", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"), ("text-embedding-ada-002", "cl100k_base"),
]


class UnknownEncoding(ChatkeepError, KeyError):
    """No tokenizer is known for a model; pass ``encoding=`` to choose one."""

    def __str__(self) -> str:
        return str(self.args[0])


def encoding_for_model(model: str, *, default: str | None = None) -> str:
    """The encoding name for an OpenAI model (dated snapshots and ``ft:`` models included)."""
    name = model.split(":", 2)[1] if model.startswith("ft:") else model
    name = name.rsplit("/", 1)[-1]  # "openai/gpt-4o" as routers spell it
    for prefix, encoding in sorted(_MODEL_ENCODINGS, key=lambda p: -len(p[0])):
        if name.startswith(prefix):
            return encoding
    if default is not None:
        return default
    raise UnknownEncoding(
        f"no tokenizer is known for model {model!r}: pass encoding='o200k_base' or 'cl100k_base'"
    )


def _packed_file(name: str) -> Path:
    # find_spec locates the package without importing it: bpe_openai's __init__
    # loads a whole encoding of its own, which chatkeep does not need.
    package = find_spec("bpe_openai")
    folders = list(package.submodule_search_locations or []) if package is not None else []
    for folder in folders:
        candidate = Path(folder) / "data" / f"{name}.tiktoken.gz"
        if candidate.is_file():
            return candidate
    raise ChatkeepError(f"the {name} tokenizer file is missing: pip install bpe-openai")


def _ranks(name: str) -> dict[bytes, int]:
    spec = ENCODINGS[name]
    packed = _packed_file(name).read_bytes()
    data = gzip.decompress(packed)
    if hashlib.sha256(data).hexdigest() != spec["sha256"]:
        raise ChatkeepError(f"the {name} tokenizer file from bpe-openai does not match tiktoken's hash")
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}


@lru_cache(maxsize=None)
def get_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken ``Encoding`` built offline (loaded once per process)."""
    import tiktoken

    if name not in ENCODINGS:
        raise UnknownEncoding(f"unknown encoding {name!r}: expected one of {', '.join(ENCODINGS)}")
    spec = ENCODINGS[name]
    return tiktoken.Encoding(
        name, pat_str=spec["pat_str"], mergeable_ranks=_ranks(name), special_tokens=spec["special_tokens"]
    )


def part_tokens(part: Mapping[str, Any], count_text: Any, model: str = "gpt-4o") -> int:
    """Tokens of one content part: text exactly, images by OpenAI's rules, others estimated.

    An image's size is read from its header when it is a data URL (see
    :mod:`.images`); a remote image counts as a 1024x1024 one (765 at high detail).
    """
    kind = part.get("type")
    if kind in ("text", "refusal"):
        return int(count_text(str(part.get(kind) or "")))
    if kind == "image_url":
        image = part.get("image_url") or {}
        return image_tokens_of_url(str(image.get("url") or ""), str(image.get("detail") or "auto"), model)
    if kind == "input_audio":
        return int(len(str((part.get("input_audio") or {}).get("data", ""))) * 3 // 4 // 3200)  # ~10 tokens/s
    return int(count_text(json.dumps(part, ensure_ascii=False)))


def _hf_tokenizer(path: Path) -> tuple[str, Callable[[str], int]]:
    """A Hugging Face ``tokenizer.json``'s name (by content) and text counter (the ``tokenizers`` library)."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise UnknownEncoding(
            f"{path} is a Hugging Face tokenizer file, which needs the tokenizers library: "
            "pip install 'chatkeep[tokenizers]'"
        ) from exc
    try:
        data = path.read_bytes()
        tokenizer = Tokenizer.from_str(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, Exception) as exc:  # the library raises plain Exceptions
        raise UnknownEncoding(f"{path}: cannot be read as a Hugging Face tokenizer.json ({exc})") from exc
    name = f"hf:{hashlib.sha256(data).hexdigest()[:16]}"  # stored counts follow the file's content
    return name, lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def encoder(encoding: str) -> tuple[str, Callable[[str], int]]:
    """The name and text counter for ``encoding``: a tiktoken encoding, or a path to a ``tokenizer.json``."""
    if encoding in ENCODINGS:
        tiktoken_encoding = get_encoding(encoding)
        return encoding, lambda text: len(tiktoken_encoding.encode(text, disallowed_special=()))
    path = Path(encoding).expanduser()
    if path.suffix == ".json" or path.is_file():
        return _hf_tokenizer(path)
    raise UnknownEncoding(
        f"unknown encoding {encoding!r}: expected one of {', '.join(ENCODINGS)}, or the path of a model's "
        "tokenizer.json"
    )


class TokenCounter:
    """Counts tokens of messages and tools in one encoding.

    ``encoding`` is a tiktoken encoding (``o200k_base``, ``cl100k_base``: exact
    for OpenAI's models) or the path of a Hugging Face ``tokenizer.json``
    (the model's own tokenizer; its chat template's few tokens per message are
    estimated, and calibration against the server's own counts covers them).
    """

    def __init__(self, encoding: str = "o200k_base", *, counter: Callable[[str], int] | None = None) -> None:
        if counter is not None:
            self.name, self._count = encoding, counter
        else:
            self.name, self._count = encoder(encoding)

    def text(self, text: str) -> int:
        """Tokens of plain text (special-token look-alikes count as text)."""
        return self._count(text)

    def _value(self, value: Any) -> int:
        if value is None:
            return 0
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list) and all(isinstance(p, Mapping) and "type" in p for p in value):
            return sum(part_tokens(p, self.text) for p in value)
        return self.text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def message(self, message: Mapping[str, Any]) -> int:
        """Tokens one message adds to a request: its overhead and every value it carries."""
        total = TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "tool_calls" and isinstance(value, list):
                total += sum(self._tool_call(call) for call in value)
                continue
            total += self._value(value)
            if key == "name":
                total += TOKENS_PER_NAME
        return total

    def _tool_call(self, call: Mapping[str, Any]) -> int:
        body = call.get("function") or call.get("custom") or {}
        return TOKENS_PER_MESSAGE + sum(self._value(body.get(k)) for k in ("name", "arguments", "input"))

    def messages(self, messages: Iterable[Mapping[str, Any]]) -> int:
        """Tokens of a whole request's messages, with the reply priming."""
        return sum(self.message(m) for m in messages) + REPLY_PRIMING

    def tools(self, tools: Sequence[Mapping[str, Any]] | None, *, model: str = "gpt-4o") -> int:
        """Tokens of ``tools`` definitions, by the cookbook's rule, checked there against the API."""
        if not tools:
            return 0
        legacy = model.startswith(("gpt-4-", "gpt-3.5")) or model == "gpt-4"
        total = 0
        for tool in tools:
            function = tool.get("function") or tool.get("custom") or {}
            total += (10 if legacy else 7) + self.text(f"{function.get('name', '')}:{_trim(function.get('description'))}")
            properties = (function.get("parameters") or {}).get("properties") or {}
            if properties:
                total += 3
                for key, schema in properties.items():
                    total += 3
                    if "enum" in schema:
                        total += -3 + sum(3 + self.text(str(item)) for item in schema["enum"])
                    total += self.text(f"{key}:{schema.get('type', '')}:{_trim(schema.get('description'))}")
        return total + 12  # once for the whole block, not per function


def _trim(description: Any) -> str:
    text = str(description or "")
    return text[:-1] if text.endswith(".") else text
