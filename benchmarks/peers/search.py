"""Search a million messages for a word, and start the CLI cold: chatkeep against llm.

Both hold the same corpus (``peers.corpus``): 1,000,000 messages in 10,000
conversations of 100, in a chatkeep store and in an llm logs.db.

- search, in the process, the best 20: ``store.search(word)`` (FTS5, bm25
  over the newest 10,000 matches, the best 20 with snippets) against
  ``llm.logs.merged_log_rows(LogStore(db), count=20, query=word)``, the
  function ``llm logs -q`` calls (FTS5 over turn_search, bm25, the best 20
  rows built for display). One llm row is a turn, a prompt and its response:
  two messages. Beside them, the floor of ranking: the same bm25 over the
  same candidates in raw sqlite3, no chatkeep code (ids only, no rows read).
- search, in the process, the newest 20: ``store.search(word,
  order="newest")`` against the search anyone can write without an index, on
  chatkeep's own table: ``SELECT ... WHERE text LIKE '%word%' ORDER BY
  created_at DESC LIMIT 20`` (the newest 20 matches), which reads every
  message's text. The LIKE scan is timed once and shown beside both.
- search from the shell: ``chatkeep search WORD -n 20`` against
  ``llm logs -q WORD -n 20``, each a new process, output discarded.
- cold start: ``chatkeep list`` (20 conversations) against ``llm logs -n 20``,
  and the floor beside them: ``python -c "import sqlite3"`` (starting the same
  Python and importing sqlite3, nothing read), which issue 17 holds chatkeep
  to at most 3x of.

Only reads are timed, so durability plays no part. Each CLI row is the median
wall time of several runs, the systems alternating.

Run from benchmarks/: python -m peers.search --out rows.json [--quick]
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatkeep import open_store

from .common import Row, interleaved, parse_args, progress, write_rows
from .corpus import (
    COMMON,
    COMMON_EVERY,
    PER_CONVERSATION,
    RARE,
    RARE_EVERY,
    build_chatkeep,
    build_llm,
    texts,
)
from .goals import COLD_FLOOR

BIN = Path(sys.executable).parent  # the bench venv's console scripts
LIKE_NAME = "LIKE '%word%' scan of the same table (sqlite3)"
BM25_NAME = "floor: FTS5 bm25 over the newest 10,000 matches, raw sqlite3"
BEST, NEWEST = "chatkeep store.search", "chatkeep store.search(order=\"newest\")"
# What ranking alone costs: chatkeep's index, its query's candidates and order, no chatkeep code.
BM25_FLOOR = ("SELECT seq FROM (SELECT rowid AS seq, bm25(messages_fts) AS score FROM messages_fts"
              " WHERE messages_fts MATCH ? ORDER BY rowid DESC LIMIT 10000) ORDER BY score, seq DESC LIMIT 20")
# The newest 20 matches: every row's text is read, and the matches sorted by time.
LIKE_SCAN = "SELECT id, conversation_id, text FROM messages WHERE text LIKE ? ORDER BY created_at DESC LIMIT 20"


def _size(total: int) -> str:
    return f"{total:,} msgs ({total // PER_CONVERSATION:,} conversations)"


def search_tasks(chatkeep_db: Path, llm_db: Path, word: str, hits: int) -> dict[str, Callable[[], Any]]:
    import sqlite_utils
    from llm.logs import LogStore, merged_log_rows

    store = open_store(chatkeep_db)
    logs = LogStore(sqlite_utils.Database(llm_db))  # type: ignore[no-untyped-call]  # migrates once, here

    # Both find every planted word: a message for chatkeep, the turn holding it for llm.
    def chatkeep() -> None:
        assert len(store.search(word, limit=20)) == min(20, hits)

    def newest() -> None:
        assert len(store.search(word, limit=20, order="newest")) == min(20, hits)

    def llm() -> None:
        assert len(merged_log_rows(logs, count=20, query=word)) == min(20, hits)

    # The search anyone can write without an index: scan every message's text.
    scan = sqlite3.connect(f"file:{chatkeep_db}?mode=ro", uri=True)
    pattern = f"%{word}%"

    def like() -> None:
        assert len(scan.execute(LIKE_SCAN, (pattern,)).fetchall()) == min(20, hits)

    def bm25() -> None:
        assert len(scan.execute(BM25_FLOOR, (word,)).fetchall()) == min(20, hits)

    return {BEST: chatkeep, NEWEST: newest, "llm merged_log_rows (llm logs -q)": llm, BM25_NAME: bm25,
            LIKE_NAME: like}


def command(args: list[str], env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return run


def cli_tasks(chatkeep_db: Path, llm_db: Path, home: Path) -> dict[str, dict[str, Callable[[], None]]]:
    # llm keeps its settings under LLM_USER_PATH: a scratch folder, never the user's.
    env = {**os.environ, "LLM_USER_PATH": str(home), "NO_COLOR": "1"}
    env.pop("CHATKEEP_DB", None)
    ck, llm = [str(BIN / "chatkeep")], [str(BIN / "llm")]
    return {
        f"search from the shell for '{COMMON}'": {
            "chatkeep search -n 20": command(ck + ["search", COMMON, "-n", "20", "--db", str(chatkeep_db)], env),
            "llm logs -q -n 20": command(llm + ["logs", "-q", COMMON, "-n", "20", "-d", str(llm_db)], env),
        },
        "cold start: list the latest": {
            "chatkeep list (20 conversations)": command(ck + ["list", "--db", str(chatkeep_db)], env),
            "llm logs -n 20 (20 turns)": command(llm + ["logs", "-n", "20", "-d", str(llm_db)], env),
            # The same interpreter the console scripts run on, timed in the same rotation.
            COLD_FLOOR: command([sys.executable, "-c", "import sqlite3"], env),
        },
    }


def rows_for(workload: str, size: str, timings: dict[str, Any], setting: str, notes: dict[str, str]) -> list[Row]:
    return [Row(workload, size, name, setting, t.median, len(t.samples), notes.get(name, ""),
                reference=name.startswith("chatkeep"), yardstick=name in (LIKE_NAME, COLD_FLOOR, BM25_NAME))
            for name, t in timings.items()]


def search_rows(word: str, size: str, timings: dict[str, Any], held: str) -> list[Row]:
    """The best 20 and the newest 20 as two workloads, each with the LIKE scan (timed once) beside it."""
    setting = "reads only; same corpus in both"
    best = {name: t for name, t in timings.items() if name != NEWEST}
    newest = {name: timings[name] for name in (NEWEST, LIKE_NAME)}
    like_note = "the newest 20 matches, unranked: every message's text read"
    return (rows_for(f"search for '{word}' (best 20)", size, best, setting, {name: held for name in best}
                     | {LIKE_NAME: f"{held}; {like_note}"})
            + rows_for(f"search for '{word}' (newest 20)", size, newest, setting,
                       {NEWEST: f"{held}; the same 20 as the scan", LIKE_NAME: f"{held}; {like_note}"}))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    total = 20_000 if args.quick else 1_000_000
    size = _size(total)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="chatkeep-bench-") as tmp:
        folder = Path(tmp)
        chatkeep_db, llm_db = folder / "chatkeep.db", folder / "logs.db"
        corpus = texts(total)
        for name, build, path in (("chatkeep", build_chatkeep, chatkeep_db), ("llm", build_llm, llm_db)):
            started = time.perf_counter()
            build(path, corpus)
            progress(f"{name}: {total:,} messages written in {time.perf_counter() - started:.0f} s, "
                     f"{path.stat().st_size / 1e6:,.0f} MB")
        del corpus
        for word, every in ((RARE, RARE_EVERY), (COMMON, COMMON_EVERY)):
            progress(f"search for {word!r}")
            tasks = search_tasks(chatkeep_db, llm_db, word, total // every)
            timings = interleaved(tasks, runs=51, budget_s=5.0)
            rows += search_rows(word, size, timings, f"{total // every:,} messages hold it")
        for workload, tasks in cli_tasks(chatkeep_db, llm_db, folder / "llm-home").items():
            progress(workload)
            timings = interleaved(tasks, runs=15, budget_s=15.0, min_runs=5)
            rows += rows_for(workload, size, timings, "a new process each run; output discarded",
                             {name: "wall time of the whole command" for name in timings}
                             | {COLD_FLOOR: "Python's start and import sqlite3: the floor"})
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
