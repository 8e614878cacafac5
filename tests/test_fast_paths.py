"""The fast paths of appending and reading (issue 17) give exactly what the plain paths gave.

Reading parses stored JSON with msgspec, and falls back to ``json`` where
msgspec refuses a text; a conversation that never branched is read without a
walk; ASCII text is split into search words by a simpler pattern; times are
formatted with ``isoformat``; messages are copied without ``copy.deepcopy``.
Each is checked here against the slower way it replaced.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatkeep import MessageError, open_store
from chatkeep.messages import validate_message
from chatkeep.store import SQLiteStore
from chatkeep.store.base import format_time
from chatkeep.store.rows import ID_SEPARATOR, branch_of, branch_positions, parse_json
from chatkeep.store.search import _patterns, fold, search_words


@pytest.fixture(params=["sqlite", "postgres"])
def db_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    target = request.getfixturevalue("postgres_url") if request.param == "postgres" else tmp_path / "chat.db"
    opened = open_store(target)
    yield opened
    opened.close()


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0), NaN equal to NaN, -0.0 apart from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return bool(a == b)


TRICKY = [
    "123456789012345678901234567890",  # beyond 64 bits: a float in some fast parsers
    "-99999999999999999999",
    "18446744073709551616",
    "9223372036854775807",
    "[NaN, Infinity, -Infinity]",  # json.dumps writes these; strict parsers refuse them
    "1E400",
    '"\\ud800"',  # an escaped lone surrogate, as dumps() writes one
    '{"a": 1, "a": 2}',  # a repeated key keeps its last value
    "-0.0",
    "1e-400",
    "0.1",
    '"\\u0000 caf\\u00e9 \\ud83d\\ude00"',
    " [1, {\"x\": [true, false, null]}] ",
    "[" * 200 + "]" * 200,
]


@pytest.mark.parametrize("text", TRICKY)
def test_parse_json_reads_every_text_as_json_loads_does(text: str) -> None:
    assert same(parse_json(text), json.loads(text))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_parse_json_agrees_with_json_loads_on_what_chatkeep_writes(value: Any) -> None:
    for text in (json.dumps(value, ensure_ascii=False, separators=(",", ":")), json.dumps(value)):
        assert same(parse_json(text), json.loads(text))


def test_a_message_only_json_can_read_comes_back_exactly(db_store: SQLiteStore) -> None:
    message = {"role": "user", "content": "hi \ud800", "x_big": 123456789012345678901234567890,
               "x_float": float("nan"), "x_inf": float("-inf"), "x_neg_zero": -0.0}
    conv = db_store.new_conversation()
    conv.append(message)
    assert same(conv.messages[0], message)
    assert same(conv.history()[0].message, message)


def rows(*links: tuple[str, str | None]) -> list[tuple[str, str | None, str]]:
    return [(message_id, parent, f"body of {message_id}") for message_id, parent in links]


def test_branch_of_a_conversation_that_never_branched_is_all_its_rows() -> None:
    chain = rows(("a", None), ("b", "a"), ("c", "b"))
    assert branch_of(chain, "c") == chain


def test_branch_of_a_branched_conversation_follows_the_parents() -> None:
    tree = rows(("a", None), ("b", "a"), ("c", "b"), ("b2", "a"), ("s", "c"))  # an edit of b, a summary under c
    assert [row[0] for row in branch_of(tree, "c")] == ["a", "b", "c"]
    assert [row[0] for row in branch_of(tree, "b2")] == ["a", "b2"]
    assert [row[0] for row in branch_of(list(reversed(tree)), "c")] == ["a", "b", "c"]  # any stored order
    assert branch_of(tree, None) == [] and branch_of([], "a") == []


def test_branch_of_stops_on_a_damaged_cycle() -> None:
    assert len(branch_of(rows(("a", "b"), ("b", "a")), "a")) == 2  # no endless walk


def test_messages_leave_out_what_is_not_on_the_branch(db_store: SQLiteStore) -> None:
    conv = db_store.new_conversation()
    first = conv.append({"role": "user", "content": "one"})
    second = conv.append({"role": "assistant", "content": "two"})
    conv.append({"role": "user", "content": "three"})
    db_store.append(conv.id, {"role": "system", "content": "a summary"}, parent_id=second.id, move_head=False,
                    kind="summary")
    assert conv.messages == [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
                             {"role": "user", "content": "three"}]
    conv.edit(second.id, {"role": "assistant", "content": "two, again"})
    assert conv.messages == [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two, again"}]
    conv.set_head(first.id)
    assert conv.messages == [{"role": "user", "content": "one"}]


def joined(*links: tuple[str, str | None]) -> tuple[str, str, int]:
    """Ids and parents as the SQLite branch scan joins them."""
    return (ID_SEPARATOR.join(row_id for row_id, _ in links), ID_SEPARATOR.join(parent or "" for _, parent in links),
            len(links))


def test_branch_positions_of_a_conversation_that_never_branched_are_every_row() -> None:
    assert list(branch_positions(*joined(("a", None), ("b", "a"), ("c", "b")), "c") or []) == [0, 1, 2]
    assert list(branch_positions(*joined(("a", None)), "a") or []) == [0]


@pytest.mark.parametrize("links, head, path", [
    ((("a", None), ("b", "a"), ("c", "b"), ("b2", "a"), ("s", "c")), "c", [0, 1, 2]),  # an edit, a summary
    ((("a", None), ("b", "a"), ("c", "b"), ("b2", "a")), "b2", [0, 3]),
    ((("a", None), ("b", "a"), ("c", "b")), "b", [0, 1]),  # the head moved back: not the last row
    ((("a", None), ("b", None), ("c", "b")), "c", [1, 2]),  # two roots
    ((("a", None), ("b", "a"), ("c", "a")), "c", [0, 2]),  # each row's parent could be the one before but is not
    ((("c", "b"), ("a", None), ("b", "a")), "c", [1, 2, 0]),  # rows in any order: the parents decide
])
def test_branch_positions_of_a_branched_conversation_follow_the_parents(
        links: tuple[tuple[str, str | None], ...], head: str, path: list[int]) -> None:
    assert list(branch_positions(*joined(*links), head) or []) == path


def test_branch_positions_refuse_ids_that_hold_the_separator() -> None:
    ids, parents, count = joined(("a" + ID_SEPARATOR + "x", None), ("b", "a" + ID_SEPARATOR + "x"))
    assert branch_positions(ids, parents, count, "b") is None


def test_a_long_conversation_reads_back_the_bodies_it_stored(tmp_path: Path) -> None:
    """What the one-scan read returns is what the row-by-row read returns, on every kind of branch."""
    with open_store(tmp_path / "chat.db") as store:
        conv = store.new_conversation()
        sent = [conv.append({"role": "user" if i % 2 else "assistant", "content": f"message {i} \u00e9\ud800",
                             "x_float": float("nan") if i == 7 else i / 3}) for i in range(40)]
        assert all(same(a, b) for a, b in zip(conv.messages, [m.message for m in conv.history()], strict=True))
        conv.edit(sent[20].id, {"role": "assistant", "content": "edited"})
        store.append(conv.id, {"role": "system", "content": "a summary"}, parent_id=sent[10].id, move_head=False,
                     kind="summary")
        assert all(same(a, b) for a, b in zip(conv.messages, [m.message for m in conv.history()], strict=True))
        assert len(conv.messages) == 21
        conv.set_head(sent[5].id)
        assert [m["content"] for m in conv.messages] == [f"message {i} \u00e9\ud800" for i in range(6)]


def test_a_branch_too_long_for_one_sqlite_string_is_still_read(tmp_path: Path) -> None:
    with open_store(tmp_path / "chat.db") as store:
        conv = store.new_conversation()
        for i in range(30):
            conv.append({"role": "user", "content": f"message {i} " + "x" * 100})
        store._db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 2_000)  # the joined bodies (~4 KB) are too long now
        assert [m["content"] for m in conv.messages] == [f"message {i} " + "x" * 100 for i in range(30)]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
def test_ascii_text_has_the_words_the_general_pattern_finds(text: str) -> None:
    assert search_words(text) == _patterns().word.findall(fold(text))


def test_a_long_ascii_word_is_cut_as_before() -> None:
    text = "a" * 1_234 + " B2"
    assert search_words(text) == _patterns().word.findall(fold(text)) == ["a" * 500, "a" * 500, "a" * 234, "b2"]


@pytest.mark.parametrize("moment", [
    datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),  # no microseconds: still six digits
    datetime(68, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc),  # a year with fewer than four digits
    datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=5, minutes=30))),
])
def test_times_are_written_as_before(moment: datetime) -> None:
    utc = moment.astimezone(timezone.utc)
    assert format_time(moment) == f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"


def test_a_stored_message_is_a_copy_of_what_was_given() -> None:
    parts = [{"type": "text", "text": "hi"}]
    given_message = {"role": "user", "content": parts, "x_extra": {"nested": [1, 2]}}
    copied = validate_message(given_message)
    parts[0]["text"] = "changed"
    given_message["x_extra"]["nested"].append(3)  # type: ignore[index]
    assert copied == {"role": "user", "content": [{"type": "text", "text": "hi"}], "x_extra": {"nested": [1, 2]}}


def test_a_message_that_contains_itself_is_refused() -> None:
    looped: dict[str, Any] = {"role": "user", "content": "hi"}
    looped["x_self"] = looped
    with pytest.raises(MessageError, match="nested too deeply"):
        validate_message(looped)
