"""Writing conversations out: the tutorial's JSON array, fine-tuning JSONL, Markdown, HTML, Open WebUI.

Each conversation is written as one branch: the current one, or the path from
the root to the message named by ``branch``; Open WebUI's file holds every
branch, with that one current. Exporting the whole store reads conversations
a page at a time, so memory holds one conversation, not all.

Attachments: the JSON formats carry them inline as base64, exactly as the
API takes them. Markdown and HTML write them as files beside the document
(``chat.md`` and ``chat_files/``), or both into a ``.zip``, or inline as data
URLs; written to a stream, they have nowhere to go and are named by
placeholders (see :mod:`.export_attachments`).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Literal, TextIO, Union

from ..errors import FormatError
from ..items import branch_to_chat, response_item_to_chat
from ..store.base import ConversationRecord
from ..store.protocol import Store
from .export_attachments import Beside, Inline, IntoZip, Placeholders, Placement
from .jsonl import RECORD_KEYS
from .openwebui_export import write_openwebui
from .render import Exported, html_conversation, html_end, html_start, markdown_conversation

__all__ = ["EXPORT_FORMATS", "write_conversations"]

#: The formats ``write_conversations`` writes.
EXPORT_FORMATS = ("messages", "jsonl", "markdown", "html", "openwebui")
#: The formats for people, whose attachments become files (the others carry them inline).
DOCUMENT_FORMATS = ("markdown", "html")
_DOCUMENT_SUFFIX = {"markdown": ".md", "html": ".html"}
Attachments = Literal["files", "inline", "placeholders"]
_PAGE = 100
_RECORD_TYPES: dict[str, type] = {"tools": list, "parallel_tool_calls": bool, "functions": list}


def _selected(store: Store, ids: list[str] | None, branch: str | None) -> Iterator[Exported]:
    if branch is not None:
        conversation_id = store.get_message(branch).conversation_id
        if ids is not None and ids != [conversation_id]:
            raise FormatError(f"branch {branch!r} is a message of conversation {conversation_id!r}:"
                              " export that one conversation")
        yield Exported(store.get_conversation(conversation_id), store.path(conversation_id, head_id=branch))
        return
    if ids is not None:
        for conversation_id in ids:
            yield Exported(store.get_conversation(conversation_id), store.path(conversation_id))
        return
    # Pages follow the store's order (most recently updated first); a conversation
    # updated while the export runs may move between pages.
    offset = 0
    while True:
        page = store.list_conversations(limit=_PAGE, offset=offset)
        for record in page:
            yield Exported(record, store.path(record.id))
        if len(page) < _PAGE:
            return
        offset += len(page)


def _records(store: Store, ids: list[str] | None, branch: str | None) -> Iterator[ConversationRecord]:
    """The selected conversations' records; with ``branch``, its conversation with that message as the head."""
    if branch is not None:
        conversation_id = store.get_message(branch).conversation_id
        if ids is not None and ids != [conversation_id]:
            raise FormatError(f"branch {branch!r} is a message of conversation {conversation_id!r}:"
                              " export that one conversation")
        yield replace(store.get_conversation(conversation_id), head_id=branch)
        return
    if ids is not None:
        yield from (store.get_conversation(conversation_id) for conversation_id in ids)
        return
    offset = 0
    while True:
        page = store.list_conversations(limit=_PAGE, offset=offset)
        yield from page
        if len(page) < _PAGE:
            return
        offset += len(page)


def _write_messages(out: TextIO, items: Iterator[Exported]) -> int:
    """Exactly what the tutorial's ``json.dump(messages, f, indent=2)`` writes."""
    for item in items:
        out.write(json.dumps(branch_to_chat(item.path), indent=2))
        return 1
    return 0


