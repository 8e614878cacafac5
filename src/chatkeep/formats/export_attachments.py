"""Attachments in Markdown and HTML exports: where each image, audio clip and file of a message goes.

A message carries its attachments as base64 (data URLs, ``input_audio.data``,
``file.file_data``): what the API takes, and what the ``messages`` and
``jsonl`` exports keep. A document for people gets them as files instead:

- :class:`Beside`: files in a folder next to the export (``chat.md`` gets
  ``chat_files/``), linked with relative links;
- :class:`IntoZip`: the same folder, inside a ``.zip`` that holds the document;
- :class:`Inline`: data URLs inside the document, so one HTML file is the whole page;
- :class:`Placeholders`: nothing written, for an export to stdout, which has no
  place beside it: the document names each attachment's kind, name, media
  type and size instead.

A file is named by its content (the first 16 hex digits of its SHA-256, then
its own name or the extension of its type), so one used by many messages is
written once and exporting again rewrites nothing. A name's extension is kept
only when opening such a file runs nothing (``.pdf``, ``.png``, ``.txt``...);
``report.html`` becomes ``<hash>-report.html.bin``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from .._units import human_size
from ..errors import FormatError
from ..store.attachments import sniff_media_type

__all__ = ["Attachment", "Beside", "Inline", "IntoZip", "Placeholders", "Placement", "attachment_of",
           "attachments_of"]

#: Images a browser shows in an ``<img>`` (and that run nothing: no SVG).
SHOWN_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
               "application/pdf": ".pdf", "audio/wav": ".wav", "audio/mpeg": ".mp3", "audio/flac": ".flac",
               "audio/ogg": ".ogg", "text/plain": ".txt", "text/markdown": ".md", "text/csv": ".csv",
               "application/json": ".json"}
# Extensions a file keeps from its own name: opening such a file shows it and runs nothing.
_INERT = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".heic", ".pdf", ".txt", ".md", ".csv",
                    ".json", ".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac", ".mp4", ".webm", ".mov",
                    ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp", ".rtf", ".zip"})
_AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg",
                  "opus": "audio/opus", "aac": "audio/aac", "webm": "audio/webm", "pcm16": "audio/pcm"}
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,63}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Attachment:
    """One payload of a message, decoded: ``kind`` is ``image``, ``audio`` or ``file``."""

    kind: str
    media_type: str
    data: bytes
    filename: str | None = None

    @property
    def file_name(self) -> str:
        """The name it is written under: by content, with its own name or its type's extension."""
        digest = hashlib.sha256(self.data).hexdigest()[:16]
        own = _UNSAFE.sub("_", self.filename or "").strip("._")[:80]
        if own:
            return f"{digest}-{own}" if Path(own).suffix.lower() in _INERT else f"{digest}-{own}.bin"
        extension = _EXTENSIONS.get(self.media_type) or mimetypes.guess_extension(self.media_type) or ".bin"
        return digest + (extension if extension in _INERT else ".bin")

    @property
    def label(self) -> str:
        """What it is, for people: kind, name, media type and size (only characters safe in any document)."""
        name = _UNSAFE.sub("_", self.filename).strip("._")[:80] if self.filename else ""
        return f"{self.kind}: {name or self.file_name}, {self.media_type}, {human_size(len(self.data))}"

    @property
    def shown(self) -> bool:
        """Whether a page shows it in place (a picture, a player) rather than as a link."""
        return (self.kind == "image" and self.media_type in SHOWN_IMAGES) or (
            self.kind == "audio" and self.media_type in ("audio/wav", "audio/mpeg", "audio/ogg", "audio/flac"))

    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def _decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _from_data_url(kind: str, url: Any, filename: str | None = None) -> Attachment | None:
    """The attachment a ``data:...;base64,`` URL holds; ``None`` for any other text (a remote URL, say)."""
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    head, sep, payload = url.partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    data = _decode(payload)
    if data is None:
        return None
    declared = head[len("data:"):-len(";base64")].split(";")[0].strip().lower()
    media = sniff_media_type(data) or (declared if _MEDIA_TYPE.fullmatch(declared) else "application/octet-stream")
    return Attachment(kind, media, data, filename)


