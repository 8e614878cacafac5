"""Reading import files: opening them (plain, or a ChatGPT export zip), streaming JSON, reporting problems.

Everything here keeps memory bounded by one record, whatever the file's size:
top-level JSON arrays are parsed one element at a time (:mod:`._scan`), JSON
Lines one line at a time, and a zip entry is decompressed as it is read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Any, TypeVar, Union

import ijson
from ijson.common import ObjectBuilder

from ..errors import FormatError, MessageError
from ..messages import MessageDict, plain_text_message, validate_message
from ._scan import JsonScanner, ScanError

__all__ = [
    "MAX_DEPTH",
    "PathLike",
    "Report",
    "as_dict",
    "as_str",
    "checked_message",
    "content_hash",
    "epoch",
    "first_line",
    "iso_time",
    "json_array",
    "json_lines",
    "json_object_array",
    "load_json",
    "moment",
    "export_parts",
    "open_export",
    "open_export_archive",
    "open_plain",
    "too_deep",
]

PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")

#: How deeply one record may nest. Real files stay near 12 levels; the limit
#: exists because the C parser's cost grows with the square of the depth, so a
#: 20 KB file of ``[[[[...`` would otherwise take a gigabyte.
MAX_DEPTH = 100
#: The longest JSON Lines record read; longer lines are reported, not loaded.
MAX_LINE_BYTES = 64 * 2**20
#: Zip entries beyond this uncompressed size, or compressed more than
#: MAX_ZIP_RATIO times (when over ZIP_RATIO_FLOOR, where ratios start to mean
#: something), are refused as likely zip bombs.
MAX_ZIP_ENTRY = 2 * 2**30
MAX_ZIP_RATIO = 200
ZIP_RATIO_FLOOR = 2**20
EXPORT_ENTRY = "conversations.json"
#: Since 2026 ChatGPT splits a large export's conversations over numbered files,
#: ``conversations-000.json``, ``conversations-001.json``, ..., each a JSON array.
EXPORT_PART = re.compile(r"conversations-(\d+)\.json")

_BOM = b"\xef\xbb\xbf"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_STARTS = frozenset(("start_map", "start_array"))
_ENDS = frozenset(("end_map", "end_array"))
# What a damaged file or archive raises while it is read.
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)


class Report:
    """Where an importer sends the records it skips and the repairs it makes.

    Without a ``warnings`` list an import is strict: a record that would be
    skipped raises its ``FormatError`` instead. With one, the record is left out
    and the error's text (``file:line: reason``) is appended.
    """

    def __init__(self, label: str, warnings: list[str] | None) -> None:
        self.label = label
        self.warnings = warnings

    def skip(self, error: FormatError) -> None:
        """A record cannot be imported: raise when strict, else note it and go on."""
        if self.warnings is None:
            raise error
        self.warnings.append(str(error))

    def note(self, reason: str, *, line: int | None = None) -> None:
        """Something was repaired and nothing was lost: tell a caller who asked."""
        if self.warnings is not None:
            self.warnings.append(str(FormatError(reason, file=self.label, line=line)))

    def each(self, records: Iterable[tuple[str, Any]], convert: Callable[[Any, str], T | None]) -> Iterator[T]:
        """``convert(record, where)`` for each ``(where, record)``: a record it refuses with a FormatError is
        skipped (see :meth:`skip`), and one it turns into ``None`` (nothing to import) is left out."""
        for where, record in records:
            try:
                converted = convert(record, where)
            except FormatError as error:
                self.skip(error)
                continue
            if converted is not None:
                yield converted


def as_str(value: Any) -> str:
    """``value`` when it is a string, else ``""``: a field a file may leave out or fill with anything."""
    return value if isinstance(value, str) else ""


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is an object, else ``{}``."""
    return value if isinstance(value, dict) else {}


#: Roles whose message is valid with a string content and nothing else (a tool message needs its call's id,
#: a function message its name).


def checked_message(message: Any, field: str, label: str, line: int | None = None) -> MessageDict:
    """Validate a message for import; a problem becomes a FormatError naming the file, line and field."""
    if plain_text_message(message) is not None:
        return dict(message)  # most imported messages: what validate_message returns for them, without its walk
    try:
        return validate_message(message, field=field)
    except MessageError as exc:
        raise FormatError(str(exc), file=label, line=line) from exc


