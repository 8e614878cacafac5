"""Search, on both databases: any character a user can type is found, cost stays bounded, the CLI takes any query.

Regression tests for issue 14: ``☕`` found nothing and a Chinese or Japanese
sentence was one word; a message with a word 20,000 times took seconds to
search and a 10 MB one never answered; ``chatkeep search -doing`` was a usage
error.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatkeep import open_store
from chatkeep.store.bulk import ImportConversation, ImportMessage
from clitools import environment, run
from legacy import sqlite_before
from pg import admin


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the store is: a SQLite file, or a PostgreSQL URL with a schema of its own."""
    return str(request.getfixturevalue("postgres_url") if request.param == "postgres" else tmp_path / "chat.db")


@pytest.fixture
def store(target: str) -> Iterator[Any]:
    opened = open_store(target)
    yield opened
    opened.close()


def texts(store: Any, *contents: str) -> None:
    conv = store.new_conversation()
    for content in contents:
        conv.append({"role": "user", "content": content})


def found(store: Any, query: str, **filters: Any) -> list[str]:
    return sorted(hit.message.message["content"] for hit in store.search(query, limit=100, **filters))


# -- every character a user can type ------------------------------------------------


def test_emoji_and_symbols_are_found(store: Any) -> None:
    texts(store, "Coffee time ☕️", "tea, no ☕ today", "I ❤️ Paris", "price: 5€", "C++ and a=b", "plain words")
    assert found(store, "☕") == found(store, "☕️") == ["Coffee time ☕️", "tea, no ☕ today"]
    assert found(store, "❤") == ["I ❤️ Paris"]
    assert found(store, "€") == found(store, "5€") == ["price: 5€"]
    assert found(store, "c++") == found(store, "a=b") == ["C++ and a=b"]
    assert found(store, "☕ -tea") == ["Coffee time ☕️"]
    assert store.search("☕ today")[0].snippet() == "tea, no [☕] [today]"


def test_a_word_in_the_middle_of_a_cjk_sentence_is_found(store: Any) -> None:
    japanese, chinese, korean = "私は東京都に住んでいます。", "我每天早上喝咖啡和茶", "내일 서울에서 만나요"
    texts(store, japanese, chinese, korean, "京東 is elsewhere")
    assert found(store, "住んで") == found(store, "東京") == found(store, "京都") == [japanese]
    assert found(store, "咖啡") == found(store, "喝咖啡") == [chinese]
    assert found(store, "서울") == [korean]
    assert found(store, "東京 -咖啡") == [japanese]
    assert found(store, '"京東"') == ["京東 is elsewhere"]  # the characters in that order
    assert store.search("住んで")[0].snippet() == "私は東京都に[住んで]います。"
    assert store.search("咖啡")[0].snippet() == "我每天早上喝[咖啡]和茶"


def test_case_width_and_accents_are_folded_alike_everywhere(store: Any) -> None:
    texts(store, "Un café à Paris", "ＦＵＬＬＷＩＤＴＨ letters", "Straße")
    assert found(store, "CAFE") == found(store, "Café") == ["Un café à Paris"]
    assert found(store, "fullwidth") == ["ＦＵＬＬＷＩＤＴＨ letters"]
    assert found(store, "strasse") == ["Straße"]


# -- existing databases are indexed again ---------------------------------------------

OLD_TEXTS = ["Coffee time ☕", "私は東京都に住んでいます", "plain words here"]


def sqlite_before_search_words(path: Path) -> None:
    """A database as chatkeep left it before m006: schema 5, FTS5's unicode61 index."""
    from chatkeep.store.sqlite_schema import MIGRATIONS

    db = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:5]:
        migration(db)
    db.execute("INSERT INTO conversations (id, created_at, updated_at) VALUES ('old', '2024-01-01', '2024-01-01')")
    for n, content in enumerate(OLD_TEXTS):
        db.execute("INSERT INTO messages (id, conversation_id, role, body, text, created_at) VALUES (?, 'old', 'user',"
                   " ?, ?, '2024-01-01')", (f"m{n}", json.dumps({"role": "user", "content": content}), content))
    db.execute("PRAGMA user_version = 5")
    db.close()


