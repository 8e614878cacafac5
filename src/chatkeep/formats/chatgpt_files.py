"""The files of a ChatGPT export: found in its zip by the ids messages point to, and put into those messages.

Beside ``conversations.json``, an export's zip holds the images and files of
its conversations. Messages point to them by id:

- a content part's ``asset_pointer``: ``file-service://file-AbC123`` (uploads
  and DALL·E images until 2025) or ``sediment://file_00000000...`` (since); a
  voice message nests one under ``audio_asset_pointer``;
- ``metadata.attachments[].id`` (``file-AbC123``): the files a user attached;
- ``metadata.aggregate_result.messages[].image_url`` (``file-service://<uuid>``):
  the code interpreter's charts.

The zip names each file after its id: ``file-AbC123-photo.png``,
``dalle-generations/file-AbC123-<uuid>.webp``, ``file_0000...-<uuid>.png``,
``user-.../file_0000....png``, and in newer exports ``file-AbC123.dat`` with
``conversation_asset_file_names.json`` giving each its original name. So a
file is found by the id its name starts with, and its media type is read from
its first bytes, never from its name (``.dat`` says nothing).

Where a file goes depends on who sent it, because Chat Completions takes
media from the user only:

- in a user message each pointer becomes the part the API takes, in the
  order of the message's parts: ``image_url`` (PNG, JPEG, GIF, WebP, as a data
  URL), ``input_audio`` (WAV, MP3) or ``file`` (anything else, with its name);
- in a message imported as the assistant's (image generation, DALL·E and
  code-interpreter charts are ChatGPT's tools' output) the text keeps its
  ``[image: ...]`` line and the images go in the message's ``images`` list,
  ``[{"type": "image_url", "image_url": {"url": "data:..."}}]``, the shape
  OpenRouter gives images an assistant made. Other media there stay placeholders.

The store keeps each file's bytes once, however many messages carry it. A
pointer whose file is not in the zip (ChatGPT leaves out expired and
server-side files) keeps the placeholder a plain ``conversations.json``
import writes, with a warning naming the conversation and the pointer.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
import zipfile
from dataclasses import dataclass
from typing import Any

from ..store.attachments import sniff_media_type
from ._source import READ_ERRORS, Report, as_dict, first_line
from .chatgpt_content import _part_text

__all__ = ["MAX_FILE", "Attacher", "ExportFile", "ExportFiles", "media_part", "pointer_id", "points_to_files"]

#: The largest file taken from an export (the API takes at most 50 MB in one file part); larger ones stay placeholders.
MAX_FILE = 50 * 2**20

_SCHEMES = ("file-service://", "sediment://")
# The ids an entry's name can start with: file-service ids, sediment ids, and the code interpreter's uuids.
_ID = re.compile(r"file-[A-Za-z0-9]+|file_[A-Za-z0-9]+|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_NAMES_ENTRY = "conversation_asset_file_names.json"
_NAMES_LIMIT = 64 * 2**20
_API_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_API_AUDIO = {"audio/wav": "wav", "audio/mpeg": "mp3"}


def pointer_id(pointer: str) -> str:
    """The file id a pointer names: ``file-service://file-AbC`` and a bare ``file-AbC`` both give ``file-AbC``."""
    for scheme in _SCHEMES:
        if pointer.startswith(scheme):
            pointer = pointer[len(scheme):]
            break
    return re.split(r"[#?/]", pointer, maxsplit=1)[0]