def first_line(error: BaseException) -> str:
    """An error's first line: the C parser appends the input with a caret below it."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def content_hash(value: Any) -> str:
    """A stable hash of a JSON value: key order and spacing in the file do not matter."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:32]


#: Times outside these are not when a chat happened (a zero, a year 68): the import's own time stands in.
_EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc).timestamp()
_FUTURE_SLACK = 86_400.0


def epoch(value: Any) -> datetime | None:
    """A Unix time in seconds as an aware UTC datetime; ``None`` when absent or absurd."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if not _EARLIEST <= value <= time.time() + _FUTURE_SLACK:
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def iso_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``2025-06-21T19:28:21.177Z``, ``+08:00``, no zone: UTC) as aware UTC; ``None`` otherwise."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python before 3.11 reads at most 6 fractional digits; some writers send 7 or 9.
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return epoch(parsed.timestamp())


def moment(value: Any) -> datetime | None:
    """A time in any form an export writes: Unix seconds or milliseconds, ISO 8601, or MongoDB's ``{"$date": ...}``.

    Milliseconds are told from seconds by size (a value past the year 5000 in
    seconds is taken as milliseconds); ``None`` when absent or absurd.
    """
    if isinstance(value, dict) and "$date" in value:
        value = value["$date"]
        if isinstance(value, dict):
            value = value.get("$numberLong")
            value = int(value) if isinstance(value, str) and value.lstrip("-").isdigit() else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return epoch(value / 1000)
    if isinstance(value, str):
        stripped = value.strip()
        try:
            value = float(stripped) if stripped else value
        except ValueError:
            return iso_time(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > 1e11:
        value = value / 1000
    return epoch(value)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed value nests deeper than ``limit``.

    Depth first, stopping at the first branch past the limit: the recursion
    goes at most ``limit`` calls deep, and visits only containers' children
    (a walk a level at a time built a list of each level, three times slower).
    """
    return isinstance(value, (dict, list)) and _deeper(value, limit)


def _deeper(container: dict[str, Any] | list[Any], limit: int) -> bool:
    if limit <= 0:
        return True
    for child in container.values() if isinstance(container, dict) else container:
        if isinstance(child, (dict, list)) and _deeper(child, limit - 1):
            return True
    return False


def _skip_bom(stream: IO[bytes]) -> IO[bytes]:
    if stream.read(3) != _BOM:
        stream.seek(0)
    return stream


@contextmanager
def open_plain(path: PathLike) -> Iterator[IO[bytes]]:
    """Open a file for reading as bytes, past a UTF-8 byte order mark; a zip is refused."""
    label = os.fspath(path)
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise FormatError(f"cannot open: {exc.strerror or exc}", file=label) from exc
    with stream:
        if stream.read(4) in _ZIP_MAGIC:
            raise FormatError("a zip archive: only exports holding conversations.json (ChatGPT, claude.ai, DeepSeek)"
                              " can be imported as zips", file=label)
        stream.seek(0)
        yield _skip_bom(stream)


def _check_entries(archive: zipfile.ZipFile, label: str) -> None:
    for info in archive.infolist():
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise FormatError(f"unsafe entry name {name!r} (absolute, or leading out of the archive)", file=label)
        if info.file_size > MAX_ZIP_ENTRY:
            raise FormatError(f"entry {name!r} claims {info.file_size} bytes uncompressed (over 2 GiB)", file=label)
        if info.file_size > ZIP_RATIO_FLOOR and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise FormatError(
                f"entry {name!r} is compressed {info.file_size // max(info.compress_size, 1)} times"
                f" (over {MAX_ZIP_RATIO}): refusing a likely zip bomb", file=label,
            )


def _base_name(info: zipfile.ZipInfo) -> str:
    return info.filename.replace("\\", "/").split("/")[-1]


def _depth(info: zipfile.ZipInfo) -> int:
    return info.filename.replace("\\", "/").count("/")


def _export_entries(archive: zipfile.ZipFile, label: str) -> list[zipfile.ZipInfo]:
    """The entries holding the conversations: ``conversations.json``, or else its numbered parts in order."""
    files = [info for info in archive.infolist() if not info.is_dir()]
    whole = [info for info in files if _base_name(info) == EXPORT_ENTRY]
    if whole:  # the export keeps it at the top; a re-zipped folder puts it one level down
        return [min(whole, key=_depth)]
    numbered = {info: int(found[1]) for info in files if (found := EXPORT_PART.fullmatch(_base_name(info)))}
    if not numbered:
        raise FormatError(f"a zip archive without {EXPORT_ENTRY} (or conversations-000.json and the rest):"
                          " not a ChatGPT, claude.ai or DeepSeek export", file=label)
    top = min(map(_depth, numbered))
    return sorted((info for info in numbered if _depth(info) == top), key=numbered.__getitem__)


