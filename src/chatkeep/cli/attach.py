"""Attaching files from the command line: the parts a message carries, and what a stored message holds.

The media type comes from the file's content (its first bytes), never from
its name; images become ``image_url`` parts, WAV and MP3 audio
``input_audio``, anything else (a PDF, say) a ``file`` part, each with the
bytes inline as the API takes them. chatkeep's store keeps each payload once.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._units import human_size
from ..errors import ChatkeepError
from ..store.attachments import sniff_media_type

__all__ = ["MAX_ATTACHMENT", "attachment_part", "attachments_of", "with_attachments"]

#: The largest file chatkeep attaches (OpenAI takes images up to 20 MB a request).
MAX_ATTACHMENT = 20 * 1024 * 1024


def attachment_part(path: Path) -> dict[str, Any]:
    """The content part that carries the file at ``path``; a clear error when it cannot be one."""
    try:
        size = path.stat().st_size
        if size > MAX_ATTACHMENT:
            raise ChatkeepError(f"{path}: {size:,} bytes is more than the {MAX_ATTACHMENT:,} a message may carry")
        data = path.read_bytes()
    except OSError as exc:
        raise ChatkeepError(f"{path}: cannot be attached ({exc.strerror})") from exc
    media = sniff_media_type(data) or "application/octet-stream"
    encoded = base64.b64encode(data).decode("ascii")
    if media.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{encoded}"}}
    if media in ("audio/wav", "audio/mpeg"):
        return {"type": "input_audio", "input_audio": {"data": encoded, "format": "wav" if media == "audio/wav" else "mp3"}}
    return {"type": "file", "file": {"filename": path.name, "file_data": f"data:{media};base64,{encoded}"}}


def with_attachments(text: str, paths: list[Path]) -> str | dict[str, Any]:
    """A user message: the text alone, or the text and a part for each attached file."""
    if not paths:
        return text
    return {"role": "user", "content": [{"type": "text", "text": text}, *(attachment_part(p) for p in paths)]}


def attachments_of(message: Mapping[str, Any]) -> Iterator[str]:
    """One line for each payload a stored message carries: its kind, media type and size."""
    content = message.get("content")
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "image_url":
            yield _describe("image", str((part.get("image_url") or {}).get("url") or ""))
        elif kind == "input_image":
            yield _describe("image", str(part.get("image_url") or ""))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            yield f"audio ({audio.get('format', '?')}, {human_size(len(str(audio.get('data') or '')) * 3 // 4)})"
        elif kind in ("file", "input_file"):
            file = part.get("file") or part
            name = file.get("filename") or file.get("file_id") or "file"
            yield _describe(f"file {name}", str(file.get("file_data") or ""))


def _describe(what: str, url: str) -> str:
    if not url.startswith("data:"):
        return f"{what} ({url[:60]})"
    head, _, data = url.partition(",")
    media = head[len("data:"):].split(";")[0]
    return f"{what} ({media}, {human_size(len(data) * 3 // 4)})"

