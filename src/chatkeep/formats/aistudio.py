"""Importing a Google AI Studio prompt: the JSON file AI Studio saves to Google Drive for a chat.

``{runSettings: {model, temperature, ...}, systemInstruction: {text | parts},
chunkedPrompt: {chunks: [{role, text, tokenCount, isThought, parts,
finishReason, driveImage, inlineImage, ...}]}}``. ``user`` chunks become user
messages, ``model`` chunks assistant messages with ``runSettings.model``. A
thought chunk (``isThought``) is kept apart from the answer: it goes to the
next answer's ``metadata["aistudio"]["thinking"]`` (a thought with no answer
after it becomes an empty, incomplete assistant message holding it). An
inline image becomes an image part; a Drive file (image, document, video)
is named in metadata, as AI Studio keeps only its Drive id. ``pendingInputs``
(text typed but not sent) is left out. AI Studio keeps no times: messages
take the time of the import. A branch in AI Studio is a new prompt file, so
each file is one chain.

Keys: as the tutorial's file: the conversation hashes its opening (the system
instruction and first prompt), each message its parent's key and its own
content, so a file that grew adds only its new turns.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..store.base import MessageStatus
from ..store.bulk import ImportConversation, ImportMessage
from ._source import PathLike, Report, as_dict, as_str, checked_message, load_json
from .messages import chain_keys, opening_key

__all__ = ["read_aistudio"]

_ROLES = {"user": "user", "model": "assistant", "assistant": "assistant", "system": "system"}
_DRIVE = ("driveImage", "driveDocument", "driveVideo", "driveAudio", "youtubeVideo")


def read_aistudio(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield the prompt file's one conversation."""
    label = os.fspath(path)
    data = load_json(path, label)
    if not isinstance(data, dict) or not isinstance(as_dict(data.get("chunkedPrompt")).get("chunks"), list):
        raise FormatError("chunkedPrompt.chunks: expected a list of chunks", file=label)
    settings = as_dict(data.get("runSettings"))
    model = as_str(settings.get("model")).removeprefix("models/") or None
    bodies: list[dict[str, Any]] = []
    extras: list[tuple[MessageStatus, dict[str, Any]]] = []
    system = _system(data.get("systemInstruction"))
    if system:
        bodies.append({"role": "system", "content": system})
        extras.append(("complete", {}))
    thoughts: list[str] = []
    for index, chunk in enumerate(data["chunkedPrompt"]["chunks"]):
        where = f"chunkedPrompt.chunks[{index}]"
        chunk = as_dict(chunk)
        role = _ROLES.get(as_str(chunk.get("role")))
        if role is None:
            raise FormatError(f"{where}.role: unknown role {chunk.get('role')!r}", file=label)
        if chunk.get("isThought") is True:
            thoughts.append(as_str(chunk.get("text")))
            continue
        if thoughts and role != "assistant":
            bodies.append({"role": "assistant", "content": ""})
            extras.append(("incomplete", {"thinking": "\n\n".join(thoughts)}))
            thoughts = []
        content, kept = _content(chunk, role)
        if thoughts:
            kept["thinking"] = "\n\n".join(thoughts)
            thoughts = []
        bodies.append(checked_message({"role": role, "content": content}, where, label))
        extras.append(("complete", kept))
    if thoughts:
        bodies.append({"role": "assistant", "content": ""})
        extras.append(("incomplete", {"thinking": "\n\n".join(thoughts)}))
    if not any(body["role"] != "system" for body in bodies):
        Report(label, warnings).note("no chunks: no conversation to import")
        return
    keys = chain_keys(bodies)
    messages = [ImportMessage(body, key=key, parent_key=keys[i - 1] if i else None, status=status,
                              model=model if body["role"] == "assistant" else None,
                              metadata={"aistudio": kept} if kept else {})
                for i, (body, key, (status, kept)) in enumerate(zip(bodies, keys, extras))]
    yield ImportConversation(
        messages, key=opening_key(bodies).replace("messages:", "aistudio:", 1), title=Path(label).stem,
        metadata={"imported_from": "aistudio", "aistudio": {"runSettings": settings} if settings else {}})




def _system(value: Any) -> str:
    instruction = as_dict(value)
    if as_str(instruction.get("text")):
        return as_str(instruction["text"])
    parts: list[Any] = instruction["parts"] if isinstance(instruction.get("parts"), list) else []
    return "\n".join(as_str(as_dict(part).get("text")) for part in parts if as_str(as_dict(part).get("text")))


def _content(chunk: dict[str, Any], role: str) -> tuple[Any, dict[str, Any]]:
    """A chunk's content (text, or text and an inline image) and what metadata keeps."""
    kept: dict[str, Any] = {name: chunk[name] for name in ("tokenCount", "finishReason", *_DRIVE) if name in chunk}
    text = as_str(chunk.get("text"))
    if not text and isinstance(chunk.get("parts"), list):
        text = "".join(as_str(as_dict(part).get("text")) for part in chunk["parts"] if not as_dict(part).get("thought"))
    image = as_dict(chunk.get("inlineImage")) or as_dict(chunk.get("inlineData"))
    if role == "user" and as_str(image.get("data")):
        url = f"data:{as_str(image.get('mimeType')) or 'image/png'};base64,{image['data']}"
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        return parts + [{"type": "image_url", "image_url": {"url": url}}], kept
    if not text and any(name in chunk for name in _DRIVE):
        name = next(name for name in _DRIVE if name in chunk)
        text = f"[{name}: {as_str(as_dict(chunk[name]).get('id'))}]"
    return text, kept