@contextmanager
def open_export(path: PathLike) -> Iterator[tuple[IO[bytes], str]]:
    """Open a ChatGPT export, a ``conversations.json`` or a zip holding one, and the label errors use.

    A zip is checked whole before anything is read: entries named outside the
    archive (``../x``, ``/etc/x``), and absurd sizes or compression ratios,
    refuse the file.
    """
    with open_export_archive(path) as (stream, label, _archive):
        yield stream, label


@contextmanager
def open_export_archive(path: PathLike) -> Iterator[tuple[IO[bytes], str, zipfile.ZipFile | None]]:
    """Like :func:`open_export`, with the zip itself (``None`` for a plain file) to read the files beside it.

    The archive stays open, and its other entries readable, while the
    ``conversations.json`` entry is being streamed. Of an export split into
    numbered parts, this is the first (:func:`export_parts` reads them all).
    """
    parts = export_parts(path)
    try:
        yield next(parts)
    finally:
        parts.close()


def export_parts(path: PathLike) -> Generator[tuple[IO[bytes], str, zipfile.ZipFile | None], None, None]:
    """Each file of an export in turn: a plain file, a zip's ``conversations.json``, or each of its numbered parts.

    Yields ``(stream, label, archive)``: the stream is open until the next part
    is asked for, the label names the file (a zip's: ``<path>!<entry>``), and
    the archive (``None`` for a plain file) stays open throughout. A zip is
    checked whole before anything is read: entries named outside the archive
    (``../x``, ``/etc/x``), and absurd sizes or compression ratios, refuse the file.
    """
    label = os.fspath(path)
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise FormatError(f"cannot open: {exc.strerror or exc}", file=label) from exc
    with stream:
        if stream.read(4) not in _ZIP_MAGIC:
            stream.seek(0)
            yield _skip_bom(stream), label, None
            return
        stream.seek(0)
        try:
            archive = zipfile.ZipFile(stream)
        except (*READ_ERRORS, ValueError) as exc:
            raise FormatError(f"not a readable zip archive: {first_line(exc)}", file=label) from exc
        with archive:
            _check_entries(archive, label)
            for entry in _export_entries(archive, label):
                inner = f"{label}!{entry.filename}"
                try:
                    member = archive.open(entry)
                except (*READ_ERRORS, ValueError) as exc:
                    raise FormatError(f"cannot read {entry.filename}: {first_line(exc)}", file=label) from exc
                with member:
                    try:
                        _skip_bom(member)  # an entry of a file on disk can seek back to 0
                    except (*READ_ERRORS, ValueError) as exc:
                        raise FormatError(f"cannot read {entry.filename}: {first_line(exc)}", file=label) from exc
                    yield member, inner, archive


