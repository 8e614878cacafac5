"""PostgreSQL: append one message, read the last 20 and read all, beside the two PostgreSQL peers.

All three systems run on the same throwaway server (``scripts/bench`` starts
one with ``scripts/postgres``, as ``scripts/test`` does, unless
``CHATKEEP_TEST_POSTGRES`` names one), each in a schema of its own, over
loopback TCP. The server keeps PostgreSQL's default durability
(``synchronous_commit=on``, ``fsync=on``): every system commits once per
append, and a returned append has been flushed to the write-ahead log.

At each length (10, 10,000 and 100,000 messages) every system starts a new
conversation of that length; the systems then take turns appending one
message each (the first of each round rotating), then reading the last 20,
then reading all of it. Each row is the median of its calls.

- chatkeep: ``open_store(url)`` (a ``PostgresStore``, psycopg 3 with its pool),
  prefilled with ``import_conversations``; timed ``conv.append(message)``,
  ``conv.history(last=20)`` and ``conv.messages``.
- Agents SDK ``SQLAlchemySession`` (``agents.extensions.memory``) on an async
  SQLAlchemy engine with the asyncpg driver, as its documentation shows
  (``postgresql+asyncpg://``), tables made by ``create_tables=True``;
  prefilled by ``add_items`` 10,000 at a time; timed ``await add_items([item])``,
  ``get_items(limit=20)`` and ``get_items()``.
- LangChain ``PostgresChatMessageHistory`` (``langchain-postgres``) on one
  psycopg 3 connection, table made by its ``create_tables``; prefilled by
  ``add_messages`` 10,000 at a time; timed ``add_message``; it has no way to
  read fewer than all, so "the last 20" is ``.messages[-20:]``.

Run from benchmarks/: python -m peers.postgres --out rows.json [--quick]
(needs CHATKEEP_TEST_POSTGRES, the server's URL)
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from append import message  # benchmarks/append.py: the same messages as every other workload

from chatkeep import open_store
from chatkeep.store.bulk import ImportConversation, ImportMessage

from .common import Row, Timing, interleaved, parse_args, progress, size_label, write_rows

SERVER_VARIABLE = "CHATKEEP_TEST_POSTGRES"
SETTING = "same server; synchronous_commit=on: each commit flushes the WAL to disk"
APPEND = "PostgreSQL: append one message"
LAST20 = "PostgreSQL: read the last 20 messages"
READ_ALL = "PostgreSQL: read all messages"
BATCH = 10_000


def with_search_path(url: str, schema: str) -> str:
    """``url`` with its connections' ``search_path`` set to ``schema`` (libpq's ``options``)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"{query.get('options', '')} -c search_path={schema}".strip()
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


