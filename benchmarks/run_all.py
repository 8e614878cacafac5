"""Run every side-by-side benchmark, print one table, and write docs/benchmarks.md.

Each workload runs in its own process (``python -m peers.NAME``), so one
system's memory, threads or global settings (LlamaIndex's tokenizer, say)
never reach the next workload, and a workload that fails leaves the others'
rows standing. ``bash scripts/bench`` runs this in the benchmark venv.

Run: .venv-bench/bin/python benchmarks/run_all.py [--quick] [--only storage,trim] [--doc PATH]
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers import goals  # noqa: E402
from peers.common import Row  # noqa: E402
from peers.report import Machine, markdown, now, table  # noqa: E402

# In the order they run: cheap and telling first, the million-message build late.
WORKLOADS = {
    "storage": "Append, and read the last 20 and all",
    "postgres": "PostgreSQL: append, and read the last 20 and all",
    "trim": "Build the next turn's context",
    "turns": "A chat turn's overhead",
    "search": "Search, and the CLI's cold start",
}


# Scripts whose own Markdown table goes into the document as it is, after the rows above.
STANDALONE = {
    "attachments.py": "Attachments: the same image re-sent every turn",
    "bulk_import.py": "Bulk import: a 200 MB ChatGPT export, and one 200 MB conversation",
    "web_open.py": "chatkeep serve in the browser",
}
#: Each standalone script's smaller sizes under --quick.
QUICK_ARGS = {"attachments.py": ["--turns", "20"], "bulk_import.py": ["--size-mb", "20", "--runs", "1"],
              "web_open.py": ["--messages", "1000", "--conversations", "2000", "--runs", "2"]}


def standalone(script: str, quick: bool) -> str:
    """Run one standalone benchmark; its printed table, under its heading and docstring."""
    command = [sys.executable, "-W", "ignore", str(HERE / script)] + (QUICK_ARGS.get(script, []) if quick else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    # Read, not imported: a script's imports (the browser's, say) are its own process's business.
    doc = (ast.get_docstring(ast.parse((HERE / script).read_text())) or "").strip()
    body = done.stdout.strip() if done.returncode == 0 else f"(failed: {done.stderr.strip()[-500:]})"
    print(f"\n{STANDALONE[script]}\n{body}")
    return f"\n## {STANDALONE[script]}\n\n{doc}\n\n{body}\n"


def description(module: str) -> str:
    """The workload module's docstring, less its run line: what it measures and how."""
    doc = importlib.import_module(f"peers.{module}").__doc__ or ""
    return "\n".join(line for line in doc.splitlines() if not line.startswith("Run from"))


def run(module: str, out: Path, quick: bool) -> str:
    """Run one workload; return its failure, or ``""``."""
    started = time.perf_counter()
    print(f"[{module}] {WORKLOADS[module]}", file=sys.stderr, flush=True)
    command = [sys.executable, "-m", f"peers.{module}", "--out", str(out)] + (["--quick"] if quick else [])
    done = subprocess.run(command, cwd=HERE, check=False)
    print(f"[{module}] {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return "" if done.returncode == 0 else f"- {module}: exited with status {done.returncode} (its error is above)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the machinery, measures nothing")
    parser.add_argument("--only", help="comma-separated workloads to run (default: all)")
    parser.add_argument("--doc", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(WORKLOADS)
    unknown = set(chosen) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))} (known: {', '.join(WORKLOADS)})")
    started, clock = now(), time.perf_counter()
    rows: list[Row] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chatkeep-bench-rows-") as tmp:
        for module in chosen:
            out = Path(tmp) / f"{module}.json"
            failure = run(module, out, args.quick)
            if failure:
                failures.append(failure)
            if out.exists():
                rows += [Row(**row) for row in json.loads(out.read_text())]
    elapsed = time.perf_counter() - clock
    print()
    print(table(rows))
    print()
    print(goals.table(rows))
    if failures:
        print("\nfailed:\n" + "\n".join(failures))
    text = markdown(rows, machine=Machine.here(), started=started, elapsed_s=elapsed,
                    workloads={WORKLOADS[m]: description(m) for m in chosen}, failures=failures)
    if not args.only:
        text += "".join(standalone(script, args.quick) for script in STANDALONE)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(text)
    print(f"\n{len(rows)} rows in {elapsed / 60:.1f} minutes; written to {args.doc}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
