"""A JSON text read from a byte stream a piece at a time, its values decoded by the ``json`` module's C scanner.

ijson's events cost a Python call each, and folding them back into objects
another few: on a ChatGPT export that was seven times ``json.load``'s time.
Here Python runs once per value the caller asks for (a conversation, or one
node of a conversation's ``mapping``), and the C scanner does the rest, so
memory holds that value and one piece of the file, however large the file.

A value is decoded only once the buffer holds all of it: the scanner fails
on a value the buffer cuts short (a number is taken only when something
that cannot continue it follows), and then more of the file is read, twice as much each time, so
a value of any size costs at most about three decodes of itself.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["JsonScanner", "ScanError"]

_CHUNK = 256 * 2**10
_MOST = 64 * 2**20  # the largest single read, however long a value goes on
_SPACE = re.compile(r"[ \t\n\r]*")
# An object key without escapes or control characters (its text is its value), and its colon.
_PLAIN_KEY = re.compile(r'[ \t\n\r]*"([^"\\\x00-\x1f]*)"[ \t\n\r]*:')
_AFTER_MEMBER = re.compile(r"[ \t\n\r]*([,}])")
# How close to the end of the buffer an error must be to mean "cut short" (a cut \uXXXX escape pair is 12).
_CUT_MARGIN = 16


class ScanError(ValueError):
    """Invalid JSON, or a value nested deeper than the C scanner's recursion allows."""

    def __init__(self, reason: str, *, eof: bool = False, deep: bool = False) -> None:
        super().__init__(reason)
        self.eof = eof
        self.deep = deep


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"parse error: {name} is not JSON")  # NaN and Infinity: Python's extension, not JSON


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


class JsonScanner:
    """Walks a JSON text: the structure around the values by hand, each value by :meth:`value`."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._pos = 0
        self._dropped = 0  # characters let go from the buffer's front
        self._eof = False
        self._broken: Exception | None = None  # met reading ahead, raised once the reading gets there

    @property
    def offset(self) -> int:
        """How many characters of the text have been read past."""
        return self._dropped + self._pos

    def _more(self, size: int = _CHUNK) -> bool:
        """Read up to ``size`` more bytes onto the buffer; ``False`` at the end of the file."""
        if self._broken is not None:
            raise self._broken
        if self._eof:
            return False
        data = self._stream.read(size)
        pending = self._decoder.getstate()[0]
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            # The text before the bad bytes is read; the error is raised when the reading gets to them.
            text = (pending + data)[:exc.start].decode("utf-8")
            self._broken = exc
        self._eof = not data
        self._buffer = self._buffer[self._pos:] + text
        self._dropped += self._pos
        self._pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space (consumed by nothing); ``""`` at the end."""
        while True:
            end = _SPACE.match(self._buffer, self._pos).end()  # type: ignore[union-attr]
            self._pos = end
            if end < len(self._buffer):
                return self._buffer[end]
            if not self._more():
                return ""

    def take(self, expected: str, what: str) -> str:
        """Consume the next character, one of ``expected``; else raise naming ``what`` was expected."""
        char = self.peek()
        if not char:
            raise ScanError("parse error: premature EOF", eof=True)
        if char not in expected:
            raise ScanError(f"parse error: expected {what}, found {char!r}")
        self._pos += 1
        return char

    def value(self) -> Any:
        """Decode the next value whole."""
        return self.value_and_text()[0]

    def value_and_text(self) -> tuple[Any, str]:
        """Decode the next value whole; with it, its text in the file."""
        self.peek()
        size = _CHUNK
        while True:
            buffer, pos = self._buffer, self._pos
            try:
                value, end = _DECODER.raw_decode(buffer, pos)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(buffer) - _CUT_MARGIN
                if not cut or not self._more(size):
                    raise ScanError("parse error: premature EOF" if cut else f"parse error: {exc.msg}",
                                    eof=cut) from exc
                size = min(size * 2, _MOST)
                continue
            except RecursionError as exc:
                raise ScanError("nested too deeply", deep=True) from exc
            except ValueError as exc:  # NaN or Infinity
                raise ScanError(str(exc)) from exc
            # A number is whole only when what follows cannot continue it ("1" of "1.5", "2" of "2e3").
            whole = end < len(buffer) and not (buffer[end] in ".eE" and isinstance(value, (int, float)))
            if whole or not self._more(size):
                self._pos = end
                return value, buffer[pos:end]
            size = min(size * 2, _MOST)

    def small_value(self, limit: int) -> tuple[Any, str] | None:
        """The next value and its text when its text is at most ``limit`` characters; else ``None``, nothing read.

        One decode of a whole small value, where walking its members would
        cost a Python call each. A value that does not fit (or does not
        decode) costs a decode of at most about twice ``limit`` characters:
        its caller walks it instead, and meets its errors there.
        """
        if limit <= 0:
            return None
        self.peek()
        ahead = len(self._buffer) - self._pos
        if ahead < limit and not self._eof and self._broken is None:
            try:
                self._more(2 * limit - ahead)  # twice: the next few values fit too, for one copy of the buffer
            except Exception as exc:  # raised again once the walk reads on to it (see _more)
                self._broken = exc
        buffer, pos = self._buffer, self._pos
        if len(buffer) - pos > 2 * limit + _CHUNK:  # a buffer grown for a huge value: decode only a window of it
            buffer, pos = buffer[pos:pos + limit], 0
        try:
            value, end = _DECODER.raw_decode(buffer, pos)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
            return None
        if end - pos > limit or (end == len(buffer) and isinstance(value, (int, float))):
            return None  # too long; or a number at the end of what was read, which may go on
        self._pos += end - pos
        return value, buffer[pos:end]

    def key(self) -> str:
        """Decode the next object key (a string)."""
        if self.peek() != '"':
            raise ScanError("parse error: expected an object key" if self.peek() else "parse error: premature EOF",
                            eof=not self.peek())
        key = self.value()
        self.take(":", "':'")
        return str(key)

    def members(self) -> Iterator[str]:
        """Each key of the object that starts here; the caller reads (or skips) its value before the next."""
        self.take("{", "an object")
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            # Most keys (a node's uuid) have no escapes: one match reads the key and its colon. Else key() does.
            found = _PLAIN_KEY.match(self._buffer, self._pos)
            if found is not None:
                self._pos = found.end()
                yield found[1]
            else:
                yield self.key()
            found = _AFTER_MEMBER.match(self._buffer, self._pos)
            if found is not None:
                self._pos = found.end()
                if found[1] == "}":
                    return
            elif self.take(",}", "',' or '}'") == "}":
                return

    def items(self) -> Iterator[int]:
        """Each index of the array that starts here; the caller reads its element before the next."""
        self.take("[", "an array")
        if self.peek() == "]":
            self._pos += 1
            return
        index = 0
        while True:
            yield index
            index += 1
            if self.take(",]", "',' or ']'") == "]":
                return

    def finish(self) -> None:
        """Raise unless only white space is left."""
        if self.peek():
            raise ScanError("parse error: trailing garbage")
