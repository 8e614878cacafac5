"""A conversation that re-sends the same 2 MB image every turn: database size and append time.

200 turns, each a user message carrying the same screenshot (a 2 MB PNG as a
data URL, as the API takes it) and a short assistant reply, kept by:

- chatkeep (SQLite, WAL, synchronous=NORMAL): the image is stored once, by content;
- the OpenAI Agents SDK's ``SQLiteSession`` (the items as Responses input);
- LangChain's ``SQLChatMessageHistory`` (SQLite through SQLAlchemy).

Peers that are not installed are left out (``bash scripts/bench`` installs
them in ``.venv-bench``). Prints one Markdown table: each system's database
size after all turns and its median append time, and the ratios to chatkeep.

Run: .venv/bin/python benchmarks/attachments.py [--turns 200] [--megabytes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import statistics
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatkeep import open_store


def png(megabytes: float, seed: int = 0) -> bytes:
    """A PNG of random pixels (it does not compress), about ``megabytes`` large."""
    side = int((megabytes * 1024 * 1024 / 3) ** 0.5)
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_chatkeep(folder: Path, turns: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[float]:
    store = open_store(folder / "chatkeep.db")
    conversation = store.new_conversation()
    times = []
    for user, reply in turns:
        started = time.perf_counter()
        conversation.append(user)
        conversation.append(reply)
        times.append(time.perf_counter() - started)
    store.close()
    return times


def run_agents(folder: Path, turns: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[float]:
    from agents import SQLiteSession

    session = SQLiteSession("bench", str(folder / "agents.db"))
    times = []
    for user, reply in turns:
        items = [{"role": "user", "content": [{"type": "input_image", "image_url": user["content"][1]["image_url"]["url"]},
                                              {"type": "input_text", "text": user["content"][0]["text"]}]},
                 {"role": "assistant", "content": reply["content"]}]
        started = time.perf_counter()
        asyncio.run(session.add_items(items))  # type: ignore[arg-type]
        times.append(time.perf_counter() - started)
    session.close()
    return times


def run_langchain(folder: Path, turns: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[float]:
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from langchain_core.messages import AIMessage, HumanMessage

    history = SQLChatMessageHistory(session_id="bench", connection=f"sqlite:///{folder / 'langchain.db'}")
    times = []
    for user, reply in turns:
        started = time.perf_counter()
        history.add_messages([HumanMessage(content=user["content"]), AIMessage(content=reply["content"])])
        times.append(time.perf_counter() - started)
    return times


SYSTEMS: dict[str, Callable[[Path, list[tuple[dict[str, Any], dict[str, Any]]]], list[float]]] = {
    "chatkeep (SQLite, WAL, synchronous=NORMAL)": run_chatkeep,
    "Agents SDK SQLiteSession": run_agents,
    "LangChain SQLChatMessageHistory": run_langchain,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--megabytes", type=float, default=2.0)
    args = parser.parse_args()
    image = png(args.megabytes)
    url = f"data:image/png;base64,{base64.b64encode(image).decode()}"
    turns = [({"role": "user", "content": [{"type": "text", "text": f"Turn {n}: what changed on the screen?"},
                                            {"type": "image_url", "image_url": {"url": url}}]},
              {"role": "assistant", "content": f"Turn {n}: nothing much."}) for n in range(args.turns)]
    print(f"{args.turns} turns, each re-sending the same {len(image) / 1024 / 1024:.2f} MB PNG; "
          f"load average {os.getloadavg()[0]:.2f}")
    rows = []
    for name, run in SYSTEMS.items():
        with tempfile.TemporaryDirectory(prefix="chatkeep-attach-bench-") as folder:
            try:
                times = run(Path(folder), turns)
            except ImportError as exc:
                print(f"{name}: not installed ({exc}); left out")
                continue
            rows.append((name, size_of(Path(folder)), statistics.median(times) * 1000))
    base_size, base_time = rows[0][1], rows[0][2]
    print("| system | database after all turns | size / chatkeep's | median append (ms) | time / chatkeep's |")
    print("|---|---|---|---|---|")
    for name, size, ms in rows:
        print(f"| {name} | {size / 1024 / 1024:,.1f} MB | {size / base_size:,.1f}x | {ms:,.2f} | {ms / base_time:,.2f}x |")


if __name__ == "__main__":
    main()
