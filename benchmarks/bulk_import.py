"""Importing a 200 MB ChatGPT export, and one 200 MB conversation, beside ``json.load`` of the same file.

Two files are generated in a temporary folder, both shaped as ChatGPT's
``conversations.json`` (each node with its author, content parts, status,
metadata, parent and children; a hidden system node under the empty root;
some turns regenerated or edited, so the trees branch):

- an export of many conversations (10 to 80 messages each);
- an export holding one conversation of the whole size (one record).

Each is imported into a new SQLite store (WAL, synchronous=NORMAL) by
``store.import_conversations(read_conversations(FILE))``, what ``chatkeep
import FILE`` runs, and loaded by ``json.load``. Every measurement runs in a
fresh process, several times (medians). Peak memory is the child's
``ru_maxrss`` less that of a baseline child that only imports what the
measured one needs (``json``; ``chatkeep`` with its store and importers), so
it counts what the work itself held. Prints one Markdown table with both
systems' time and peak memory and chatkeep's ratios to ``json.load``, and a
floor: the time to write the same messages, read beforehand, as rows of
chatkeep's schema with its full-text index (no parsing, mapping or checks),
with the search index's part of it (the floor less the same rows written
with the index's insert trigger dropped: FTS5's tokenizing and segment
writes, and the word splitting its trigger calls), and the time msgspec, the
fastest parser at hand, takes to parse the file alone. Under the table, a line
checks issue 17's goal on the run's ratios.

Run: .venv/bin/python benchmarks/bulk_import.py [--size-mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_WORDS = ("the a to of and in is that for it on with as you this be are can not or by from at your an use have "
          "function value error file data model return list python import class self string code example type "
          "query table index server request response token message context branch store import export test "
          "because when which would should could then than into only also more most other some such these "
          "time first last long short build read write check run call send keep make take give find know").split()


def _paragraphs(rng: random.Random, count: int = 400) -> list[str]:
    """A pool of sentences to draw message text from (drawing words one by one would dominate the run)."""
    pool = []
    for _ in range(count):
        words = rng.choices(_WORDS, k=rng.randint(8, 40))
        pool.append(" ".join(words).capitalize() + rng.choice((".", ".", "?", ":")))
    return pool


class _Texts:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pool = _paragraphs(rng)
        self.serial = 0

    def text(self, chars: int) -> str:
        self.serial += 1
        parts = [f"({self.serial})"]
        size = 0
        while size < chars:
            piece = self.rng.choice(self.pool)
            parts.append(piece)
            size += len(piece) + 1
            if self.rng.random() < 0.15:
                parts.append("\n\n")
        return " ".join(parts)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _tree(rng: random.Random, messages: int) -> tuple[list[tuple[str, str | None, str]], str]:
    """``(id, parent, role)`` of a conversation's nodes (the empty root first), and its current node.

    Mostly a line of user and assistant turns; about one turn in ten is
    regenerated (a second reply beside the first) and one in twenty edited
    (a second user message, with its reply, beside the first).
    """
    root, system = _uuid(rng), _uuid(rng)
    nodes: list[tuple[str, str | None, str]] = [(root, None, "root"), (system, root, "system")]
    tip = system
    while len(nodes) < messages:
        user, reply = _uuid(rng), _uuid(rng)
        nodes += [(user, tip, "user"), (reply, user, "assistant")]
        roll = rng.random()
        if roll < 0.10:
            nodes.append((_uuid(rng), user, "assistant"))
        elif roll < 0.15:
            edited = _uuid(rng)
            nodes += [(edited, tip, "user"), (_uuid(rng), edited, "assistant")]
        tip = reply
    return nodes, tip


def _node(key: str, parent: str | None, role: str, children: list[str], texts: _Texts, when: float) -> dict[str, Any]:
    if role == "root":
        return {"id": key, "message": None, "parent": parent, "children": children}
    hidden = role == "system"
    text = "" if hidden else texts.text(texts.rng.randint(150, 800) if role == "user" else texts.rng.randint(400, 3000))
    metadata: dict[str, Any] = {"is_visually_hidden_from_conversation": True} if hidden else {
        "citations": [], "timestamp_": "absolute", "message_type": None}
    if role == "assistant":
        metadata.update({"finish_details": {"type": "stop", "stop_tokens": [200002]}, "is_complete": True,
                         "model_slug": "gpt-4o", "default_model_slug": "gpt-4o", "parent_id": parent,
                         "request_id": f"{texts.rng.getrandbits(64):016x}"})
    message = {
        "id": key, "author": {"role": role, "name": None, "metadata": {}},
        "create_time": None if hidden else when, "update_time": None,
        "content": {"content_type": "text", "parts": [text]}, "status": "finished_successfully",
        "end_turn": True if role == "assistant" else None, "weight": 0.0 if hidden else 1.0,
        "metadata": metadata, "recipient": "all", "channel": None,
    }
    return {"id": key, "message": message, "parent": parent, "children": children}


def _write_conversation(out: IO[str], rng: random.Random, texts: _Texts, messages: int) -> int:
    """Write one conversation object; return how many messages chatkeep keeps of it (user and assistant)."""
    nodes, current = _tree(rng, messages)
    children: dict[str, list[str]] = {}
    for key, parent, _ in nodes:
        if parent is not None:
            children.setdefault(parent, []).append(key)
    started = 1.7e9 + rng.random() * 1e7
    key = nodes[0][0]
    out.write(json.dumps({"title": f"Conversation {key[:8]}", "create_time": started, "update_time": started + 600})[:-1])
    out.write(', "mapping": {')
    # As in real exports, the hidden system node comes before the root it hangs under.
    for number, (key, parent, role) in enumerate([nodes[1], nodes[0], *nodes[2:]]):
        node = _node(key, parent, role, children.get(key, []), texts, started + number)
        out.write(("" if number == 0 else ", ") + json.dumps(key) + ": " + json.dumps(node))
    out.write("}, " + json.dumps({"moderation_results": [], "current_node": current, "plugin_ids": None,
                                  "conversation_id": nodes[0][0], "gizmo_id": None, "is_archived": False,
                                  "safe_urls": [], "default_model_slug": "gpt-4o", "id": nodes[0][0]})[1:])
    return sum(role in ("user", "assistant") for _, _, role in nodes)


def write_export(path: Path, size: int, *, one: bool, seed: int = 1) -> tuple[int, int]:
    """A ``conversations.json`` of about ``size`` bytes; return its conversations and kept messages."""
    rng = random.Random(seed)
    texts = _Texts(rng)
    conversations = kept = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        if one:
            kept = _write_conversation(out, rng, texts, max(4, size // 1800))  # about 1.8 KB a node
            conversations = 1
        while not one and out.tell() < size:
            out.write(",\n" if conversations else "")
            kept += _write_conversation(out, rng, texts, rng.randint(10, 80))
            conversations += 1
        out.write("]\n")
    return conversations, kept


# -- the measured children ------------------------------------------------------------------


def _child(mode: str, file: str, db: str) -> None:
    """Run one measurement in this fresh process and print its figures as JSON."""
    if mode.startswith("json"):
        import json as measured  # noqa: F401 - what the baseline holds
    else:
        import chatkeep.store.sqlite  # noqa: F401 - what open_store loads for a .db path
        from chatkeep import open_store
        from chatkeep.formats import read_conversations
    figures: dict[str, Any] = {}
    if mode == "json":
        started = time.perf_counter()
        with open(file, encoding="utf-8") as stream:
            json.load(stream)
        figures["seconds"] = time.perf_counter() - started
    elif mode == "chatkeep":
        started = time.perf_counter()
        store = open_store(db)
        summary = store.import_conversations(read_conversations(file))
        store.close()
        figures["seconds"] = time.perf_counter() - started
        figures["messages"] = summary.messages_added
    elif mode == "parse":
        import msgspec

        started = time.perf_counter()
        with open(file, "rb") as raw:
            msgspec.json.decode(raw.read())  # the fastest parser at hand, the whole file at once
        figures["seconds"] = time.perf_counter() - started
    elif mode == "floor":
        figures["seconds"] = _floor(file, db)
    elif mode == "floor-rows":
        figures["seconds"] = _floor(file, db, search_index=False)
    figures["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(figures))


def _floor(file: str, db: str, *, search_index: bool = True) -> float:
    """Seconds to write the file's messages, read beforehand, as rows of chatkeep's schema with its search index.

    No parsing, mapping, checking or tree walking: only the INSERTs (as many
    rows a statement as the import writes, one transaction, WAL,
    synchronous=NORMAL, the import's page cache), the index's triggers, and
    after each statement the backlog joining the search index with the word
    splitting it calls, as the import does. What no importer into this schema can go
    below. ``search_index=False`` drops the index's insert trigger from this
    throwaway database first: the rows and their own indexes alone, so the
    difference is what the search index costs.
    """
    import sqlite3

    from chatkeep import open_store
    from chatkeep.store.sqlite_bulk import IMPORT_CACHE_KIB, ROWS_PER_INSERT
    from chatkeep.store.sqlite_schema import add_functions
    from chatkeep.store.sqlite_search_backlog import index_backlog

    with open(file, encoding="utf-8") as stream:
        rows = [(f"m{n}", node["message"]["author"]["role"], text) for n, (node, text) in enumerate(
            (node, node["message"]["content"]["parts"][0]) for conversation in json.load(stream)
            for node in conversation["mapping"].values() if node.get("message"))
            if node["message"]["author"]["role"] in ("user", "assistant")]
    open_store(db).close()
    connection = sqlite3.connect(db, isolation_level=None)
    add_functions(connection)
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KIB}")
    if not search_index:
        connection.execute("DROP TRIGGER messages_fts_insert")
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO conversations (id, created_at, updated_at) VALUES ('c', 'now', 'now')")
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start:start + ROWS_PER_INSERT]
        connection.execute("INSERT INTO messages (id, conversation_id, role, body, text, created_at) VALUES "
                           + ", ".join(["(?, 'c', ?, ?, ?, 'now')"] * len(chunk)),
                           [value for key, role, text in chunk
                            for value in (key, role, json.dumps({"role": role, "content": text}), text)])
        if search_index:
            index_backlog(connection)  # the chunk's rows join the search index, as the import's do
    connection.execute("COMMIT")
    connection.close()
    return time.perf_counter() - started


def _measure(mode: str, file: Path, folder: Path) -> dict[str, Any]:
    db = folder / f"import-{time.monotonic_ns()}.db"
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(file), str(db)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} on {file.name} failed:\n{done.stderr[-2000:]}")
    for leftover in folder.glob(f"{db.name}*"):
        leftover.unlink()
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _medians(mode: str, file: Path, folder: Path, runs: int) -> tuple[float, float, int]:
    """Median seconds and peak MB over ``runs`` fresh processes (less the baseline's), and messages imported."""
    base = statistics.median(_measure(f"{mode}-base", file, folder)["maxrss_kb"] for _ in range(runs))
    samples = [_measure(mode, file, folder) for _ in range(runs)]
    seconds = statistics.median(s["seconds"] for s in samples)
    peak_mb = (statistics.median(s["maxrss_kb"] for s in samples) - base) / 1024
    return seconds, peak_mb, int(samples[0].get("messages", 0))


def _files(folder: Path, size: int) -> Iterator[tuple[str, Path, int, int]]:
    for label, one in (("many conversations", False), ("one conversation", True)):
        path = folder / ("one.json" if one else "export.json")
        conversations, kept = write_export(path, size, one=one)
        yield f"{label} ({conversations:,} conversation{'s' if conversations > 1 else ''}, {kept:,} messages)", path, \
            conversations, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=200.0, help="each generated file's size")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per measurement (medians)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "FILE", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    print(f"ChatGPT-shaped conversations.json files of {args.size_mb:g} MB, imported into a new SQLite store;"
          f" medians of {args.runs} runs; peak = ru_maxrss less a baseline process's;"
          f" load average {os.getloadavg()[0]:.2f}")
    print()
    print("| file | json.load | peak | chatkeep import | peak | time / json.load's | peak / json.load's"
          " | floor: rows + search index alone | floor / json.load's | of the floor, the search index"
          " | parsing alone (msgspec) / json.load's |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    # chatkeep's time and peak, the floor's time and parsing's, each over json.load's
    ratios: list[tuple[float, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="chatkeep-import-bench-") as tmp:
        folder = Path(tmp)
        for label, path, _conversations, kept in _files(folder, int(args.size_mb * 2**20)):
            json_s, json_mb, _ = _medians("json", path, folder, args.runs)
            ours_s, ours_mb, added = _medians("chatkeep", path, folder, args.runs)
            if added != kept:
                raise SystemExit(f"{label}: imported {added} messages, expected {kept}")
            floor_s = statistics.median(_measure("floor", path, folder)["seconds"] for _ in range(args.runs))
            rows_s = statistics.median(_measure("floor-rows", path, folder)["seconds"] for _ in range(args.runs))
            index_s = floor_s - rows_s
            parse_s = statistics.median(_measure("parse", path, folder)["seconds"] for _ in range(args.runs))
            print(f"| {label}, {path.stat().st_size / 2**20:,.0f} MB | {json_s:,.2f} s | {json_mb:,.0f} MB"
                  f" | {ours_s:,.2f} s | {ours_mb:,.0f} MB | {ours_s / json_s:,.2f}x | {ours_mb / json_mb:,.2f}x"
                  f" | {floor_s:,.2f} s | {floor_s / json_s:,.2f}x | {index_s:,.2f} s ({index_s / floor_s:.0%})"
                  f" | {parse_s:,.2f} s, {parse_s / json_s:,.2f}x |", flush=True)
            ratios.append((ours_s / json_s, ours_mb / json_mb, floor_s / json_s, parse_s / json_s))
            path.unlink()
    print()
    print(_goal(ratios))


def _goal(ratios: list[tuple[float, float, float, float]]) -> str:
    """Issue 17's goal for imports, checked on this run's ratios, with the floor that stands in its way."""
    def listed(values: Iterator[float]) -> str:
        return " and ".join(f"{value:.2f}x" for value in values)

    time_met = all(time <= 3 for time, *_ in ratios)
    memory_met = all(peak <= 0.25 for _, peak, *_ in ratios)
    text = (f"Issue 17's goal, at most 3x `json.load`'s time and 1/4 of its peak memory: memory"
            f" {'met' if memory_met else '**not met**'} ({listed(peak for _, peak, *_ in ratios)}), time"
            f" {'met' if time_met else '**not met**'} ({listed(time for time, *_ in ratios)}).")
    if not time_met:
        text += (f" Writing the same rows with their search index, read beforehand (no parsing, mapping or"
                 f" checks), takes {listed(floor for _, _, floor, _ in ratios)} `json.load`'s time in the same"
                 f" run, and parsing the file alone with msgspec, the fastest parser at hand,"
                 f" {listed(parse for *_, parse in ratios)}: together"
                 f" {listed(floor + parse for _, _, floor, parse in ratios)}.")
        text += (" No import that parses the file and writes chatkeep's rows and search index can reach 3x;"
                 " the rest of chatkeep's time is mapping each record to messages, its checks and the tree walk."
                 if all(floor + parse > 3 for _, _, floor, parse in ratios) else
                 " The rest is chatkeep's own mapping, checks and tree walk.")
    return text

if __name__ == "__main__":
    main()