def json_array(stream: IO[bytes], label: str, what: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, element)`` for each element of a top-level JSON array, one at a time.

    Each element is decoded whole by the ``json`` module's C scanner (see
    :mod:`._scan`), with a depth limit; ``what`` names the elements in errors
    (``conversations[3]``).
    """
    scanner = JsonScanner(stream)
    count = 0
    try:
        if scanner.peek() not in ("[", ""):
            raise FormatError(f"expected a JSON array of {what}", file=label)
        for count in scanner.items():
            element = scanner.value()
            if too_deep(element, MAX_DEPTH - 1):
                raise ScanError("too deep", deep=True)
            yield count, element
        count += 1
        scanner.finish()
    except ScanError as exc:
        if exc.deep:
            raise FormatError(f"{what}[{count}]: nested deeper than {MAX_DEPTH} levels", file=label) from exc
        raise FormatError(f"invalid JSON in or after {what}[{count}]: {exc}", file=label) from exc
    except UnicodeDecodeError as exc:
        raise FormatError(f"{what}[{count}]: text is not valid UTF-8 ({exc.reason})", file=label) from exc
    except READ_ERRORS as exc:
        raise FormatError(f"cannot read past {what}[{count}]: {first_line(exc)}", file=label) from exc


def json_object_array(stream: IO[bytes], label: str, key: str, what: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, element)`` for each element of the array under a top-level object's ``key``, one at a time.

    For exports that wrap their list (``{"conversations": [...]}``): like
    :func:`json_array`, memory holds one element. Other top-level keys are
    skipped; a missing or non-array ``key`` raises naming it.
    """
    count = 0
    builder: Any = None
    depth = 0
    found = False
    item_prefix = f"{key}.item"
    try:
        for prefix, event, value in ijson.parse(stream, use_float=True):
            if builder is not None:
                builder.event(event, value)
                if event in _STARTS:
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise FormatError(f"{what}[{count}]: nested deeper than {MAX_DEPTH} levels", file=label)
                elif event in _ENDS:
                    depth -= 1
                    if depth == 0:
                        yield count, builder.value
                        count, builder = count + 1, None
                continue
            if prefix == "" and event not in ("start_map", "map_key", "end_map"):
                raise FormatError(f"expected a JSON object with {key!r}", file=label)
            if prefix == key and event not in ("start_array", "end_array"):
                raise FormatError(f"{key}: expected a JSON array of {what}", file=label)
            if prefix == key and event == "start_array":
                found = True
            elif prefix == item_prefix and event in _STARTS:
                builder, depth = ObjectBuilder(), 1
                builder.event(event, value)
            elif prefix == item_prefix and event not in _ENDS:
                yield count, value
                count += 1
    except ijson.JSONError as exc:
        raise FormatError(f"invalid JSON in or after {what}[{count}]: {first_line(exc)}", file=label) from exc
    except UnicodeDecodeError as exc:
        raise FormatError(f"{what}[{count}]: text is not valid UTF-8 ({exc.reason})", file=label) from exc
    except READ_ERRORS as exc:
        raise FormatError(f"cannot read past {what}[{count}]: {first_line(exc)}", file=label) from exc
    if not found:
        raise FormatError(f"no {key!r} list: not this format", file=label)


def load_json(path: PathLike, label: str) -> Any:
    """A whole JSON file, for formats that hold one conversation; errors name the line and column.

    The standard ``json`` module keeps what the C streaming parser cannot (lone
    surrogates, which ``json.dump`` writes as ``\\udxxx`` escapes).
    """
    with open_plain(path) as stream:
        try:
            raw = stream.read()
        except OSError as exc:
            raise FormatError(f"cannot read: {exc.strerror or exc}", file=label) from exc
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=label) from exc
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc.msg}", file=label, line=exc.lineno, column=exc.colno) from exc
    except RecursionError as exc:
        raise FormatError(f"nested deeper than {MAX_DEPTH} levels", file=label) from exc
    if too_deep(value):
        raise FormatError(f"nested deeper than {MAX_DEPTH} levels", file=label)
    return value


def _read_line(stream: IO[bytes]) -> tuple[bytes, bool]:
    """One line, or its first MAX_LINE_BYTES and the rest skipped; says whether it was cut."""
    line = stream.readline(MAX_LINE_BYTES + 1)
    if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
        return line, False
    while True:
        rest = stream.readline(MAX_LINE_BYTES)
        if not rest or rest.endswith(b"\n"):
            return line, True


def json_lines(stream: IO[bytes], label: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, value)`` per non-blank line; for a line that is not JSON the value is a FormatError."""
    number = 0
    while True:
        try:
            raw, cut = _read_line(stream)
        except READ_ERRORS as exc:
            raise FormatError(f"cannot read past line {number}: {first_line(exc)}", file=label) from exc
        if not raw:
            return
        number += 1
        if cut:
            yield number, FormatError(f"line longer than {MAX_LINE_BYTES} bytes", file=label, line=number)
            continue
        if not raw.strip():
            continue
        yield number, _parse_line(raw, label, number)


def _parse_line(raw: bytes, label: str, number: int) -> Any:
    try:
        value = json.loads(raw.rstrip(b"\r\n").decode("utf-8"))
    except UnicodeDecodeError as exc:
        return FormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=label, line=number)
    except json.JSONDecodeError as exc:
        return FormatError(f"invalid JSON: {exc.msg}", file=label, line=number, column=exc.colno)
    except RecursionError:
        return FormatError(f"nested deeper than {MAX_DEPTH} levels", file=label, line=number)
    if too_deep(value):
        return FormatError(f"nested deeper than {MAX_DEPTH} levels", file=label, line=number)
    return value
