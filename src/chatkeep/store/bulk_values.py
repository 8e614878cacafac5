"""Values an import makes for every message, made cheaply: new ids, and JSON text.

An import of 100,000 messages makes 100,000 ids and 200,000 JSON texts; the
one-at-a-time helpers of :mod:`.base` cost more there than the rows' own
SQL. The results are the same: ids of :func:`.base.new_id`'s form, text
equal to :func:`.base.dumps`'s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from .base import ULID_DIGITS, ULID_PAIRS, dumps

__all__ = ["json_text", "new_ids"]


def _base32(value: int, digits: int) -> str:
    return "".join(ULID_DIGITS[(value >> shift) & 31] for shift in range(5 * (digits - 1), -1, -5))


def new_ids(count: int) -> list[str]:
    """``count`` new message ids: lower-case ULIDs (as :func:`.base.new_id` makes), increasing.

    One timestamp, and a random 80-bit part counted up from a random start,
    as a monotonic ULID generator does: ids made together sort in the order
    they were made. Consecutive values share all but their last two digits,
    so each id costs a lookup instead of a ULID object.
    """
    stamp = _base32(time.time_ns() // 1_000_000, 10)
    start = int.from_bytes(os.urandom(10), "big") >> 1  # half the range: counting up never carries into the time
    ids: list[str] = []
    head, high = "", -1
    for value in range(start, start + max(count, 0)):
        if value >> 10 != high:
            high = value >> 10
            head = stamp + _base32(high, 14)
        ids.append(head + ULID_PAIRS[value & 1023])
    return ids


_SCALARS = frozenset((str, int, bool, type(None)))


def _floatless(value: Any) -> bool:
    """Whether ``value`` is plain dicts (string keys), lists, strings, integers, booleans and ``None``."""
    kind = type(value)
    if kind is dict:
        for key, child in value.items():
            if type(key) is not str or (type(child) not in _SCALARS and not _floatless(child)):
                return False
        return True
    if kind is list:
        for child in value:
            if type(child) not in _SCALARS and not _floatless(child):
                return False
        return True
    return kind in _SCALARS


@lru_cache(maxsize=1)
def _encode() -> Callable[[Any], bytes]:
    import msgspec  # here, not at the top: commands that import nothing never load it

    return msgspec.json.Encoder().encode


def json_text(value: Any) -> str:
    """``dumps(value)``, the same text, made several times faster for the values messages are made of.

    msgspec writes what ``json`` writes for strings, integers, booleans, null,
    objects and arrays; not for floats (``1e16`` against ``1e+16``, NaN as
    null) nor a lone surrogate (which it refuses), so those go to ``dumps``.
    """
    try:
        if _floatless(value):
            return _encode()(value).decode("utf-8")
    except (RecursionError, UnicodeEncodeError):
        pass
    return dumps(value)
