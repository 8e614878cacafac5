"""Attachments: the images, audio and files inside messages, kept once by content.

A message carries its payloads as base64: data URLs in ``image_url.url``,
``file.file_data``, Responses ``input_image``/``input_file`` parts and tool
outputs, and raw base64 in ``input_audio.data``. Stored inline, every turn
that re-sends a screenshot would store it again. Instead, when a message is
stored, each payload of a kilobyte or more is decoded, kept once in the
store's attachments table under the SHA-256 of its bytes (with its media type
and size), and the stored body keeps a short reference; the message row
lists where each reference sits. Reading the message puts the exact original
text back, so a message reads back byte-identical and what is sent to the API
is what the caller gave. Search and token counting never see the base64.

Only payloads whose base64 is canonical (what re-encoding the bytes gives)
are moved out; anything else stays inline, untouched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Blob", "Ref", "extract", "restore", "sniff_media_type"]

#: Smaller payloads stay inline: a reference would not save anything worth its read.
MIN_SIZE = 1024

_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg",
                "opus": "audio/opus", "pcm16": "audio/pcm", "aac": "audio/aac", "webm": "audio/webm"}

#: What stands in the stored body for a payload (its place is listed in the row, never guessed from text).
PLACEHOLDER = "chatkeep:attachment"


@dataclass(frozen=True)
class Blob:
    """One payload's bytes, by content."""

    sha256: str
    media_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Ref:
    """Where a payload sat in a message body, and the text before its base64 (``data:...;base64,``)."""

    path: tuple[str | int, ...]
    sha256: str
    prefix: str

    def to_json(self) -> list[Any]:
        return [list(self.path), self.sha256, self.prefix]

    @classmethod
    def from_json(cls, value: Sequence[Any]) -> Ref:
        return cls(tuple(value[0]), str(value[1]), str(value[2]))


def _decode(text: str) -> bytes | None:
    """The bytes of canonical base64 text, or None (then the text stays as it is)."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if base64.b64encode(data).decode("ascii") == text else None


def _payload(key: str | int, value: str, parent: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(prefix, base64, media type) when ``value`` is a payload worth moving out."""
    if len(value) < MIN_SIZE:
        return None
    if value.startswith("data:"):
        head, sep, data = value.partition(",")
        if not sep or not head.endswith(";base64"):
            return None
        media = head[len("data:"):-len(";base64")].split(";")[0] or "application/octet-stream"
        return head + sep, data, media
    if key == "data" and isinstance(parent.get("format"), str):  # input_audio: raw base64
        return "", value, _AUDIO_TYPES.get(str(parent["format"]), f"audio/{parent['format']}")
    return None


def extract(body: Any) -> tuple[Any, list[Ref], list[Blob]]:
    """The body with its payloads replaced by placeholders, where they were, and their bytes.

    ``body`` is not changed; when it holds no payload it is returned as it is.
    """
    refs: list[Ref] = []
    blobs: dict[str, Blob] = {}

    def walk(value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            changed = None
            for key, child in value.items():
                if isinstance(child, str):
                    found = _payload(key, child, value)
                    if found is not None:
                        data = _decode(found[1])
                        if data is not None:
                            sha = hashlib.sha256(data).hexdigest()
                            blobs.setdefault(sha, Blob(sha, sniff_media_type(data) or found[2], data))
                            refs.append(Ref((*path, key), sha, found[0]))
                            changed = changed if changed is not None else dict(value)
                            changed[key] = PLACEHOLDER
                    continue
                if isinstance(child, (dict, list)):
                    new = walk(child, (*path, key))
                    if new is not child:
                        changed = changed if changed is not None else dict(value)
                        changed[key] = new
            return value if changed is None else changed
        if isinstance(value, list):
            items = None
            for index, child in enumerate(value):
                if isinstance(child, (dict, list)):
                    new = walk(child, (*path, index))
                    if new is not child:
                        items = items if items is not None else list(value)
                        items[index] = new
            return value if items is None else items
        return value

    stripped = walk(body, ())
    return stripped, refs, list(blobs.values())


def restore(body: Any, refs: Iterable[Ref], fetch: Callable[[list[str]], Mapping[str, bytes]]) -> Any:
    """``body`` with every placeholder put back as the exact text it stood for (``body`` is changed)."""
    refs = list(refs)
    found = fetch(sorted({ref.sha256 for ref in refs}))
    for ref in refs:
        parent = body
        for step in ref.path[:-1]:
            parent = parent[step]
        data = found.get(ref.sha256)
        parent[ref.path[-1]] = ref.prefix + base64.b64encode(data).decode("ascii") if data is not None else ""
    return body


def sniff_media_type(data: bytes) -> str | None:
    """The media type the content says it is (its first bytes), not what a name or a header claims."""
    signatures: list[tuple[bytes, int, str]] = [
        (b"\x89PNG\r\n\x1a\n", 0, "image/png"), (b"\xff\xd8\xff", 0, "image/jpeg"), (b"GIF87a", 0, "image/gif"),
        (b"GIF89a", 0, "image/gif"), (b"%PDF-", 0, "application/pdf"), (b"ID3", 0, "audio/mpeg"),
        (b"\xff\xfb", 0, "audio/mpeg"), (b"fLaC", 0, "audio/flac"), (b"OggS", 0, "audio/ogg"),
    ]
    for magic, offset, media in signatures:
        if data[offset:offset + len(magic)] == magic:
            return media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    return None