def _json_line(record: dict[str, Any]) -> str:
    text = json.dumps(record, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only its \\u escape can be written as UTF-8
        text = json.dumps(record)
    return text + "\n"


def _write_jsonl(out: TextIO, items: Iterator[Exported]) -> int:
    count = 0
    for item in items:
        record: dict[str, Any] = {"messages": branch_to_chat(item.path)}
        metadata = item.record.metadata
        record.update((key, metadata[key]) for key in RECORD_KEYS
                      if isinstance(metadata.get(key), _RECORD_TYPES[key]))
        out.write(_json_line(record))
        count += 1
    return count


def _readable(items: Iterator[Exported]) -> Iterator[Exported]:
    """Responses API items shown as the chat messages they amount to; summaries left out."""
    for item in items:
        path = []
        for stored in item.path:
            if stored.kind == "response_item":
                chat = response_item_to_chat(stored.message)
                if chat is not None:
                    path.append(replace(stored, message=chat, kind="chat"))
            elif stored.kind == "chat":
                path.append(stored)
        yield replace(item, path=path)


def _write_markdown(out: TextIO, items: Iterator[Exported], place: Placement) -> int:
    count = 0
    for item in _readable(items):
        out.write(("\n---\n\n" if count else "") + markdown_conversation(item, place))
        count += 1
    return count


def _write_html(out: TextIO, items: Iterator[Exported], single: bool, place: Placement) -> int:
    items = _readable(items)
    first = next(items, None)
    title = (first.record.display_title if single and first is not None else None) or "chatkeep export"
    out.write(html_start(title, place.mode))
    count = 0
    for item in itertools.chain([] if first is None else [first], items):
        out.write(html_conversation(item, place))
        count += 1
    out.write(html_end())
    return count


def _temporary_prefix(name: str) -> str:
    """How a temporary export file for ``name`` starts: it names the process, so a later export can tell it is stale."""
    return f".{name}.chatkeep-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (EPERM), or not a pid at all: leave its file be
        return True
    return True


def _remove_stale(folder: Path, name: str | None) -> None:
    """Remove temporary files that exports to ``name`` (``None``: any name) left when killed before their rename.

    Only files named by :func:`_temporary_prefix` whose process is gone are
    removed: one of a running export (this process's too) is still being written.
    """
    if sys.platform == "win32":  # os.kill(pid, 0) would end the process there, not ask about it
        return
    named = re.escape(name) if name is not None else ".+"
    pattern = re.compile(rf"\.{named}\.chatkeep-(\d{{1,10}})-\w+\.tmp")
    try:
        entries = os.listdir(folder)
    except OSError:
        return  # mkstemp below reports an unusable folder
    for entry in entries:
        found = pattern.fullmatch(entry)
        if found and int(found[1]) != os.getpid() and not _alive(int(found[1])):
            with contextlib.suppress(OSError):  # another export removed it first, or it is not ours to remove
                os.unlink(folder / entry)


def _text(write: Callable[[TextIO], int]) -> Callable[[IO[bytes]], int]:
    """A writer of text as a writer of the UTF-8 bytes ``_to_file`` takes (newlines kept as they are)."""
    def bytes_out(raw: IO[bytes]) -> int:
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            count = write(out)
            out.flush()
        finally:
            out.detach()  # the caller syncs and closes the file
        return count
    return bytes_out


def _to_file(given: Path, write: Callable[[IO[bytes]], int]) -> int:
    """Write a new file beside the target and rename it over it: a failure leaves the old file whole.

    The file replaced is the one the user sees: a symlink's target (the link
    stays a link), keeping an existing file's mode; a new file is owner-only.
    """
    target = Path(os.path.realpath(given))
    if target.is_symlink():  # realpath stops inside a loop of links
        raise FormatError("cannot write: the symlink never reaches a file (a loop)", file=str(given))
    try:
        existing = target.stat()
    except FileNotFoundError:
        mode = 0o600
    except OSError as exc:
        raise FormatError(f"cannot write: {exc.strerror or exc}", file=str(given)) from exc
    else:
        # The rename would put a file in place of a device or pipe (/dev/null, say) instead of writing to it.
        if not stat.S_ISREG(existing.st_mode):
            raise FormatError("cannot write: not a regular file (leave out the path to write to stdout)",
                              file=str(given))
        mode = stat.S_IMODE(existing.st_mode)
    _remove_stale(target.parent, target.name)
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=_temporary_prefix(target.name), suffix=".tmp")
    except OSError as exc:
        raise FormatError(f"cannot write: {exc.strerror or exc}", file=str(given)) from exc
    try:
        with os.fdopen(handle, "wb") as out:
            os.fchmod(out.fileno(), mode)
            count = write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        os.unlink(temporary)
        if isinstance(exc, OSError):
            raise FormatError(f"cannot write: {exc.strerror or exc}", file=str(given)) from exc
        raise
    return count


def _check_one(store: Store, ids: list[str] | None, branch: str | None) -> None:
    held = 1 if branch is not None else len(ids) if ids is not None else store.count_conversations()
    if held != 1:
        raise FormatError(f"the messages format holds one conversation, and {held} were selected:"
                          " name one, or export as jsonl")


def _folder_name(base: str) -> str:
    """The folder of an export's attachment files: named after the export (``chat.md``: ``chat_files``)."""
    return f"{base or 'export'}_files"


def _zip_base(name: str) -> str:
    """What a zip's document and folder are named after: ``chat.zip`` and ``chat.html.zip`` both give ``chat``."""
    base = name[:-len(".zip")]
    root, extension = os.path.splitext(base)
    return root if extension.lower() in (".md", ".markdown", ".html", ".htm") else base