def test_an_older_sqlite_database_is_indexed_again(tmp_path: Path) -> None:
    sqlite_before_search_words(tmp_path / "old.db")
    store = open_store(tmp_path / "old.db")
    assert found(store, "☕") == ["Coffee time ☕"]
    assert found(store, "住んで") == ["私は東京都に住んでいます"]
    assert found(store, "plain") == ["plain words here"]
    store.close()
    # The index keeps its own words: a client without chatkeep's functions may delete messages.
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("DELETE FROM messages WHERE id = 'm0'")
    store = open_store(tmp_path / "old.db")
    assert found(store, "☕") == [] and found(store, "plain") == ["plain words here"]
    assert store.check_integrity() == []


def test_an_older_postgres_schema_is_indexed_again(postgres_url: str) -> None:
    from chatkeep.store.postgres_schema import MIGRATIONS

    with admin(postgres_url) as conn, conn.transaction():
        conn.execute("CREATE TABLE chatkeep_schema (version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        for number, migration in enumerate(MIGRATIONS[:3], start=1):
            migration(conn)
            conn.execute("INSERT INTO chatkeep_schema (version, name) VALUES (%s, %s)", (number, migration.__name__))
        conn.execute("INSERT INTO conversations (id, created_at, updated_at) VALUES ('old', now(), now())")
        for n, content in enumerate(OLD_TEXTS):
            # PostgreSQL's own words stand in for the index the earlier rules built: none for ☕.
            conn.execute("INSERT INTO messages (id, conversation_id, role, body, text, search, created_at)"
                         " VALUES (%s, 'old', 'user', %s, %s, to_tsvector('simple', %s), now())",
                         (f"m{n}", json.dumps({"role": "user", "content": content}), content, content))
    with open_store(postgres_url) as store:
        assert found(store, "☕") == ["Coffee time ☕"]
        assert found(store, "住んで") == ["私は東京都に住んでいます"]
        assert found(store, "plain") == ["plain words here"]


# -- bounded cost -----------------------------------------------------------------------


def test_a_query_keeps_at_most_max_query_words() -> None:
    from chatkeep.store.search import MAX_QUERY_WORDS, read_query

    query = read_query(" ".join(f"w{n}" for n in range(1_000)) + ' "a phrase" -x1 -x2')
    assert query is not None
    assert [phrase.words for phrase in query.include] == [(f"w{n}",) for n in range(MAX_QUERY_WORDS)]
    assert [phrase.words for phrase in query.exclude] == [("x1",), ("x2",)]
    again = read_query("spam " * 1_000)  # repeated words count once
    assert again is not None and [phrase.words for phrase in again.include] == [("spam",)]


def test_a_thousand_word_query_is_read_up_to_the_limit(store: Any) -> None:
    from chatkeep.store.search import MAX_QUERY_WORDS

    words = [f"w{n}" for n in range(1_000)]
    texts(store, " ".join(words[:MAX_QUERY_WORDS]), " ".join(words[1:MAX_QUERY_WORDS]))
    assert found(store, " ".join(words)) == [" ".join(words[:MAX_QUERY_WORDS])]


def test_a_snippet_reads_only_the_start_of_a_long_message(store: Any) -> None:
    from chatkeep.store.search import SNIPPET_SCAN_CHARS

    early = "needle at the start " + "hay " * SNIPPET_SCAN_CHARS
    late = "hay " * (SNIPPET_SCAN_CHARS // 4 + 10) + "thread at the end"  # within PostgreSQL's indexed words
    texts(store, early, late)
    [hit] = store.search("needle")
    assert hit.snippet().startswith("[needle] at the start hay") and hit.snippet().endswith("…")
    [hit] = store.search("thread")  # found, but past what a snippet reads: the start is shown, unmarked
    assert hit.message.message["content"] == late
    assert hit.snippet() == "hay " * 15 + "hay…"


ONE_MEGABYTE = 1_000_000

SEARCH_A_FULL_MEGABYTE = """
import sys
from chatkeep import open_store
store = open_store(sys.argv[1])
[hit] = store.search("needle")
print(len(hit.message.message["content"]), hit.snippet())
"""


def test_a_megabyte_full_of_the_word_is_found_without_timing_out(store: Any, target: str) -> None:
    """Before issue 14, SQLite's snippet() took time in the square of the word's 140,000 occurrences."""
    texts(store, ("needle " * (ONE_MEGABYTE // 7 + 1))[:ONE_MEGABYTE], "something else")
    done = subprocess.run([sys.executable, "-c", SEARCH_A_FULL_MEGABYTE, target],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{ONE_MEGABYTE} " + "[needle] " * 15 + "[needle]…\n"


# -- the command line ---------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    store = open_store(path)
    store.import_conversations([ImportConversation(
        [ImportMessage({"role": "user", "content": "what are you doing with the coffee?"}, key="1"),
         ImportMessage({"role": "assistant", "content": "Nothing: the coffee is cold."}, key="2", parent_key="1")],
        id="cafe", title="Coffee", created_at=datetime(2024, 5, 1, tzinfo=timezone.utc),
    )])
    store.close()
    return path


def test_a_query_that_starts_with_a_dash_is_a_query(db: Path) -> None:
    env = environment(db)
    for args in (["-doing"], ["--", "-doing"], ["-nothing"], ["-doing", "--role", "user"]):
        result = run(env, "search", *args)
        assert (result.code, result.out, result.err) == (0, "", ""), args  # only exclusions: nothing to find
    result = run(env, "search", "coffee", "-doing")
    assert result.code == 0 and result.out.splitlines()[1] == "  Nothing: the [coffee] is cold."
    result = run(env, "search", "-doing", "coffee", "--json")
    assert [hit["message"]["role"] for hit in json.loads(result.out)] == ["assistant"]


def test_search_options_still_work_beside_dashed_words(db: Path) -> None:
    env = environment(db)
    result = run(env, "search", "-cold", "coffee", "--json")  # an excluded word, not "-c old"
    assert [hit["message"]["content"] for hit in json.loads(result.out)] == ["what are you doing with the coffee?"]
    result = run(env, "search", "coffee", "-c", "cafe", "--role=assistant", "-n", "1", "--json")
    assert [hit["message"]["content"] for hit in json.loads(result.out)] == ["Nothing: the coffee is cold."]
    assert run(env, "search", "coffee", "--model", "gpt", "--since", "2024-01-01").out == ""
    assert run(env, "search", "coffee", "-n", "many").code == 2  # an option's value is still checked


# -- the words SQLite's index is given ------------------------------------------------

_ASCII_SAMPLES = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=80)


def _fts5_words(value: str) -> list[str]:
    """The words FTS5 finds in ``value`` with the search index's own tokenizer, in order."""
    db = sqlite3.connect(":memory:")
    db.execute("""CREATE VIRTUAL TABLE t USING fts5(words, tokenize = "ascii tokenchars '$+<=>^`|~'")""")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
    db.execute("INSERT INTO t (rowid, words) VALUES (1, ?)", (value,))
    return [term for (term,) in db.execute("SELECT term FROM v ORDER BY offset")]


@given(st.one_of(_ASCII_SAMPLES, st.text(max_size=40)))
def test_the_index_is_given_text_it_splits_into_search_words(text: str) -> None:
    """ASCII text skips the Python word splitter only where FTS5 splits it the same way."""
    from chatkeep.store.search import search_words
    from chatkeep.store.sqlite_schema import _indexed_words

    assert _fts5_words(_indexed_words(text)) == search_words(text)


@pytest.mark.parametrize("text", [
    "Plain words, with punctuation: (and) brackets!",
    "a+b=c and x<y; $HOME | `cmd` ^ ~",
    "run " + "x" * 501 + " end",
    "nul\x00inside",
])
def test_the_index_is_given_the_same_words_for_symbols_long_runs_and_nul(text: str) -> None:
    from chatkeep.store.search import search_words
    from chatkeep.store.sqlite_schema import _indexed_words

    assert _fts5_words(_indexed_words(text)) == search_words(text)


def test_an_sqlite_database_with_indexed_summaries_leaves_them_out_of_the_index(tmp_path: Path) -> None:
    from chatkeep.store.sqlite_schema import m013_summaries_out_of_the_search_index

    file = tmp_path / "old.db"
    db = sqlite_before(file, m013_summaries_out_of_the_search_index)
    when = "2025-01-01T00:00:00.000000Z"
    db.execute("INSERT INTO conversations (id, created_at, updated_at) VALUES ('c', ?, ?)", (when, when))
    for message_id, kind, text in [("m1", "chat", "kept lighthouse"), ("s1", "summary", "summary lighthouse")]:
        db.execute("INSERT INTO messages (id, conversation_id, kind, role, body, text, created_at)"
                   f" VALUES (?, 'c', ?, 'user', ?, ?, '{when}')",
                   (message_id, kind, json.dumps({"role": "user", "content": text}), text))
    db.execute("COMMIT")
    assert db.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'lighthouse'").fetchone() == (2,)
    db.close()
    with open_store(file) as store:
        assert [hit.message.id for hit in store.search("lighthouse")] == ["m1"]
        store.append("c", {"role": "system", "content": "another lighthouse"}, kind="summary")
        assert store.check_integrity() == []
    with sqlite3.connect(file) as db:
        assert db.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'lighthouse'").fetchone() == (1,)
        db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")


# -- newest first ----------------------------------------------------------------------

def test_newest_first_gives_every_match_latest_saved_first_page_by_page(store: Any) -> None:
    texts(store, "harbor harbor harbor harbor", "one harbor", "no match here", "two harbor", "three harbor")
    best = [hit.message.message["content"] for hit in store.search("harbor")]
    assert best[0] == "harbor harbor harbor harbor"  # relevance: the densest first
    newest = [hit.message.message["content"] for hit in store.search("harbor", order="newest")]
    assert newest == ["three harbor", "two harbor", "one harbor", "harbor harbor harbor harbor"]
    pages = [[hit.message.message["content"] for hit in store.search("harbor", order="newest", limit=2, offset=n)]
             for n in (0, 2, 4)]
    assert pages == [newest[:2], newest[2:], []]


def test_newest_first_keeps_the_filters(store: Any) -> None:
    conv = store.new_conversation()
    conv.append({"role": "user", "content": "user harbor"})
    conv.append({"role": "assistant", "content": "assistant harbor"})
    conv.append({"role": "user", "content": "later user harbor"})
    other = store.new_conversation()
    other.append({"role": "user", "content": "elsewhere harbor"})
    hits = store.search("harbor", order="newest", role="user", conversation_id=conv.id)
    assert [hit.message.message["content"] for hit in hits] == ["later user harbor", "user harbor"]
    assert all(hit.snippet().count("[harbor]") == 1 for hit in hits)


def test_an_unknown_order_is_refused(store: Any) -> None:
    from chatkeep.errors import ChatkeepError

    with pytest.raises(ChatkeepError, match="order: expected 'relevance' or 'newest', got 'oldest'"):
        store.search("harbor", order="oldest")


def test_chatkeep_search_newest_lists_the_latest_first(tmp_path: Path) -> None:
    store = open_store(tmp_path / "cli.db")
    texts(store, "harbor harbor harbor", "later harbor")
    store.close()
    env = environment(tmp_path / "cli.db")
    best, newest = run(env, "search", "harbor", "--json"), run(env, "search", "harbor", "--newest", "--json")
    assert [hit["message"]["content"] for hit in json.loads(best.out)] == ["harbor harbor harbor", "later harbor"]
    assert [hit["message"]["content"] for hit in json.loads(newest.out)] == ["later harbor", "harbor harbor harbor"]


def test_the_tutorials_json_file_takes_either_order(tmp_path: Path) -> None:
    from chatkeep.errors import ChatkeepError

    store = open_store(tmp_path / "conversation_history.json")
    texts(store, "first harbor", "second harbor")
    for order in ("relevance", "newest"):
        assert [hit.message.message["content"] for hit in store.search("harbor", order=order)] == [
            "second harbor", "first harbor"]
    with pytest.raises(ChatkeepError, match="order: expected"):
        store.search("harbor", order="oldest")
