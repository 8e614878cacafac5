"""What every workload shares: result rows, interleaved median timing, and the command line."""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent
# The workloads reuse the message shapes of the single-system benchmarks beside them.
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

#: chatkeep's default durability, which every row states its own setting against.
CHATKEEP_DURABILITY = "WAL, synchronous=NORMAL: no fsync per commit"


@dataclass
class Row:
    """One line of the summary table: a system's median on one workload at one size."""

    workload: str
    size: str
    system: str
    setting: str  # durability, or how the system was made to do the workload
    ms: float | None  # median milliseconds; None when not measured (see note)
    runs: int = 0
    note: str = ""
    reference: bool = False  # the chatkeep row the other rows' ratios divide by
    yardstick: bool = False  # not a peer: a floor or a plain scan, what a goal is measured against


@dataclass
class Timing:
    """The measured calls of one task; ``cut`` says why it stopped early."""

    samples: list[float] = field(default_factory=list)
    cut: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


def clock(work: Callable[[], Any]) -> float:
    """Milliseconds one call takes."""
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def interleaved(
    tasks: dict[str, Callable[[], Any]],
    *,
    runs: int,
    budget_s: float = 3.0,
    min_runs: int = 3,
    cutoff_ms: float | None = None,
    warmup: bool = True,
) -> dict[str, Timing]:
    """Time every task round-robin, rotating who goes first, so machine noise hits all alike.

    A task gets ``runs`` calls, or fewer when its first call shows that ``runs``
    would take more than ``budget_s`` (never fewer than ``min_runs``). A task
    whose first call exceeds ``cutoff_ms`` runs ``min_runs`` times and is
    marked cut, so the caller can stop it at the next size.
    """
    timings = {name: Timing() for name in tasks}
    wanted: dict[str, int] = {}
    for name, task in tasks.items():
        first = clock(task)  # a warm-up: caches, imports, lazy connections
        if not warmup or first > 1000:  # a second-long call is not skewed by a cold cache
            timings[name].samples.append(first)
        if cutoff_ms is not None and first > cutoff_ms:
            wanted[name] = min_runs
            timings[name].cut = f"{first / 1000:.1f} s a call (> {cutoff_ms / 1000:g} s cut-off)"
        else:
            wanted[name] = max(min_runs, min(runs, int(budget_s * 1000 / max(first, 1e-3))))
    names = list(tasks)
    # Every system's prefilled objects live in this one process: frozen, the
    # collector no longer walks them, so one system's big heap does not slow
    # the collections another system's allocations trigger.
    gc.collect()
    gc.freeze()
    try:
        for turn in range(max(wanted.values(), default=0)):
            order = names[turn % len(names):] + names[:turn % len(names)]
            for name in order:
                if len(timings[name].samples) < wanted[name]:
                    timings[name].samples.append(clock(tasks[name]))
    finally:
        gc.unfreeze()
    return timings


def size_label(n: int) -> str:
    return f"{n:,} msgs"


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True, help="write the result rows here (JSON)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a measurement")
    return parser.parse_args(argv)


def write_rows(path: Path, rows: list[Row]) -> None:
    path.write_text(json.dumps([asdict(row) for row in rows], indent=1))


def progress(text: str) -> None:
    """A line on stderr, so a long run shows where it is."""
    print(f"  {text}", file=sys.stderr, flush=True)
