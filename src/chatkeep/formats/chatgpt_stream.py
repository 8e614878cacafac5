"""A ChatGPT conversation read as it streams by, one node of its ``mapping`` at a time.

One conversation can be most of an export (a 200 MB chat). Its members are
decoded one by one, and its ``mapping`` a node at a time into a
:class:`Nodes`, which keeps each node's place in the tree (parent and
children) in memory and, once the mapping passes :data:`SPILL_CHARS`, the
nodes themselves in a temporary file (their JSON text, decoded again when
the tree is walked: cheaper than pickling them). A conversation smaller than
that never touches the disk, and is decoded in one go (:meth:`.JsonScanner.small_value`).
"""

from __future__ import annotations

import json
import tempfile
import weakref
from typing import IO, Any

from ._scan import JsonScanner, ScanError
from ._source import MAX_DEPTH, too_deep

__all__ = ["SPILL_CHARS", "WHOLE_CHARS", "Nodes", "read_conversation"]

#: How much of one mapping's JSON text is held as objects before its nodes go to a temporary file.
SPILL_CHARS = 2**20
#: Conversations whose JSON text is at most this long (and at most SPILL_CHARS) are decoded in one go.
WHOLE_CHARS = 256 * 2**10


class Nodes:
    """A conversation's ``mapping``: every node's value by key, and the dict nodes' parent and children."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}  # the node, or once spilled its offset in the file
        #: Each dict node's ``(parent, children)``: what walking the tree needs, always in memory.
        self.shape: dict[str, tuple[Any, Any]] = {}
        self._file: IO[bytes] | None = None
        self._end = 0  # where the next spilled node goes
        self._writing = True  # the file is positioned at _end (nothing was read since the last write)

    @classmethod
    def of(cls, mapping: dict[str, Any]) -> Nodes:
        """The nodes of a mapping decoded whole (held in memory)."""
        nodes = cls()
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
            self._file = tempfile.TemporaryFile(prefix="chatkeep-import-")
            weakref.finalize(self, self._file.close)  # the file goes with the last reference to the nodes
            for held, value in self._values.items():
                self._values[held] = self._spill(json.dumps(value))
        self._values[key] = node if self._file is None else self._spill(text)

    def _spill(self, text: str) -> tuple[int, int]:
        assert self._file is not None
        data = text.encode("utf-8", "surrogatepass")
        if not self._writing:  # a seek per write would flush the file's buffer every time
            self._file.seek(self._end)
            self._writing = True
        self._file.write(data)
        offset, self._end = self._end, self._end + len(data)
        return offset, len(data)

    def keys(self) -> list[str]:
        return list(self._values)

    def __getitem__(self, key: str) -> Any:
        value = self._values[key]
        if self._file is None:
            return value
        offset, size = value
        self._writing = False
        self._file.seek(offset)
        return json.loads(self._file.read(size).decode("utf-8", "surrogatepass"))

    def whole(self) -> dict[str, Any]:
        """The mapping as one dict (for hashing a conversation that has no id)."""
        return {key: self[key] for key in self._values}


def read_conversation(scanner: JsonScanner, levels: int) -> Any:
    """The value that starts here; an object comes with its ``mapping`` (when an object) as :class:`Nodes`.

    ``levels``: how deep the value sits in the file (1: the file is this
    value), for the depth limit. Raises :class:`ScanError`.
    """
    if scanner.peek() != "{":
        return _limited(*scanner.value_and_text(), MAX_DEPTH - levels + 1)
    small = scanner.small_value(min(WHOLE_CHARS, SPILL_CHARS))
    if small is not None:
        item = _limited(*small, MAX_DEPTH - levels + 1)
        if isinstance(item.get("mapping"), dict):
            item["mapping"] = Nodes.of(item["mapping"])
        return item
    item = {}
    for key in scanner.members():
        if key != "mapping" or scanner.peek() != "{":
            item[key] = _limited(*scanner.value_and_text(), MAX_DEPTH - levels)
            continue
        nodes = item[key] = Nodes()
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