def _base(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _entry_ids(base: str) -> list[str]:
    """The ids an entry's name may stand for: the id it starts with, and its name up to the first dot."""
    ids = [base.split(".", 1)[0]]
    found = _ID.match(base)
    if found and (found.end() == len(base) or base[found.end()] in "-."):
        ids.append(found[0])
    return ids


@dataclass(frozen=True)
class ExportFile:
    """One file of an export, read: its bytes, its original name where the export gives one, its media type."""

    data: bytes
    name: str
    media_type: str


def media_part(file: ExportFile) -> dict[str, Any]:
    """The content part that carries a file the way the API takes it."""
    encoded = base64.b64encode(file.data).decode("ascii")
    if file.media_type in _API_IMAGES:
        return {"type": "image_url", "image_url": {"url": f"data:{file.media_type};base64,{encoded}"}}
    if file.media_type in _API_AUDIO:
        return {"type": "input_audio", "input_audio": {"data": encoded, "format": _API_AUDIO[file.media_type]}}
    return {"type": "file", "file": {"filename": file.name, "file_data": f"data:{file.media_type};base64,{encoded}"}}


class ExportFiles:
    """The files in an export's zip, by the ids their names start with."""

    def __init__(self, archive: zipfile.ZipFile, report: Report) -> None:
        self._archive = archive
        self._by_id: dict[str, zipfile.ZipInfo] = {}
        names: zipfile.ZipInfo | None = None
        # The shallowest entry wins when two carry one id (a re-zipped folder nests the export once more).
        for info in sorted(archive.infolist(), key=lambda i: (i.filename.count("/"), i.filename)):
            if info.is_dir():
                continue
            base = _base(info.filename)
            if base == _NAMES_ENTRY:
                names = names or info
                continue
            for file_id in _entry_ids(base):
                self._by_id.setdefault(file_id, info)
        self._names = self._original_names(names, report) if names is not None else {}

    def _original_names(self, info: zipfile.ZipInfo, report: Report) -> dict[str, str]:
        """``conversation_asset_file_names.json``: each ``file-....dat`` entry's original name."""
        try:
            if info.file_size > _NAMES_LIMIT:
                raise ValueError(f"{info.file_size:,} bytes")
            with self._archive.open(info) as member:
                value = json.loads(member.read().decode("utf-8"))
        except (*READ_ERRORS, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            report.note(f"{info.filename} cannot be read ({first_line(exc)}); files keep their names in the zip")
            return {}
        if not isinstance(value, dict):
            return {}
        return {_base(key): _base(name) for key, name in value.items() if isinstance(name, str) and name.strip()}

    def find(self, pointer: str) -> ExportFile | str:
        """The file a pointer names, or why it cannot be had (a phrase to follow the pointer)."""
        info = self._by_id.get(pointer_id(pointer))
        if info is None:
            return "is not in the export"
        if info.file_size > MAX_FILE:
            return f"is {info.file_size:,} bytes, over the {MAX_FILE:,} chatkeep takes from an export"
        try:
            with self._archive.open(info) as member:
                data = member.read(MAX_FILE + 1)
        except (*READ_ERRORS, ValueError) as exc:
            return f"cannot be read from {info.filename} ({first_line(exc)})"
        if len(data) > MAX_FILE:  # the entry's header claimed less than it holds
            return f"is over the {MAX_FILE:,} bytes chatkeep takes from an export"
        base = _base(info.filename)
        name = self._names.get(base) or _given_name(base)
        media = sniff_media_type(data) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        return ExportFile(data, name, media)


def _given_name(base: str) -> str:
    """An entry's original name where its own name carries one (``file-AbC123-photo.png``), else its name."""
    found = _ID.match(base)
    if found and base.startswith("file-") and base[found.end():found.end() + 1] == "-" and len(base) > found.end() + 1:
        return base[found.end() + 1:]
    return base



def _part_pointer(part: Any) -> str | None:
    """The pointer a content part holds, its own or a voice message's nested audio."""
    part = as_dict(part)
    pointer = part.get("asset_pointer")
    if not isinstance(pointer, str):
        pointer = as_dict(part.get("audio_asset_pointer")).get("asset_pointer")
    return pointer if isinstance(pointer, str) and pointer else None


def _attachments(message: dict[str, Any]) -> list[tuple[str, str]]:
    """The files attached to a message, as (id, name)."""
    found = []
    for item in as_dict(message.get("metadata")).get("attachments") or ():
        item = as_dict(item)
        if isinstance(item.get("id"), str) and item["id"]:
            name = item.get("name")
            found.append((item["id"], name if isinstance(name, str) and name else item["id"]))
    return found


def _chart_pointers(message: dict[str, Any]) -> list[str]:
    """The code interpreter's images: ``aggregate_result.messages[].image_url``."""
    result = as_dict(as_dict(message.get("metadata")).get("aggregate_result"))
    return [item["image_url"] for item in result.get("messages") or ()
            if isinstance(item, dict) and isinstance(item.get("image_url"), str) and item["image_url"]]


def points_to_files(message: dict[str, Any]) -> bool:
    """Whether :meth:`Attacher.body` reads more of ``message`` than its role and text: it has content parts,
    attachments or charts. Of any other message it makes ``{"role", "content": text}``, files or not."""
    content = message.get("content")
    if isinstance(content, dict) and content.get("content_type") == "multimodal_text" \
            and isinstance(content.get("parts"), list) and content["parts"]:
        return True
    meta = message.get("metadata")
    # Most messages have neither key: no need to look further.
    if not isinstance(meta, dict) or ("attachments" not in meta and "aggregate_result" not in meta):
        return False
    return bool(_attachments(message) or _chart_pointers(message))


def _parts_of(pieces: list[str | dict[str, Any]]) -> list[dict[str, Any]]:
    """Content parts: each run of texts one text part (joined by newlines, as the plain import joins them)."""
    parts: list[dict[str, Any]] = []
    texts: list[str] = []
    for piece in [*pieces, {}]:
        if isinstance(piece, str):
            texts += [piece] if piece else []
            continue
        if texts:
            parts.append({"type": "text", "text": "\n".join(texts)})
            texts = []
        if piece:
            parts.append(piece)
    return parts


class Attacher:
    """Puts the files an export's messages point to into the messages; says which are missing.

    One per file read. With ``files`` (an export's zip) each message gets its
    files; without (a plain ``conversations.json``) messages keep their
    placeholders and :meth:`finish` notes once how many files the zip would add.
    """

    def __init__(self, files: ExportFiles | None, report: Report) -> None:
        self.files = files
        self.report = report
        self._where = ""
        self._found: dict[str, ExportFile | str] = {}
        self._pointed = 0
        self._unplaced = 0

    def conversation(self, where: str) -> None:
        """Start on a conversation; ``where`` names it in warnings. Files read for the last one are let go."""
        self._where = where
        self._found = {}

    def _find(self, pointer: str) -> ExportFile | None:
        assert self.files is not None
        key = pointer_id(pointer)
        if key not in self._found:
            self._found[key] = found = self.files.find(pointer)
            if isinstance(found, str):  # once a conversation, however many messages point to it
                self.report.note(f"{self._where}: {pointer} {found}; kept as a placeholder")
        found = self._found[key]
        return found if isinstance(found, ExportFile) else None

    def body(self, role: str, text: str, message: dict[str, Any] | None) -> dict[str, Any]:
        """The chat message for a ChatGPT message whose role and text are chosen, with the files it points to.

        ``message`` None: one that points to none (see :func:`points_to_files`).
        """
        if message is None:
            return {"role": role, "content": text}
        content = as_dict(message.get("content"))
        parts = content.get("parts") if content.get("content_type") == "multimodal_text" else None
        parts = parts if isinstance(parts, list) else []
        pointers = [p for p in (_part_pointer(part) for part in parts) if p]
        attached = _attachments(message) if role == "user" else []
        charts = _chart_pointers(message)
        if self.files is None:
            self._pointed += len(pointers) + len(attached) + len(charts)
            return {"role": role, "content": text}
        if role == "user":
            return {"role": role, "content": self._user_content(text, parts, attached)}
        body: dict[str, Any] = {"role": role, "content": text}
        if role == "assistant":
            images = self._images([*pointers, *charts])
            if images:
                body["images"] = images
        return body

    def _user_content(self, text: str, parts: list[Any], attached: list[tuple[str, str]]) -> str | list[dict[str, Any]]:
        pieces: list[str | dict[str, Any]] = []
        seen: set[str] = set()
        for part in parts:
            pointer = _part_pointer(part)
            found = self._find(pointer) if pointer else None
            if pointer:
                seen.add(pointer_id(pointer))
            pieces.append(media_part(found) if found is not None else _part_text(part))
        if not parts:
            pieces.append(text)
        for file_id, name in attached:
            if pointer_id(file_id) in seen:
                continue  # an uploaded image is both a part and an attachment
            seen.add(pointer_id(file_id))
            found = self._find(file_id)
            pieces.append(media_part(found) if found is not None else f"[file: {name}]")
        if all(isinstance(piece, str) for piece in pieces):
            return "\n".join(piece for piece in pieces if isinstance(piece, str) and piece)
        return _parts_of(pieces)

    def _images(self, pointers: list[str]) -> list[dict[str, Any]]:
        images: list[dict[str, Any]] = []
        seen: set[str] = set()
        for pointer in pointers:
            if pointer_id(pointer) in seen:
                continue
            seen.add(pointer_id(pointer))
            found = self._find(pointer)
            if found is not None and found.media_type in _API_IMAGES:
                images.append(media_part(found))
            elif found is not None:
                self._unplaced += 1
        return images

    def finish(self) -> None:
        """Note, once for the file, what was pointed to and could not be carried."""
        if self._pointed:
            self.report.note(f"{self._pointed:,} pointer(s) to images and files stay placeholders: a plain"
                             " conversations.json holds no files (import the export's .zip to keep them)")
        if self._unplaced:
            self.report.note(f"{self._unplaced:,} audio or other file(s) from ChatGPT's side stay placeholders:"
                             " a chat message carries audio and files from the user only")
