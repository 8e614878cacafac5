"""The summary table, the machine it ran on, and docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from . import goals
from .common import Row

LIBRARIES = [
    "chatkeep", "openai", "langchain-core", "langchain-community", "langchain-postgres", "SQLAlchemy", "asyncpg",
    "psycopg", "llama-index-core", "openai-agents", "llm", "sqlite-utils", "tiktoken", "pydantic", "msgspec",
]
HEADER = ["workload", "size", "system", "median", "peer / chatkeep", "runs", "setting", "notes"]


@dataclass
class Machine:
    cpu: str
    cores: int
    ram_gib: float
    os: str
    python: str
    sqlite: str

    @classmethod
    def here(cls) -> Machine:
        cpu = platform.processor() or platform.machine()
        ram = 0.0
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal"):
                    ram = int(line.split()[1]) / 1024 / 1024
        except OSError:
            pass  # not Linux: the platform module's coarser answer stands
        return cls(cpu, os.cpu_count() or 0, ram, _os_name(), platform.python_version(), sqlite3.sqlite_version)

    def lines(self) -> list[str]:
        return [
            f"- CPU: {self.cpu}, {self.cores} cores",
            f"- RAM: {self.ram_gib:.1f} GiB",
            f"- OS: {self.os}",
            f"- Python {self.python}, SQLite {self.sqlite}",
        ]


def _os_name() -> str:
    name = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return f"{name}, kernel {platform.release()}"


def versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value:.3f} ms"
    if value < 100:
        return f"{value:.2f} ms"
    return f"{value:,.0f} ms"


def ratios(rows: list[Row]) -> dict[int, float | None]:
    """peer / chatkeep for every row, against the reference row of its workload and size."""
    reference: dict[tuple[str, str], float | None] = {}
    for row in rows:
        if row.reference:
            reference.setdefault((row.workload, row.size), row.ms)
    out: dict[int, float | None] = {}
    for index, row in enumerate(rows):
        base = reference.get((row.workload, row.size))
        out[index] = row.ms / base if row.ms is not None and base else None
    return out


def _cells(rows: list[Row]) -> list[list[str]]:
    ratio = ratios(rows)
    cells = []
    for index, row in enumerate(rows):
        r = ratio[index]
        shown = "—" if r is None else ("1 (reference)" if row.reference and r == 1 else f"{r:,.2f}")
        cells.append([row.workload, row.size, row.system, _ms(row.ms), shown, str(row.runs),
                      row.setting, row.note])
    return cells


def table(rows: list[Row]) -> str:
    """A Markdown table that also reads as plain text; repeated workload and size cells are blanked."""
    body = _cells(rows)
    previous: tuple[str, str] = ("", "")
    for cells in body:
        key = (cells[0], cells[1])
        if key == previous:
            cells[0] = cells[1] = ""
        elif cells[0] == previous[0]:
            cells[0] = ""
        previous = key
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in body]
    return "\n".join(lines)


def not_ahead(rows: list[Row]) -> list[str]:
    """Rows where a peer measured at most chatkeep's time."""
    lines = []
    for row, ratio in zip(rows, ratios(rows).values()):
        if not row.reference and not row.yardstick and ratio is not None and ratio <= 1:
            lines.append(f"- {row.workload}, {row.size}: {row.system} at {ratio:.2f}× chatkeep's time")
    return lines


def markdown(rows: list[Row], *, machine: Machine, started: datetime, elapsed_s: float,
             workloads: dict[str, str], failures: list[str]) -> str:
    parts = [
        "# Benchmarks: chatkeep beside what users would pick instead",
        "",
        "Written by `bash scripts/bench` (do not edit by hand): it builds `.venv-bench`, installs",
        "`-e '.[bench]'` and runs `benchmarks/run_all.py`, which runs every workload below in its",
        "own process. Every number is a median of several runs; the systems of a workload take",
        "turns call by call, the first of each round rotating, so the noise of a shared machine",
        "hits them alike. **peer / chatkeep** divides a row's median by chatkeep's in the same",
        "workload and size: above 1, chatkeep is faster. A row without a median says why.",
        "",
        f"Run on {started.strftime('%Y-%m-%d %H:%M UTC')}, taking {elapsed_s / 60:.1f} minutes.",
        "",
        "## Machine",
        "",
        *machine.lines(),
        "",
        "## Libraries measured",
        "",
        *[f"- {name} {version}" for name, version in versions().items()],
        "",
        "scripts/bench installs pydantic<2.14 when LlamaIndex's `SimpleChatStore` cannot persist",
        "under the newest pydantic (llama-index-core 0.14.25 passes pydantic's `SerializationInfo`",
        "where pydantic 2.14 requires an index key), so LlamaIndex can be measured at all.",
        "",
        "## Results",
        "",
        table(rows),
        "",
        "## Goals",
        "",
        "Issue 17's goals, from the rows above: chatkeep's median divided by the yardstick's",
        "(a peer, a floor, the tutorial's `json.load`, a LIKE scan) at each size, and whether",
        "that meets the goal. Rows whose system starts with `floor:` are not peers: they",
        "measure what SQLite itself costs, without chatkeep.",
        "",
        goals.table(rows),
        "",
        "## Where chatkeep is not ahead",
        "",
        *(not_ahead(rows) or ["- nowhere: every peer row is slower than chatkeep's"]),
        *(["", "## Workloads that failed", "", *failures] if failures else []),
        "",
        "## What each workload does",
        "",
    ]
    for name, text in workloads.items():
        parts += [f"### {name}", "", text.strip(), ""]
    return "\n".join(parts)


def now() -> datetime:
    return datetime.now(timezone.utc)
