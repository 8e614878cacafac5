"""A chat turn's overhead over the bare SDK call: benchmarks/turn.py, its rows for the summary.

The loopback server of the tests answers after 20 ms; the bare openai SDK and
chatkeep's ``Chat``/``AsyncChat`` alternate turn by turn (see benchmarks/turn.py).
chatkeep saves the user message before the call and the reply after it, with
its default durability. The ratio here is SDK / chatkeep like every other row,
so a value just under 1 is chatkeep's own cost per turn.

Run from benchmarks/: python -m peers.turns --out rows.json [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from pathlib import Path

import turn  # benchmarks/turn.py; it puts tests/ on the path for the loopback server

from chatkeep import open_store
from fakeopenai import FakeOpenAI, text  # tests/fakeopenai.py, importable once turn is imported

from .common import CHATKEEP_DURABILITY, Row, parse_args, progress, write_rows

LATENCY_MS = 20.0
WORKLOAD = f"chat turn on a loopback server ({LATENCY_MS:g} ms latency)"


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    turns, warmup = (20, 2) if args.quick else (200, 5)
    bare: turn.Times = {}
    keep: turn.Times = {}
    checks: list[str] = []
    reply = text(turn.REPLY, chunk_size=16)
    with tempfile.TemporaryDirectory(prefix="chatkeep-bench-") as tmp, \
            FakeOpenAI(default=reply, latency=LATENCY_MS / 1000) as server, \
            open_store(Path(tmp) / "bench.db") as store:
        for aio in (False, True):
            progress(f"{turns} {'async' if aio else 'sync'} turns")
            b, k, c = asyncio.run(turn.run(server, store, turns, warmup, aio))
            bare, keep, checks = {**bare, **b}, {**keep, **k}, checks + c
    lost = [line for line in checks if not line.endswith("OK")]
    rows = []
    for name, samples in bare.items():
        rows.append(Row(WORKLOAD, name, "bare openai SDK", "a list in memory: nothing saved",
                        statistics.median(samples), len(samples), "" if not lost else "; ".join(lost)))
        rows.append(Row(WORKLOAD, name, "chatkeep Chat / AsyncChat", CHATKEEP_DURABILITY, statistics.median(keep[name]),
                        len(keep[name]), "every turn stored, checked against the SDK's list"
                        if not lost else "; ".join(lost), reference=True))
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
