"""Cost of one append as a conversation grows: chatkeep against the tutorial's JSON file.

The tutorial keeps a list in memory and rewrites conversation_history.json with
json.dump(messages, f, indent=2) after every message. chatkeep appends one row
in one SQLite transaction. Neither fsyncs each write in the default rows
(chatkeep: WAL with synchronous=NORMAL; the tutorial: a plain write); the
"full" row fsyncs every commit.

Run: .venv/bin/python benchmarks/append.py [--lengths 10,10000] [--samples 101]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from chatkeep import open_store

TEXT = "Could you explain how a write-ahead log keeps a database consistent after a crash? " * 2


def message(i: int) -> dict[str, str]:
    return {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}: {TEXT}"}


def timed(append: Callable[[int], None], start: int, samples: int) -> float:
    """Median milliseconds of ``samples`` appends made from length ``start``."""
    costs = []
    for i in range(start, start + samples):
        t0 = time.perf_counter()
        append(i)
        costs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(costs)


def bench_chatkeep(folder: Path, lengths: list[int], samples: int, durability: str) -> list[float]:
    conv = open_store(folder / f"chatkeep-{durability}.db", durability=durability).new_conversation()
    medians, length = [], 0
    for target in lengths:
        while length < target:  # grow the conversation through the public API
            conv.append(message(length))
            length += 1
        medians.append(timed(lambda i: conv.append(message(i)) and None, length, samples))
        length += samples
    return medians


def bench_tutorial(folder: Path, lengths: list[int], samples: int) -> list[float]:
    file = folder / "conversation_history.json"
    messages: list[dict[str, str]] = []

    def append(i: int) -> None:
        messages.append(message(i))
        with open(file, "w") as f:
            json.dump(messages, f, indent=2)

    medians = []
    for target in lengths:
        messages.extend(message(i) for i in range(len(messages), target))  # grown without writing
        medians.append(timed(append, len(messages), samples))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="10,10000")
    parser.add_argument("--samples", type=int, default=101)
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = {
            "chatkeep (SQLite, WAL, synchronous=NORMAL)": bench_chatkeep(folder, lengths, args.samples, "normal"),
            "chatkeep (SQLite, WAL, synchronous=FULL)": bench_chatkeep(folder, lengths, args.samples, "full"),
            "tutorial (rewrite JSON file, no fsync)": bench_tutorial(folder, lengths, args.samples),
        }
    header = ["system"] + [f"append at {n:,} (ms)" for n in lengths] + [f"ratio {lengths[-1]:,}/{lengths[0]:,}"]
    widths = [max(len(header[0]), *map(len, rows))] + [len(h) for h in header[1:]]
    print(f"median of {args.samples} appends at each length")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-|-".join("-" * w for w in widths))
    for name, medians in rows.items():
        cells = [name] + [f"{m:.3f}" for m in medians] + [f"{medians[-1] / medians[0]:.2f}"]
        print(" | ".join(c.ljust(w) for c, w in zip(cells, widths)))


if __name__ == "__main__":
    main()
