"""Appends per second from many writer processes at once: SQLite beside PostgreSQL.

Eight processes (``--writers``) each append 1,000 messages (``--appends``):
(a) each to a conversation of its own, then (b) all to one shared conversation,
where every append waits its turn for the conversation's head. The clock runs
from the moment every writer is ready (process start-up is not counted) until
the last one finishes. Afterwards every message is checked: all there, one
chain per conversation, each writer's own order kept.

Durability, as run: SQLite in WAL mode with synchronous=NORMAL (chatkeep's
default: a returned append survives the process being killed, not a power
cut); PostgreSQL with the server's settings, printed below the table
(synchronous_commit=on, its default, flushes the WAL to disk before an append
returns; the throwaway cluster from scripts/postgres keeps fsync on). As that
is the stronger promise, SQLite with synchronous=FULL (an fsync per commit)
runs too, for a like-for-like column.

PostgreSQL is the server named by ``--postgres`` or $CHATKEEP_TEST_POSTGRES, or
else a throwaway cluster started with scripts/postgres; the tables go in a new
schema, dropped afterwards.

Run: .venv/bin/python benchmarks/concurrency.py [--writers 8] [--appends 1000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chatkeep import open_store

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Could you explain how a write-ahead log keeps a database consistent after a crash? " * 2


def writer(
    target: str, options: dict[str, Any], conversation: str, number: int, appends: int, ready: Any
) -> None:
    """One writer process: open the store, wait for the others, append."""
    store = open_store(target, **options)
    conv = store.conversation(conversation)
    ready.wait()
    for i in range(appends):
        conv.append({"role": "user", "content": f"{number}-{i}: {TEXT}"})
    store.close()


def run(target: str, writers: int, appends: int, shared: bool, **options: Any) -> float:
    """Appends per second for one scenario, after checking that nothing was lost."""
    names = ["shared"] if shared else [f"writer-{n}" for n in range(writers)]
    with open_store(target) as store:
        for name in names:
            store.new_conversation(name)
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Barrier(writers + 1)
    procs = [
        spawn.Process(target=writer, args=(target, options, names[0 if shared else n], n, appends, ready))
        for n in range(writers)
    ]
    for proc in procs:
        proc.start()
    ready.wait()
    started = time.perf_counter()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - started
    if any(proc.exitcode != 0 for proc in procs):
        raise SystemExit(f"a writer failed on {target}")
    verify(target, names, writers, appends)
    return writers * appends / elapsed


def verify(target: str, names: list[str], writers: int, appends: int) -> None:
    """Every append is there, on one chain per conversation, in each writer's own order."""
    with open_store(target) as store:
        for name in names:
            texts = [m.message["content"].split(":")[0] for m in store.path(name)]
            expected = writers * appends if len(names) == 1 else appends
            assert len(texts) == expected == store.count_messages(name), (target, name, len(texts))
            for n in range(writers):
                mine = [t for t in texts if t.startswith(f"{n}-")]
                assert mine == [f"{n}-{i}" for i in range(len(mine))], (target, name, n)
        assert store.count_messages() == writers * appends
        problems = store.check_integrity()  # type: ignore[union-attr]
        assert problems == [], problems


@contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    """A PostgreSQL URL: the one given, $CHATKEEP_TEST_POSTGRES, or a throwaway cluster."""
    url = url or os.environ.get("CHATKEEP_TEST_POSTGRES")
    if url:
        yield url
        return
    folder = tempfile.mkdtemp(prefix="chatkeep-pg.", dir="/tmp")
    try:
        started = subprocess.run(["bash", str(ROOT / "scripts" / "postgres"), "start", folder],
                                 check=True, capture_output=True, text=True)
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "postgres"), "stop", folder], check=False)


@contextmanager
def fresh_schema(url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A URL whose tables go in a new schema (dropped afterwards), and the server's durability settings."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        settings = {name: str(admin.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                    for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method")}
        try:
            joiner = "&" if "?" in url else "?"
            yield f"{url}{joiner}options={quote(f'-c search_path={schema}', safe='')}", settings
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: $CHATKEEP_TEST_POSTGRES or a new cluster)")
    args = parser.parse_args()
    scenarios = {"(a) one conversation per writer": False, "(b) all writers, one conversation": True}
    columns = ["SQLite NORMAL", "PostgreSQL", "SQLite FULL"]
    results: dict[str, dict[str, float]] = {name: {} for name in scenarios}
    with tempfile.TemporaryDirectory() as folder:
        for name, shared in scenarios.items():
            for durability, column in (("normal", columns[0]), ("full", columns[2])):
                path = Path(folder) / f"{durability}-{'shared' if shared else 'apart'}.db"
                results[name][column] = run(str(path), args.writers, args.appends, shared, durability=durability)
    settings: dict[str, str] = {}
    with postgres_server(args.postgres) as server:
        for name, shared in scenarios.items():
            with fresh_schema(server) as (url, settings):
                results[name][columns[1]] = run(url, args.writers, args.appends, shared)
    total = args.writers * args.appends
    header = ["appends per second", *columns]
    rows = [[name, *(f"{results[name][column]:,.0f}" for column in columns)] for name in scenarios]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(f"{args.writers} writer processes x {args.appends:,} appends each ({total:,} per scenario),"
          f" on {os.cpu_count()} CPUs; start-up not timed")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print(f"verified: all {total:,} appends present in every run, one chain per conversation,"
          " each writer's order kept, integrity check clean")
    print("SQLite NORMAL: WAL, synchronous=NORMAL (chatkeep's default; no fsync per commit, survives a killed"
          " process); SQLite FULL: WAL, synchronous=FULL (an fsync per commit, survives power loss)")
    print(f"PostgreSQL {settings['server_version']}: synchronous_commit={settings['synchronous_commit']},"
          f" fsync={settings['fsync']}, wal_sync_method={settings['wal_sync_method']} (a WAL flush per commit,"
          " shared by commits that arrive together), over TCP on 127.0.0.1")


if __name__ == "__main__":
    main()