class System:
    """A conversation store on PostgreSQL; subclasses fill in the operations."""

    name = ""
    prefill = ""
    last20_note = ""

    def __init__(self, url: str, schema: str) -> None:
        self.url, self.schema = url, schema
        self.length = 0

    def _next(self) -> dict[str, str]:
        body = message(self.length)
        self.length += 1
        return body

    def start(self, n: int) -> None:
        raise NotImplementedError

    def append(self) -> None:
        raise NotImplementedError

    def last20(self) -> Any:
        raise NotImplementedError

    def read_all(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class Chatkeep(System):
    name = "chatkeep"
    prefill = "import_conversations, one transaction"

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(url, schema)
        self.store = open_store(with_search_path(url, schema))

    def start(self, n: int) -> None:
        items = [ImportMessage(message(i), key=str(i), parent_key=str(i - 1) if i else None) for i in range(n)]
        summary = self.store.import_conversations([ImportConversation(items)])
        self.conv = self.store.conversation(summary.conversation_ids[0])
        self.length = n

    def append(self) -> None:
        self.conv.append(self._next())

    def last20(self) -> Any:
        return self.conv.history(last=20)

    def read_all(self) -> Any:
        return self.conv.messages

    def close(self) -> None:
        self.store.close()


class AgentsSQLAlchemy(System):
    name = "Agents SDK SQLAlchemySession (asyncpg)"
    prefill = "add_items, 10,000 a batch"

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(url, schema)
        from sqlalchemy.ext.asyncio import create_async_engine

        parts = urlsplit(url)
        self.loop = asyncio.new_event_loop()
        # asyncpg takes server settings as connect arguments, not libpq's options.
        self.engine = create_async_engine(
            urlunsplit(parts._replace(scheme="postgresql+asyncpg", query="")),
            connect_args={"server_settings": {"search_path": schema}},
        )
        self.sessions = 0

    def _run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def start(self, n: int) -> None:
        from agents.extensions.memory import SQLAlchemySession

        self.sessions += 1
        self.session = SQLAlchemySession(f"conversation-{n}-{self.sessions}", engine=self.engine, create_tables=True)
        for low in range(0, n, BATCH):
            self._run(self.session.add_items([message(i) for i in range(low, min(n, low + BATCH))]))  # type: ignore[misc]
        self.length = n

    def append(self) -> None:
        self._run(self.session.add_items([self._next()]))  # type: ignore[list-item]

    def last20(self) -> Any:
        return self._run(self.session.get_items(limit=20))

    def read_all(self) -> Any:
        return self._run(self.session.get_items())

    def close(self) -> None:
        self._run(self.engine.dispose())
        self.loop.close()


def _lc(body: dict[str, str]) -> Any:
    from langchain_core.messages import AIMessage, HumanMessage

    return (HumanMessage if body["role"] == "user" else AIMessage)(content=body["content"])


class LangChainPostgres(System):
    name = "LangChain PostgresChatMessageHistory"
    prefill = "add_messages, 10,000 a batch"
    last20_note = "reads all: .messages[-20:]"
    TABLE = "langchain_chat_history"

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(url, schema)
        import psycopg
        from langchain_postgres import PostgresChatMessageHistory

        self.connection = psycopg.connect(with_search_path(url, schema))
        PostgresChatMessageHistory.create_tables(self.connection, self.TABLE)

    def start(self, n: int) -> None:
        from langchain_postgres import PostgresChatMessageHistory

        # Its session ids are UUIDs.
        self.history = PostgresChatMessageHistory(self.TABLE, str(uuid.uuid4()), sync_connection=self.connection)
        for low in range(0, n, BATCH):
            self.history.add_messages([_lc(message(i)) for i in range(low, min(n, low + BATCH))])
        self.length = n

    def append(self) -> None:
        self.history.add_message(_lc(self._next()))

    def last20(self) -> Any:
        return self.history.messages[-20:]

    def read_all(self) -> Any:
        return self.history.messages

    def close(self) -> None:
        self.connection.close()


ALL: list[type[System]] = [Chatkeep, AgentsSQLAlchemy, LangChainPostgres]


def _row(workload: str, n: int, system: System, timing: Timing, note: str = "") -> Row:
    return Row(workload, size_label(n), system.name, SETTING, timing.median, len(timing.samples), note,
               reference=system.name == "chatkeep")


def measure(systems: list[System], n: int, runs: int) -> list[Row]:
    """Start a conversation of ``n`` messages in each system, then time appends and both reads."""
    prefill: dict[str, float] = {}
    for system in systems:
        started = time.perf_counter()
        system.start(n)
        prefill[system.name] = time.perf_counter() - started
        progress(f"{system.name}: prefilled {n:,} in {prefill[system.name]:.1f} s ({system.prefill})")
    rows: list[Row] = []
    work: list[tuple[str, Callable[[System], Callable[[], Any]], int, float]] = [
        (APPEND, lambda s: s.append, runs, 5.0),
        (LAST20, lambda s: s.last20, 31, 3.0),
        (READ_ALL, lambda s: s.read_all, 7 if n > 1_000 else 31, 10.0),
    ]
    for workload, task, count, budget in work:
        progress(f"{workload} at {n:,}")
        timings = interleaved({s.name: task(s) for s in systems}, runs=count, budget_s=budget)
        for system in systems:
            note = f"prefilled in {prefill[system.name]:.1f} s ({system.prefill})" if workload == APPEND else (
                system.last20_note if workload == LAST20 else "")
            rows.append(_row(workload, n, system, timings[system.name], note))
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    server = os.environ.get(SERVER_VARIABLE, "").strip()
    lengths = [10, 1_000] if args.quick else [10, 10_000, 100_000]
    if not server:
        reason = f"not run: no PostgreSQL server ({SERVER_VARIABLE} unset; scripts/bench starts one)"
        rows = [Row(w, size_label(n), kind.name, SETTING, None, 0, reason)
                for n in lengths for w in (APPEND, LAST20, READ_ALL) for kind in ALL]
        write_rows(args.out, rows)
        progress(reason)
        return
    import psycopg

    schemas = {kind.name: f"bench_{kind.__name__.lower()}_{os.getpid()}" for kind in ALL}
    with psycopg.connect(server, autocommit=True) as admin:
        for schema in schemas.values():
            admin.execute(f"CREATE SCHEMA {schema}")
        try:
            systems = [kind(server, schemas[kind.name]) for kind in ALL]
            try:
                rows = [row for n in lengths for row in measure(systems, n, runs=51)]
            finally:
                for system in systems:
                    system.close()
        finally:
            for schema in schemas.values():
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
