"""Append one message as a conversation grows, then read the last 20 and all of the longest.

For each length every system starts a new conversation of that length, then
the systems take turns appending one message each (about 170 characters, user
and assistant alternating), the first of each round rotating, and the median
of each one's appends is kept. A system whose prefill takes more than 60 s,
or whose append takes more than 2 s, is measured at that length and not run
at longer ones; its rows say so.

- chatkeep: ``open_store(path).new_conversation()``-style conversation,
  prefilled with ``import_conversations`` (one transaction), timed
  ``conv.append(message)``; reads ``conv.history(last=20)`` and ``conv.messages``.
  WAL, synchronous=NORMAL (the default): no fsync per commit.
- tutorial: a list in memory, ``json.dump(messages, f, indent=2)`` to its file
  after each message; no fsync. Reads are ``json.load`` of the file, what a
  restart costs (a running process holds the list).
- LangChain ``FileChatMessageHistory``: prefilled by writing its JSON file
  directly (``add_messages`` re-reads and rewrites the file per message);
  ``add_message``; no fsync. ``.messages`` reads the whole file.
- LangChain ``SQLChatMessageHistory`` on a SQLite file, one database for all
  conversations, prefilled by ``add_messages`` 10,000 at a time. Its engine is
  set to WAL with synchronous=NORMAL (an engine ``connect`` event); as shipped
  it uses a rollback journal with synchronous=FULL, an fsync per commit.
  ``.messages`` reads all (there is no limit, and ``session_id`` has no index).
- LlamaIndex ``SimpleChatStore``: ``add_message`` then ``persist(path)``, one
  file per conversation; no fsync. Reads are ``from_persist_path`` then
  ``get_messages``, what a restart costs (a running process holds the list).
- The floors, for appends only: one raw ``sqlite3`` ``INSERT`` of the message
  as JSON into a plain table (``seq``, ``conversation_id``, ``body``), committed
  as it ends, the floor issue 17 names; the same with a full-text index
  (an FTS5 table kept by a trigger: what any searchable store adds to each
  commit); and chatkeep's own statements (take the
  write lock, read the head, insert the row, move the head, commit) run with
  raw ``sqlite3`` on a database chatkeep made, so the row lands in the same
  tables, indexes and search index: what SQLite itself costs for chatkeep's
  row, without chatkeep's Python. All WAL with synchronous=NORMAL.
- Agents SDK ``SQLiteSession(session_id, db_path)``, one database for all
  conversations, prefilled by ``add_items`` 10,000 at a time; timed
  ``await add_items([item])`` (it runs the write in a worker thread) and
  ``get_items(limit=20)`` / ``get_items()``. WAL as shipped; synchronous set to
  NORMAL through a subclass of its connection hook (the SDK has no option; its
  default FULL fsyncs every commit).

Run from benchmarks/: python -m peers.storage --out rows.json [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .common import Row, Timing, interleaved, parse_args, progress, size_label, write_rows
from .systems import ALL, FLOORS, System

PREFILL_CUTOFF_S = 60.0
APPEND_CUTOFF_MS = 2000.0
APPEND = "append one message"
LAST20 = "read the last 20 messages"
READ_ALL = "read all messages"


def _timed_row(workload: str, n: int, system: System, timing: Timing, note: str = "") -> Row:
    notes = [part for part in (note, timing.cut and f"cut: {timing.cut}") if part]
    return Row(workload, size_label(n), system.name, system.setting, timing.median, len(timing.samples),
               "; ".join(notes), reference=system.name == "chatkeep", yardstick=system.floor)


def _skipped(workload: str, n: int, system: System) -> Row:
    return Row(workload, size_label(n), system.name, system.setting, None, 0, f"not run: {system.cut}",
               yardstick=system.floor)


def append_rows(systems: list[System], lengths: list[int], runs: int) -> list[Row]:
    rows: list[Row] = []
    for n in lengths:
        active = [s for s in systems if not s.cut]
        prefill: dict[str, float] = {}
        for system in active:
            started = time.perf_counter()
            system.start(n)
            prefill[system.name] = time.perf_counter() - started
            progress(f"{system.name}: prefilled {n:,} in {prefill[system.name]:.1f} s ({system.prefill})")
        timings = interleaved({s.name: s.append for s in active}, runs=runs, budget_s=4.0,
                              cutoff_ms=APPEND_CUTOFF_MS)
        for system in systems:
            if system not in active:
                rows.append(_skipped(APPEND, n, system))
                continue
            timing = timings[system.name]
            note = f"prefilled in {prefill[system.name]:.1f} s ({system.prefill})"
            rows.append(_timed_row(APPEND, n, system, timing, note))
            if timing.cut:
                system.cut = f"an append at {n:,} took {timing.median or 0:,.0f} ms (> 2 s cut-off)"
            elif prefill[system.name] > PREFILL_CUTOFF_S:
                system.cut = f"prefilling {n:,} took {prefill[system.name]:.0f} s (> 60 s cut-off)"
    return rows


def read_rows(systems: list[System], n: int) -> list[Row]:
    """Reads of the conversation each system holds at length ``n`` (made by ``append_rows``)."""
    rows: list[Row] = []
    systems = [s for s in systems if not s.floor]  # the floors are measured for appends only
    ready = [s for s in systems if s.length >= n]
    for workload, runs, budget, read in ((LAST20, 31, 3.0, "last20"), (READ_ALL, 7, 8.0, "read_all")):
        progress(f"{workload} of {n:,}")
        timings = interleaved({s.name: getattr(s, read) for s in ready}, runs=runs, budget_s=budget)
        for system in systems:
            if system not in ready:
                rows.append(Row(workload, size_label(n), system.name, system.setting, None, 0,
                                f"not run: it never reached {n:,} ({system.cut})"))
                continue
            note = system.last20_note if workload == LAST20 else ""
            rows.append(_timed_row(workload, n, system, timings[system.name], note))
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    lengths = [10, 1_000, 5_000] if args.quick else [10, 1_000, 10_000, 100_000]
    with tempfile.TemporaryDirectory(prefix="chatkeep-bench-") as tmp:
        systems = [kind(Path(tmp)) for kind in ALL + FLOORS]
        rows = append_rows(systems, lengths, runs=51)
        rows += read_rows(systems, lengths[-1])
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
