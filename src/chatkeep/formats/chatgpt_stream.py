"""A ChatGPT conversation read as it streams by, one node of its ``mapping`` at a time.

One conversation can be most of an export (a 200 MB chat). Its members are
decoded one by one, and its ``mapping`` a node at a time into a
:class:`Nodes`, which keeps each node's place in the tree (parent and
children) in memory and, once the mapping passes :data:`SPILL_CHARS`, the
nodes themselves in a temporary file. A spilled node is written twice: what
the importer makes of it (its ``prepare``, run as the node is decoded, so the
tree walk reads it back with ``marshal`` instead of decoding the node's JSON a
second time), and its JSON text, decoded again only for a conversation with no
id (whose key hashes it whole). A conversation smaller than that never touches
the disk, and is decoded in one go (:meth:`.JsonScanner.small_value`).
"""

from __future__ import annotations

import json
import marshal
import tempfile
import weakref
from collections.abc import Callable
from typing import IO, Any

from ._scan import JsonScanner, ScanError
from ._source import MAX_DEPTH, too_deep

__all__ = ["SPILL_CHARS", "WHOLE_CHARS", "Nodes", "Prepare", "read_conversation"]

#: How much of one mapping's JSON text is held as objects before its nodes go to a temporary file.
SPILL_CHARS = 2**20
#: Conversations whose JSON text is at most this long (and at most SPILL_CHARS) are decoded in one go.
WHOLE_CHARS = 256 * 2**10
#: The spill file's write buffer: a node is a few KB, and a write call per node cost more than the data.
_BUFFER = 256 * 2**10

#: What an importer makes of one node, given its key and value: a value ``marshal`` can write (plain
#: dicts, lists, strings, numbers, booleans, None), and the same for the same node whenever it runs.
Prepare = Callable[[str, Any], Any]


def _unprepared(key: str, node: Any) -> Any:
    return node


class Nodes:
    """A conversation's ``mapping``: every node's value by key, and the dict nodes' parent and children.

    ``prepare`` is what the importer makes of each node (:meth:`prepared`);
    for a spilled mapping it runs as the node is read, and only its result,
    not the node, is read back on the walk.
    """

    def __init__(self, prepare: Prepare = _unprepared) -> None:
        self._prepare = prepare
        # The node; once spilled, the offset and size of its JSON text in the file, and of its prepared
        # value (size -1: prepare failed on it, and runs again on the walk, from the text).
        self._values: dict[str, Any] = {}
        #: Each dict node's ``(parent, children)``: what walking the tree needs, always in memory.
        self.shape: dict[str, tuple[Any, Any]] = {}
        self._file: IO[bytes] | None = None
        self._end = 0  # where the next spilled node goes
        self._writing = True  # the file is positioned at _end (nothing was read since the last write)

    @classmethod
    def of(cls, mapping: dict[str, Any], prepare: Prepare = _unprepared) -> Nodes:
        """The nodes of a mapping decoded whole (held in memory)."""
        nodes = cls(prepare)
        nodes._values = mapping
        nodes.shape = {key: (node.get("parent"), node.get("children"))
                       for key, node in mapping.items() if isinstance(node, dict)}
        return nodes

    @property
    def spilled(self) -> bool:
        """Whether the nodes are in a temporary file (the mapping was large)."""
        return self._file is not None

    def add(self, key: str, node: Any, text: str, chars: int) -> None:
        """Keep ``node`` (read from ``text``) under ``key``, a repeated key replacing it; ``chars``: the mapping's
        text read so far."""
        if isinstance(node, dict):
            self.shape[key] = (node.get("parent"), node.get("children"))
        else:
            self.shape.pop(key, None)
        if self._file is None and chars > SPILL_CHARS:
            self._file = tempfile.TemporaryFile(prefix="chatkeep-import-", buffering=_BUFFER)
            weakref.finalize(self, self._file.close)  # the file goes with the last reference to the nodes
            for held, value in self._values.items():
                self._values[held] = self._spill(held, value, json.dumps(value))
        self._values[key] = node if self._file is None else self._spill(key, node, text)

    def _spill(self, key: str, node: Any, text: str) -> tuple[int, int, int, int]:
        """Write the node's text and its prepared value; return where each is and its size (-1: not prepared)."""
        try:
            prepared = marshal.dumps(self._prepare(key, node))
        except Exception:  # noqa: BLE001 - prepared again on the walk, where its error (if any) belongs
            prepared = b""
        data = text.encode("utf-8", "surrogatepass")
        return self._write(data), len(data), self._write(prepared), len(prepared) if prepared else -1

    def _write(self, data: bytes) -> int:
        assert self._file is not None
        if not self._writing:  # a seek per write would flush the file's buffer every time
            self._file.seek(self._end)
            self._writing = True
        self._file.write(data)
        offset, self._end = self._end, self._end + len(data)
        return offset

    def _read(self, offset: int, size: int) -> bytes:
        assert self._file is not None
        self._writing = False
        self._file.seek(offset)  # the walk reads mostly in the order written: most seeks stay in the buffer
        return self._file.read(size)

    def keys(self) -> list[str]:
        return list(self._values)

    def __getitem__(self, key: str) -> Any:
        value = self._values[key]
        if self._file is None:
            return value
        offset, size, _, _ = value
        return json.loads(self._read(offset, size).decode("utf-8", "surrogatepass"))

    def prepared(self, key: str) -> Any:
        """``prepare(key, node)`` for the node under ``key``: read back when spilled, else made now."""
        value = self._values[key]
        if self._file is None:
            return self._prepare(key, value)
        _, _, offset, size = value
        if size < 0:
            return self._prepare(key, self[key])
        return marshal.loads(self._read(offset, size))

    def whole(self) -> dict[str, Any]:
        """The mapping as one dict (for hashing a conversation that has no id)."""
        return {key: self[key] for key in self._values}


def read_conversation(scanner: JsonScanner, levels: int, prepare: Prepare = _unprepared) -> Any:
    """The value that starts here; an object comes with its ``mapping`` (when an object) as :class:`Nodes`.

    ``levels``: how deep the value sits in the file (1: the file is this
    value), for the depth limit; ``prepare``: the :class:`Nodes`' own. Raises
    :class:`ScanError`.
    """
    if scanner.peek() != "{":
        return _limited(*scanner.value_and_text(), MAX_DEPTH - levels + 1)
    small = scanner.small_value(min(WHOLE_CHARS, SPILL_CHARS))
    if small is not None:
        item = _limited(*small, MAX_DEPTH - levels + 1)
        if isinstance(item.get("mapping"), dict):
            item["mapping"] = Nodes.of(item["mapping"], prepare)
        return item
    item = {}
    for key in scanner.members():
        if key != "mapping" or scanner.peek() != "{":
            item[key] = _limited(*scanner.value_and_text(), MAX_DEPTH - levels)
            continue
        nodes = item[key] = Nodes(prepare)
        start = scanner.offset
        for node_key in scanner.members():
            node, text = scanner.value_and_text()
            nodes.add(node_key, _limited(node, text, MAX_DEPTH - levels - 1), text, scanner.offset - start)
    return item


def _limited(value: Any, text: str, limit: int) -> Any:
    """``value`` (decoded from ``text``) unless it nests deeper than ``limit``."""
    # Each level is an opening bracket in the text: with no more brackets than levels allowed, nothing to walk.
    if (text.count("{") + text.count("[") > limit) and too_deep(value, limit):
        raise ScanError("too deep", deep=True)
    return value
