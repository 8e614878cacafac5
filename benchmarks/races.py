"""Concurrency figures for docs/reliability.md: lost and misplaced messages under racing writers.

Runs the scenarios of tests/racecases.py, larger than the tests do, on SQLite,
PostgreSQL (when --postgres URL or $CHATKEEP_TEST_POSTGRES names a server) and
the tutorial's JSON file, and prints one Markdown table. Every row should read
0 lost and 0 misplaced.

Run: .venv/bin/python benchmarks/races.py [--turns 20] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakeopenai import FakeOpenAI  # noqa: E402
from racecases import (  # noqa: E402
    Figures,
    chats_in_tasks,
    chats_in_threads,
    json_file_chats,
    json_file_processes,
    session_add_racing_pop,
    undo_racing_appends,
)


def _fresh_schema(server: str) -> str:
    """A new schema on the server, so every scenario starts empty."""
    import psycopg

    schema = f"races_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in server else "?"
    return f"{server}{separator}options=-csearch_path%3D{schema}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20, help="turns per chat")
    parser.add_argument("--postgres", default=os.environ.get("CHATKEEP_TEST_POSTGRES"), help="a server URL")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chatkeep-races-"))
    backends: dict[str, Callable[[], str]] = {"SQLite": lambda: str(work / f"{uuid.uuid4().hex}.db")}
    if args.postgres:
        backends["PostgreSQL"] = lambda: _fresh_schema(args.postgres)
    rows: list[tuple[str, Figures]] = []
    for name, target in backends.items():
        for shape in ("threads", "tasks", "shared"):
            with FakeOpenAI() as server:
                if shape == "threads":
                    rows.append((name, chats_in_threads(target(), server, chats=4, turns=args.turns)))
                else:
                    rows.append((name, chats_in_tasks(target(), server, chats=4, turns=args.turns,
                                                      shared=shape == "shared")))
        rows.append((name, undo_racing_appends(target(), start=100, appends=500, undos=100)))
        rows.append((name, session_add_racing_pop(target(), start=300, adds=300, pops=300)))
    rows.append(("JSON file", json_file_processes(str(work / "conversation_history.json"), processes=8,
                                                  appends=100)))
    with FakeOpenAI() as server:
        rows.append(("JSON file", json_file_chats(str(work / "chats.json"), server, chats=4,
                                                  turns=max(2, args.turns // 4))))
    print("| store | scenario | processes or tasks | operations | lost | misplaced |")
    print("|---|---|---|---|---|---|")
    for name, f in rows:
        print(f"| {name} | {f.scenario} | {f.workers} | {f.operations:,} | {f.lost} | {f.misplaced} |")
        for note in f.notes[:3]:
            print(f"|  | ↳ {note} | | | | |")


if __name__ == "__main__":
    main()
