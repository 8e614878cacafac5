"""A PostgreSQL append is one round trip on a warm connection, and a lost connection is still told truthfully.

The store talks to the test server through a loopback TCP proxy that counts
round trips and can break a connection the way the network does: forget it
(as a firewall that timed it out: the next packet is answered with a reset),
or lose the server's reply after the server has committed. Nothing is mocked:
the real psycopg pool, the real server, real sockets.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatkeep import StoreError, open_store
from chatkeep.store.postgres import PostgresStore
from chatkeep.store.postgres_search import _MAX_POSITIONS, _few_words, _many_words
from chatkeep.store.search import MAX_WORD_CHARS
from pg import admin, start_failing, with_options


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


@dataclass
class _Link:
    """One proxied connection: the client's socket, the server's, and who spoke last."""

    client: socket.socket
    server: socket.socket
    server_spoke_last: bool = True
    forgotten: bool = False  # the next request is answered with a reset, never forwarded
    lose_reply: bool = False  # the next reply is dropped and the client reset, after the server acted
    closed: bool = False


@dataclass
class Proxy:
    """A loopback proxy to the test server that counts requests (a client send after the server's last reply)."""

    target: tuple[str, int]
    requests: int = 0
    links: list[_Link] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        """``url`` pointed at the proxy."""
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{self.port}"))

    def forget_connections(self) -> None:
        """As a firewall that timed them out: each open connection's next packet gets a reset."""
        with self.lock:
            for link in self.links:
                link.forgotten = True

    def lose_next_replies(self) -> None:
        """Each open connection's next reply from the server never arrives; the client gets a reset."""
        with self.lock:
            for link in self.links:
                link.lose_reply = True

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for link in self.links:
                self._cut(link)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client, server)
            with self.lock:
                self.links.append(link)
            threading.Thread(target=self._pump, args=(link, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(link, False), daemon=True).start()

    def _pump(self, link: _Link, from_client: bool) -> None:
        source, sink = (link.client, link.server) if from_client else (link.server, link.client)
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            with self.lock:
                if not data or link.closed:
                    self._cut(link)
                    return
                if from_client and link.forgotten or not from_client and link.lose_reply:
                    self._cut(link)
                    return
                if from_client and link.server_spoke_last:
                    self.requests += 1
                link.server_spoke_last = not from_client
            try:
                sink.sendall(data)
            except OSError:
                with self.lock:
                    self._cut(link)
                return

    @staticmethod
    def _cut(link: _Link) -> None:
        """Reset the client's side (as a network error does) and close the server's."""
        if link.closed:
            return
        link.closed = True
        link.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for sock in (link.client, link.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other pump, which may be waiting on it
            except OSError:
                pass
            sock.close()


@pytest.fixture
def application() -> str:
    """A name for the store's connections, to find them (and only them) on the shared server."""
    return f"chatkeep-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def proxied(postgres_url: str, application: str) -> Iterator[tuple[PostgresStore, Proxy]]:
    """A store whose connections all pass through a proxy (created first, directly, so migrations are done)."""
    open_store(postgres_url).close()
    parts = urlsplit(postgres_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    opened = open_store(proxy.url(with_options(postgres_url, application_name=application)))
    assert isinstance(opened, PostgresStore)
    yield opened, proxy
    opened.close()
    proxy.close()


def _backends(conn: Any, application: str, *, waiting: bool = False) -> list[int]:
    sql = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    if waiting:
        sql += " AND wait_event_type = 'Lock'"
    return [row[0] for row in conn.execute(sql, (application,))]


def _warm_up(conv: Any) -> list[dict[str, str]]:
    """Appends that leave every pooled connection warm (the pool lends them in turn); returns them."""
    kept = [user(f"kept {i}") for i in range(4)]
    for message in kept:
        conv.append(message)
    return kept


def _requests_for(proxy: Proxy, work: Any) -> int:
    before = proxy.requests
    work()
    return proxy.requests - before


def test_an_append_on_a_warm_connection_is_one_round_trip(proxied: tuple[PostgresStore, Proxy]) -> None:
    store, proxy = proxied
    conv = store.new_conversation("c")
    for i in range(20):  # psycopg prepares the statement on each pooled connection's sixth run
        conv.append(user(f"warm-up {i}"))
    assert _requests_for(proxy, lambda: [conv.append(user(f"m{i}")) for i in range(10)]) == 10
    # the head still moves by compare-and-set, and the branch is whole
    assert [m.message["content"] for m in conv.history()][-2:] == ["m8", "m9"]
    assert store.check_integrity() == []


def test_a_connection_idle_past_the_warm_limit_proves_itself_with_a_begin(
    proxied: tuple[PostgresStore, Proxy],
) -> None:
    store, proxy = proxied
    store._connections.warm_seconds = 0.05  # stands for minutes of silence
    conv = store.new_conversation("c")
    conv.append(user("one"))
    time.sleep(0.1)
    assert _requests_for(proxy, lambda: conv.append(user("two"))) == 3  # BEGIN, the statement, COMMIT


def test_a_connection_a_firewall_forgot_after_it_idled_is_replaced(proxied: tuple[PostgresStore, Proxy]) -> None:
    store, proxy = proxied
    store._connections.warm_seconds = 0.05
    conv = store.new_conversation("c")
    conv.append(user("before"))
    proxy.forget_connections()
    time.sleep(0.1)
    conv.append(user("after"))  # its BEGIN is reset: nothing was sent, so it runs on a new connection
    assert conv.messages == [user("before"), user("after")]


def test_a_connection_closed_by_the_server_while_warm_is_replaced(
    proxied: tuple[PostgresStore, Proxy], postgres_url: str, application: str
) -> None:
    store, proxy = proxied
    conv = store.new_conversation("c")
    conv.append(user("before"))
    with admin(postgres_url) as conn:
        pids = _backends(conn, application)
        assert pids
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)  # the server's farewell reaches the idle socket
    before = proxy.requests
    conv.append(user("after"))  # found before anything was sent, so the append goes through once
    assert conv.messages == [user("before"), user("after")]
    assert proxy.requests - before >= 3  # on a new connection, which proved itself with a BEGIN


def test_a_warm_connection_lost_without_a_word_says_the_append_may_not_be_saved(
    proxied: tuple[PostgresStore, Proxy],
) -> None:
    # Within the warm limit a silently dropped connection is not found before the statement goes
    # (nothing tells), and the statement carries its own COMMIT: the error must not claim to know.
    store, proxy = proxied
    conv = store.new_conversation("c")
    kept = _warm_up(conv)
    proxy.forget_connections()
    with pytest.raises(StoreError, match=r"may or may not have been saved"):
        conv.append(user("lost"))
    assert conv.messages == kept  # here it was not: the proxy never forwarded it


def test_a_reply_lost_after_the_commit_is_not_called_unsaved(proxied: tuple[PostgresStore, Proxy]) -> None:
    store, proxy = proxied
    conv = store.new_conversation("c")
    kept = _warm_up(conv)
    proxy.lose_next_replies()
    with pytest.raises(StoreError, match=r"may or may not have been saved"):
        conv.append(user("committed"))
    assert conv.messages == [*kept, user("committed")]  # the server had committed it
    assert store.check_integrity() == []


def test_a_server_error_on_a_warm_connection_says_nothing_was_saved(
    proxied: tuple[PostgresStore, Proxy], postgres_url: str, application: str
) -> None:
    store, proxy = proxied
    conv = store.new_conversation("c")
    kept = _warm_up(conv)
    with admin(postgres_url) as locker, admin(postgres_url) as watcher, locker.transaction():
        locker.execute("SELECT 1 FROM conversations WHERE id = 'c' FOR UPDATE")  # the append waits here
        before = proxy.requests
        writer, failures = start_failing(lambda: conv.append(user("lost")))
        deadline = time.monotonic() + 20
        waiting: list[int] = []
        while not waiting and time.monotonic() < deadline:
            waiting = _backends(watcher, application, waiting=True)
            time.sleep(0.02)
        assert waiting and proxy.requests - before == 1  # the whole append, sent at once
        for pid in waiting:
            watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))
        writer.join(timeout=30)
    [failure] = failures
    assert "the connection failed during a write (nothing was saved)" in str(failure)
    assert conv.messages == kept


@given(st.lists(st.sampled_from(["a", "bb", "ccc", "東", "☕", "x" * MAX_WORD_CHARS, "é" * 40]),
                max_size=_MAX_POSITIONS))
def test_the_short_tsvector_path_writes_what_the_general_one_does(words: list[str]) -> None:
    assert _few_words(words) == _many_words(words)