def _zip(raw: IO[bytes], document: str, write: Callable[[TextIO, zipfile.ZipFile], int]) -> int:
    """A zip of the document and its attachments; the document is spooled while attachments go in as found."""
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive, tempfile.TemporaryFile() as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        count = write(text, archive)
        text.flush()
        text.detach()
        spool.seek(0)
        entry = zipfile.ZipInfo(document, date_time=time.localtime()[:6])
        entry.external_attr = 0o600 << 16  # owner-only once unzipped
        entry.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(entry, "w", force_zip64=True) as target:
            shutil.copyfileobj(spool, target)
    return count


def write_conversations(
    store: Store,
    conversation_ids: Union[str, Iterable[str], None],
    format: str,
    out: Union[TextIO, str, "os.PathLike[str]"],
    *,
    branch: str | None = None,
    attachments: Attachments | None = None,
    warnings: list[str] | None = None,
) -> int:
    """Write conversations to ``out`` (an open text file, or a path written atomically); return how many.

    ``conversation_ids`` names one conversation, several, or (``None``) every
    one in the store. ``format`` is ``messages`` (the tutorial's JSON array,
    byte for byte what ``json.dump(messages, f, indent=2)`` writes: one
    conversation only), ``jsonl`` (a fine-tuning record per conversation, with
    its ``tools``), ``markdown`` or ``html`` (documents to read, in which no
    message can inject HTML or script), ``openwebui`` (Open WebUI's import
    file: every branch, the current one as its ``currentId``). ``branch`` is a
    message id: the path from the root to it is written instead of the
    current branch (for ``openwebui``: it is the current one).

    The JSON formats carry images, audio and files inline, as base64. For
    ``markdown`` and ``html``, ``attachments`` says where they go: ``files``
    (the default for a path: a folder beside it named after it, ``chat.md``
    and ``chat_files/``, linked relatively), ``inline`` (data URLs: the page is
    one self-contained file) or ``placeholders`` (the default for an open
    stream, which has no place beside it: each is named, and ``warnings``
    gets a line saying how many). A path ending in ``.zip`` gets a zip of the
    document and its folder (``chat.zip``: ``chat.md``, ``chat_files/``).
    """
    if format not in EXPORT_FORMATS:
        raise FormatError(f"unknown export format {format!r} (expected one of {', '.join(EXPORT_FORMATS)})")
    if attachments not in (None, "files", "inline", "placeholders"):
        raise FormatError(f"attachments: expected 'files', 'inline' or 'placeholders', got {attachments!r}")
    ids = [conversation_ids] if isinstance(conversation_ids, str) else (
        None if conversation_ids is None else list(conversation_ids))
    path = Path(out) if isinstance(out, (str, os.PathLike)) else None
    zipped = path is not None and path.name.lower().endswith(".zip")
    if zipped and format not in DOCUMENT_FORMATS:
        raise FormatError(f"a .zip holds a markdown or html export with its attachments; {format} carries them"
                          " inline: write it to a plain file", file=str(path))
    mode = attachments or ("files" if path is not None else "placeholders")
    if mode == "files" and path is None and format in DOCUMENT_FORMATS:
        raise FormatError("attachments as files need a path to be written beside: give one (or a .zip),"
                          " or put them inline")
    if format == "messages":
        _check_one(store, ids, branch)
    single = branch is not None or (ids is not None and len(ids) == 1)
    placed: list[Placement] = []

    def write(stream: TextIO, archive: zipfile.ZipFile | None = None) -> int:
        if format == "openwebui":
            return write_openwebui(stream, store, _records(store, ids, branch))
        items = _selected(store, ids, branch)
        if format == "messages":
            return _write_messages(stream, items)
        if format == "jsonl":
            return _write_jsonl(stream, items)
        placed.append(_placement(mode, path, archive))
        if format == "markdown":
            return _write_markdown(stream, items, placed[-1])
        return _write_html(stream, items, single, placed[-1])

    if isinstance(out, (str, os.PathLike)):
        target = Path(out)
        document = _zip_base(target.name) + _DOCUMENT_SUFFIX.get(format, "") if zipped else ""
        count = _to_file(target, (lambda raw: _zip(raw, document, write)) if zipped else _text(write))
    else:
        count = write(out)
    left_out = sum(place.left_out for place in placed if isinstance(place, Placeholders))
    if left_out and warnings is not None:
        warnings.append(f"{left_out:,} attachment(s) shown as placeholders: an export to a stream has no place"
                        " beside it for their files")
    return count


def _placement(mode: str, path: Path | None, archive: zipfile.ZipFile | None) -> Placement:
    """Where a document's attachments go, for the mode chosen and the place the document is written to."""
    if mode == "inline":
        return Inline()
    if mode == "placeholders" or path is None:
        return Placeholders()
    if archive is not None:
        return IntoZip(archive, _folder_name(_zip_base(path.name)))
    folder = path.parent / _folder_name(os.path.splitext(path.name)[0])
    if folder.is_dir():
        _remove_stale(folder, None)  # attachment files a killed export left half-written
    return Beside(folder)