def attachment_of(part: Any) -> Attachment | None:
    """The attachment a content part carries inline; ``None`` for text, remote URLs and file ids."""
    if not isinstance(part, Mapping):
        return None
    kind = part.get("type")
    if kind == "image_url" and isinstance(part.get("image_url"), Mapping):
        return _from_data_url("image", part["image_url"].get("url"))
    if kind == "input_audio" and isinstance(part.get("input_audio"), Mapping):
        audio = part["input_audio"]
        data = _decode(audio["data"]) if isinstance(audio.get("data"), str) else None
        if data is None:
            return None
        declared = _AUDIO_FORMATS.get(str(audio.get("format")), "application/octet-stream")
        return Attachment("audio", sniff_media_type(data) or declared, data)
    if kind == "file" and isinstance(part.get("file"), Mapping):
        file = part["file"]
        name = file.get("filename") if isinstance(file.get("filename"), str) else None
        found = _from_data_url("file", file.get("file_data"), name)
        if found is None and isinstance(file.get("file_data"), str):  # raw base64, no data: head
            data = _decode(file["file_data"])
            if data is not None:
                guessed = mimetypes.guess_type(name or "")[0] or "application/octet-stream"
                found = Attachment("file", sniff_media_type(data) or guessed, data, name)
        return found
    return None


def attachments_of(message: Mapping[str, Any]) -> Iterator[Attachment]:
    """The images a message carries beside its content: an assistant's ``images`` list (how imports keep them)."""
    for part in message.get("images") or ():
        found = attachment_of(part)
        if found is not None:
            yield found


class Placement(Protocol):
    """Where a document's attachments go; ``place`` gives the link to one, or ``None`` for a placeholder."""

    mode: str  # "files", "inline" or "placeholders": what the page's content policy must allow

    def place(self, attachment: Attachment) -> str | None: ...


class Placeholders:
    """Nothing written: each attachment is named in the document, and counted."""

    mode = "placeholders"

    def __init__(self) -> None:
        self.left_out = 0

    def place(self, attachment: Attachment) -> str | None:
        self.left_out += 1
        return None


class Inline:
    """Each attachment inside the document, as a data URL."""

    mode = "inline"

    def place(self, attachment: Attachment) -> str | None:
        return attachment.data_url()


class Beside:
    """Files in a folder next to the document, created on the first attachment, owner-only."""

    mode = "files"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._written: set[str] = set()

    def place(self, attachment: Attachment) -> str | None:
        name = attachment.file_name
        if name not in self._written:
            self._write(name, attachment.data)
            self._written.add(name)
        return f"{quote(self.folder.name)}/{quote(name)}"

    def _write(self, name: str, data: bytes) -> None:
        target = self.folder / name
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            if target.is_file() and target.stat().st_size == len(data):
                return  # named by content: an earlier export wrote these very bytes
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.chatkeep-{os.getpid()}-",
                                                 suffix=".tmp")
        except FileExistsError as exc:
            raise FormatError("cannot write attachments: a file of that name is in the way (not a folder)",
                              file=str(self.folder)) from exc
        except OSError as exc:
            raise FormatError(f"cannot write attachments: {exc.strerror or exc}", file=str(self.folder)) from exc
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        except OSError as exc:
            os.unlink(temporary)
            raise FormatError(f"cannot write attachment: {exc.strerror or exc}", file=str(target)) from exc


class IntoZip:
    """Files in a folder inside the zip that holds the document; each written once."""

    mode = "files"

    def __init__(self, archive: zipfile.ZipFile, folder: str) -> None:
        self.archive = archive
        self.folder = folder
        self._written: set[str] = set()

    def place(self, attachment: Attachment) -> str | None:
        name = attachment.file_name
        if name not in self._written:
            entry = zipfile.ZipInfo(f"{self.folder}/{name}")
            entry.external_attr = 0o600 << 16  # owner-only once unzipped, like every file chatkeep writes
            # Pictures and sound are compressed already: deflating them again only costs time.
            entry.compress_type = zipfile.ZIP_STORED if attachment.shown else zipfile.ZIP_DEFLATED
            self.archive.writestr(entry, attachment.data)
            self._written.add(name)
        return f"{quote(self.folder)}/{quote(name)}"
