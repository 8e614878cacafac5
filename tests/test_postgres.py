"""The PostgreSQL backend's own promises: routing, schema, exact storage, search, processes, lost connections.

Every test runs on the server scripts/test starts, in a schema of its own
(``postgres_url``, from tests/pg.py). The contract suites run on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatdriver import MODES, Driver
from chatkeep import (
    AsyncChat,
    BackendUnavailable,
    MessageNotFound,
    MigrationError,
    StoreError,
    open_store,
)
from chatkeep.store.bulk import ImportConversation, ImportMessage
from chatkeep.store.postgres import PostgresStore
from chatkeep.store.postgres_schema import SCHEMA_VERSION
from fakeopenai import FakeOpenAI, slow, text
from pg import admin, start_failing, with_options
from strategies import messages

# The contract's tests for every backend take a `store` fixture that covers the file
# backends only; collected here as well, they run with this module's `store`.
from test_store_contract import (  # noqa: F401
    test_a_wrong_message_is_refused_and_nothing_is_stored,
    test_append_returns_the_stored_message_and_moves_the_head,
    test_children_follow_the_tree,
    test_creating_an_existing_id_fails,
    test_delete_removes_the_messages,
    test_get_or_create_opens_the_same_conversation,
    test_missing_things_raise_not_found,
    test_path_is_oldest_first_and_last_k_is_the_tail,
    test_unknown_keys_survive_storage,
)

PASSWORD = "s3cret-do-not-print"


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = open_store(postgres_url)
    assert isinstance(opened, PostgresStore)
    yield opened
    opened.close()


def with_password(url: str) -> str:
    """``url`` with a password (the test server trusts 127.0.0.1, so it is never checked)."""
    parts = urlsplit(url)
    if parts.password:
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port}"))


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(procs: list[subprocess.Popen[str]], timeout: float = 180) -> list[str]:
    """Wait for every process; fail with its stderr when one fails."""
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


# -- opening ------------------------------------------------------------------------


def test_urls_and_the_environment_open_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = with_password(postgres_url)
    for url in (secret, secret.replace("postgresql://", "postgres://", 1)):
        with open_store(url) as store:
            assert isinstance(store, PostgresStore)
            assert PASSWORD not in store.url and PASSWORD not in repr(store)
            assert store.url.startswith("postgresql://") and "127.0.0.1" in store.url
    monkeypatch.setenv("CHATKEEP_DB", secret)
    with open_store() as store:
        assert isinstance(store, PostgresStore)


def test_an_unreachable_server_is_named_without_the_password() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        open_store(f"postgresql://someone:{PASSWORD}@127.0.0.1:{port}/chat")
    message = str(caught.value)
    assert f"postgresql://someone@127.0.0.1:{port}/chat: cannot connect" in message
    assert PASSWORD not in message and time.monotonic() - started < 10


def test_without_psycopg_the_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['psycopg'] = sys.modules['psycopg_pool'] = None  # as if not installed\n"
        "from chatkeep import BackendUnavailable, open_store\n"
        "try:\n"
        "    open_store('postgresql://someone@127.0.0.1/chat')\n"
        "except BackendUnavailable as exc:\n"
        "    print(isinstance(exc, ImportError), exc)\n"
    )
    [out] = finish([run_python(code)])
    assert out.startswith("True ") and "pip install 'chatkeep[postgres]'" in out
    assert issubclass(BackendUnavailable, ImportError)


# -- schema -------------------------------------------------------------------------


def test_migrations_are_recorded_once(postgres_url: str) -> None:
    open_store(postgres_url).close()
    open_store(postgres_url).close()
    with admin(postgres_url) as conn:
        rows = conn.execute("SELECT version, name FROM chatkeep_schema ORDER BY version").fetchall()
    assert [version for version, _ in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert rows[0][1] == "m001_initial"


def test_processes_starting_at_once_migrate_once(postgres_url: str) -> None:
    # All start opening at the same instant, racing for the first migration.
    code = (
        "import sys, time\n"
        "from chatkeep import open_store\n"
        "time.sleep(max(0, float(sys.argv[2]) - time.time()))\n"
        "open_store(sys.argv[1]).close()\n"
    )
    start_at = str(time.time() + 2)
    finish([run_python(code, postgres_url, start_at) for _ in range(6)])
    with admin(postgres_url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM chatkeep_schema ORDER BY version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    open_store(postgres_url).close()
    with admin(postgres_url) as conn:
        conn.execute("INSERT INTO chatkeep_schema (version, name) VALUES (%s, 'from the future')",
                     (SCHEMA_VERSION + 1,))
    with pytest.raises(MigrationError, match="newer than this chatkeep understands"):
        open_store(postgres_url)


def test_another_applications_tables_are_explained(postgres_url: str) -> None:
    with admin(postgres_url) as conn:
        conn.execute("CREATE TABLE conversations (id serial PRIMARY KEY, body text)")
    with pytest.raises(MigrationError, match=r"already exists.*give chatkeep its own schema"):
        open_store(postgres_url)


# -- exact storage --------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(messages, min_size=1, max_size=4))
def test_messages_come_back_exactly_with_key_order(store: PostgresStore, batch: list[dict[str, Any]]) -> None:
    conv = store.new_conversation()
    for message in batch:
        conv.append(message)
    back = conv.messages
    # json.dumps keeps key order, so equal text means equal order (a dict == ignores it).
    assert json.dumps(back) == json.dumps(batch)


def test_nul_bytes_and_lone_surrogates_round_trip_and_search(store: PostgresStore) -> None:
    odd = {"role": "user", "content": "alpha\x00beta \ud800 \u202eevil \U0001f600", "z": 1, "a": {"\x00": "\udfff"}}
    conv = store.new_conversation()
    stored = conv.append(odd, metadata={"note": "nul \x00 here"}, usage={"prompt_tokens": 1, "x": "\x00"})
    assert json.dumps(conv.messages) == json.dumps([odd])
    assert store.get_message(stored.id) == stored
    assert [hit.message.id for hit in store.search("beta")] == [stored.id]
    with pytest.raises(StoreError, match="NUL"):
        store.new_conversation(title="a\x00b")


def test_times_are_utc_whatever_the_session_time_zone(postgres_url: str) -> None:
    with open_store(with_options(postgres_url, options="-c timezone=Pacific/Kiritimati")) as store:
        record = store.new_conversation("tz").record
        assert record.created_at.utcoffset() is not None and record.created_at.utcoffset().total_seconds() == 0
        stored = store.conversation("tz").append(user("hi"))
        assert store.get_message(stored.id) == stored


def test_a_message_longer_than_a_tsvector_holds_is_stored_and_found(store: PostgresStore) -> None:
    # PostgreSQL refuses a tsvector over 1 MB: only the first 100,000 characters are indexed.
    words = " ".join(f"w{n:07d}" for n in range(200_000))  # 1.8 MB of distinct words
    conv = store.new_conversation()
    stored = conv.append(user("needle " + words))
    assert conv.head == stored
    assert [hit.message.id for hit in store.search("needle")] == [stored.id]


def test_token_counts_merge_and_an_unknown_id_changes_nothing(store: PostgresStore) -> None:
    conv = store.new_conversation()
    first = conv.append(user("one"), token_counts={"o200k_base": 3})
    second = conv.append(user("two"))
    store.save_token_counts({first.id: {"cl100k_base": 4}, second.id: {"o200k_base": 5}})
    assert store.get_message(first.id).token_counts == {"o200k_base": 3, "cl100k_base": 4}
    assert store.get_message(second.id).token_counts == {"o200k_base": 5}
    with pytest.raises(MessageNotFound):
        store.save_token_counts({second.id: {"o200k_base": 99}, "nope": {"o200k_base": 1}})
    assert store.get_message(second.id).token_counts == {"o200k_base": 5}


def test_summaries_stay_off_the_branch_and_are_found_by_kind(store: PostgresStore) -> None:
    conv = store.new_conversation()
    question = conv.append(user("question"))
    summary = conv.append({"role": "system", "content": "summary"}, kind="summary", parent_id=None, move_head=False)
    assert conv.history() == [question]
    assert store.find_messages(conv.id, kind="summary") == [summary]
    assert [hit.message.id for hit in store.search("question summary")] == []  # search skips summaries


def test_usage_by_model_adds_up_replies(store: PostgresStore) -> None:
    conv = store.new_conversation()
    conv.append(user("q"))
    conv.append({"role": "assistant", "content": "a"}, model="m1", usage={"prompt_tokens": 5, "completion_tokens": 2})
    conv.append({"role": "assistant", "content": "b"}, model="m1", usage={"prompt_tokens": 7, "completion_tokens": 1})
    conv.append({"role": "assistant", "content": "c"})
    assert store.usage_by_model() == {
        "m1": {"replies": 2, "prompt_tokens": 12, "completion_tokens": 3},
        "unknown": {"replies": 1, "prompt_tokens": 0, "completion_tokens": 0},
    }


def test_integrity_check_finds_a_head_outside_its_conversation(store: PostgresStore, postgres_url: str) -> None:
    one, other = store.new_conversation("one"), store.new_conversation("other")
    stray = other.append(user("x"))
    one.append(user("y"))
    assert store.check_integrity() == []
    with admin(postgres_url) as conn:  # what no chatkeep call can do
        conn.execute("UPDATE conversations SET head_id = %s WHERE id = 'one'", (stray.id,))
    assert store.check_integrity() == [f"conversation 'one': head {stray.id!r} belongs to conversation 'other'"]


def test_an_import_of_many_conversations_is_one_transaction(store: PostgresStore) -> None:
    good = [ImportConversation([ImportMessage(user(f"m{n}"), key="1")], key=f"k{n}") for n in range(50)]
    store.import_conversations(good)
    assert store.count_conversations() == 50
    again = good + [ImportConversation([ImportMessage(user("x"), key="1", parent_key="missing")], key="bad")]
    with pytest.raises(StoreError, match="parent 'missing' not found"):
        store.import_conversations(again)
    assert store.count_conversations() == 50 and store.count_messages() == 50


def test_a_large_import_refreshes_the_planners_statistics(store: PostgresStore, postgres_url: str) -> None:
    # Was: until autovacuum's next round the planner took the tables for as small as before the import,
    # and the branch walk it had cached scanned every message at each step (a second for the last 20 of
    # 100,000 messages, instead of a millisecond).
    store.import_conversations([ImportConversation([ImportMessage(user("a few"), key="1")], key="small")])
    with admin(postgres_url) as conn:
        conn.execute("ALTER TABLE messages SET (autovacuum_enabled = false)")  # only chatkeep may analyze it
    chain = [ImportMessage(user(f"m{n}"), key=str(n), parent_key=str(n - 1) if n else None) for n in range(1_500)]
    store.import_conversations([ImportConversation(chain, key="large")])
    with admin(postgres_url) as conn:
        believed = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'messages'::regclass").fetchone()
    assert believed is not None and believed[0] >= 1_500


# -- search ---------------------------------------------------------------------------


def test_search_finds_words_inside_addresses_paths_and_accents(store: PostgresStore) -> None:
    conv = store.new_conversation("s", title="Search")
    mail = conv.append(user("Write to foo@bar.example or see src/chatkeep/store.py, v3.11"))
    cafe = conv.append(user("Un café à Paris, and an e-mail"))

    def found(query: str) -> list[str]:
        return [hit.message.id for hit in store.search(query)]

    assert found("bar") == found("chatkeep") == found("store py") == found("v3.11") == [mail.id]
    assert found("cafe") == found("CAFÉ") == found("mail") == found("e-mail") == [cafe.id]
    assert found("caf*") == [cafe.id] and found("paris -cafe") == []
    assert "[Paris]" in store.search("paris")[0].snippet()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=30) | st.lists(
    st.sampled_from(list("ab \"*()-+:^'\\;%_.é€&|!<>\x00") + [" AND ", " OR ", "NOT ", "<->", "<2>", ":*", "''"]),
    max_size=15,
).map("".join))
def test_any_query_text_is_safe(store: PostgresStore, query: str) -> None:
    if not store.count_conversations():
        store.new_conversation("c").append(user("ab and or not near a:b"))
    store.search(query, owner="nobody")  # never raises
    store.search(query)


VOCABULARY = ["Paris", "paris", "weather", "e-mail", "foo@bar.com", "3.14", "don't", "snake_case", "C++",
              "Straße", "café", "Cafe", "naïve", "東京", "x²", "(note)", "a/b/c", "--", "rain"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=6).map(" ".join),
                   min_size=1, max_size=6),
    query=st.lists(st.sampled_from(VOCABULARY + ["-rain", "weath*", "ca*", '"paris weather"', "NOT paris"]),
                   min_size=1, max_size=3).map(" ".join),
)
def test_search_matches_what_sqlite_matches(store: PostgresStore, texts: list[str], query: str) -> None:
    sqlite = open_store(":memory:")
    conversations = [target.new_conversation() for target in (store, sqlite)]
    for conv in conversations:
        for content in texts:
            conv.append(user(content))
    on_postgres = sorted(h.message.message["content"]
                         for h in store.search(query, conversation_id=conversations[0].id, limit=100))
    on_sqlite = sorted(h.message.message["content"] for h in sqlite.search(query, limit=100))
    assert on_postgres == on_sqlite
    sqlite.close()


# -- many writers ---------------------------------------------------------------------


def test_processes_appending_to_one_conversation_keep_one_order(postgres_url: str) -> None:
    writer = (
        "import sys\n"
        "from chatkeep import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "conv = store.conversation('shared', create=True)  # all four race to create it\n"
        "for i in range(200):\n"
        "    conv.append({'role': 'user', 'content': f'{sys.argv[2]}-{i}'})\n"
        "store.close()\n"
    )
    finish([run_python(writer, postgres_url, str(n)) for n in range(4)])
    with open_store(postgres_url) as store:
        path = store.path("shared")
        texts = [m.message["content"] for m in path]
        assert len(texts) == 800 == store.count_messages("shared")  # one chain holds every message
        for n in range(4):  # and each writer's own order within it
            assert [t for t in texts if t.startswith(f"{n}-")] == [f"{n}-{i}" for i in range(200)]
        times = [m.created_at for m in path]
        assert times == sorted(times)
        assert store.check_integrity() == []


def test_threads_share_one_store(store: PostgresStore) -> None:
    conv = store.new_conversation("threads")
    errors: list[Exception] = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                conv.append(user(f"{n}-{i}"))
                conv.history(last=2)
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(conv.history()) == 320 == len(conv)


# -- lost connections ---------------------------------------------------------------------


def _backends(conn: Any, application: str, *, waiting: bool = False) -> list[int]:
    sql = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    if waiting:
        sql += " AND wait_event_type = 'Lock'"
    return [row[0] for row in conn.execute(sql, (application,))]


def _terminate(conn: Any, pids: list[int]) -> None:
    for pid in pids:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _wait_for(condition: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def named_store(postgres_url: str) -> Iterator[tuple[PostgresStore, str]]:
    """A store whose connections carry a unique application_name (and a password), to find and kill them."""
    application = f"chatkeep-test-{uuid.uuid4().hex[:8]}"
    opened = open_store(with_options(with_password(postgres_url), application_name=application))
    assert isinstance(opened, PostgresStore)
    yield opened, application
    opened.close()


def test_connections_killed_while_idle_are_replaced(
    named_store: tuple[PostgresStore, str], postgres_url: str
) -> None:
    store, application = named_store
    conv = store.new_conversation("c")
    conv.append(user("before"))
    together = threading.Barrier(4)
    readers = [threading.Thread(target=lambda: (together.wait(), conv.history(), together.wait())) for _ in range(4)]
    for reader in readers:  # four at once: the pool now holds several connections
        reader.start()
    for reader in readers:
        reader.join()
    with admin(postgres_url) as conn:  # as a server restart would, drop them all
        killed = _wait_for(lambda: _backends(conn, application))
        _terminate(conn, killed)
    assert len(killed) >= 2
    started = time.monotonic()
    conv.append(user("after"))  # a write, and then a read, on fresh connections
    assert conv.messages == [user("before"), user("after")]
    assert time.monotonic() - started < 5  # no waiting out back-offs, one dead connection after another


def test_a_read_cut_off_midway_is_run_again(named_store: tuple[PostgresStore, str], postgres_url: str) -> None:
    store, application = named_store
    stored = store.new_conversation("c").append(user("hello"))
    results: list[Any] = []
    with admin(postgres_url) as locker, admin(postgres_url) as watcher:
        with locker.transaction():
            locker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")  # the read waits behind this
            reader = threading.Thread(target=lambda: results.append(store.get_message(stored.id)))
            reader.start()
            _terminate(watcher, _wait_for(lambda: _backends(watcher, application, waiting=True)))
        reader.join(timeout=30)
    assert results == [stored]


def test_a_write_cut_off_midway_fails_clearly_and_saves_nothing(
    named_store: tuple[PostgresStore, str], postgres_url: str
) -> None:
    store, application = named_store
    conv = store.new_conversation("c")
    conv.append(user("kept"))
    with admin(postgres_url) as locker, admin(postgres_url) as watcher, locker.transaction():
        locker.execute("SELECT 1 FROM conversations WHERE id = 'c' FOR UPDATE")  # the append waits here
        writer, failures = start_failing(lambda: conv.append(user("lost")))
        _terminate(watcher, _wait_for(lambda: _backends(watcher, application, waiting=True)))
        writer.join(timeout=30)
    [failure] = failures
    assert isinstance(failure, StoreError)
    message = str(failure)
    assert message.startswith(f"{store.url}: the connection failed during a write (nothing was saved)")
    assert PASSWORD not in message
    assert conv.messages == [user("kept")]
    conv.append(user("next"))  # the store carries on with a new connection
    assert len(conv) == 2


def test_a_closed_store_says_so(store: PostgresStore) -> None:
    store.close()
    with pytest.raises(StoreError, match="the store is closed"):
        store.count_conversations()


# -- chats ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_chats_run_on_postgres(mode: str, openai_server: FakeOpenAI, store: PostgresStore) -> None:
    openai_server.script(text("Hello there!"), text("Still here."))
    chat = Driver(mode, openai_server, store.conversation("support-42", create=True), model="gpt-4o")
    chat.turn("Hello, how are you?")
    chat.turn("And now?")
    assert store.conversation("support-42").messages == [
        user("Hello, how are you?"), {"role": "assistant", "content": "Hello there!"},
        user("And now?"), {"role": "assistant", "content": "Still here."},
    ]
    assert openai_server.requests[1].body["messages"][:2] == store.conversation("support-42").messages[:2]


def test_async_chats_do_not_block_the_event_loop(
    openai_server: FakeOpenAI, store: PostgresStore, postgres_url: str
) -> None:
    openai_server.script(*[slow(0.05, text(f"reply {n}")) for n in range(4)])
    for n in range(4):
        store.new_conversation(f"c{n}")
    ticks = [0]
    done = threading.Event()

    async def main() -> None:
        async def ticker() -> None:
            while not done.is_set():
                ticks[0] += 1
                await asyncio.sleep(0.01)

        async with openai_server.async_client(max_retries=0) as client:
            tick = asyncio.create_task(ticker())
            chats = [AsyncChat(store.conversation(f"c{n}"), client, model="gpt-4o") for n in range(4)]
            await asyncio.gather(*(chat.send(f"question {n}") for n, chat in enumerate(chats)))
            done.set()
            await tick

    runner = threading.Thread(target=asyncio.run, args=(main(),))
    with admin(postgres_url) as locker, admin(postgres_url) as watcher:
        with locker.transaction():
            # Every conversation is locked: the chats' first saves wait for it, the event loop must not.
            locker.execute("SELECT 1 FROM conversations FOR UPDATE")
            runner.start()
            _wait_for(lambda: watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
            ).fetchone()[0] >= 4)  # all four saves are waiting
            before = ticks[0]
            time.sleep(0.3)
            during = ticks[0] - before
        runner.join(timeout=60)
    assert done.is_set() and during >= 10  # about 30 ticks of 10 ms while every save was blocked
    saved = [store.conversation(f"c{n}").messages for n in range(4)]
    assert [messages[0] for messages in saved] == [user(f"question {n}") for n in range(4)]
    assert sorted(messages[1]["content"] for messages in saved) == [f"reply {n}" for n in range(4)]


def test_a_chat_survives_the_store_reopened_in_another_process(openai_server: FakeOpenAI, postgres_url: str) -> None:
    with open_store(postgres_url) as store:
        Driver("send", openai_server, store.conversation("s", create=True), model="m").turn("first")
    reader = (
        "import sys, json\n"
        "from chatkeep import open_store\n"
        "print(json.dumps(open_store(sys.argv[1]).conversation('s').messages))\n"
    )
    [out] = finish([run_python(reader, postgres_url)])
    assert json.loads(out) == [user("first"), {"role": "assistant", "content": "ok"}]



def test_a_malformed_url_is_refused_without_the_password() -> None:
    with pytest.raises(StoreError, match="not a PostgreSQL URL") as caught:
        open_store(f"postgresql://someone:{PASSWORD}@[::1/chat")
    assert PASSWORD not in str(caught.value)
