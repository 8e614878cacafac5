"""Latency of one chat turn: chatkeep's Chat against the bare openai SDK call it wraps.

Both talk to the loopback server of the tests (tests/fakeopenai.py), which waits
--latency-ms before every answer. The bare SDK is what a user writes without
chatkeep: a list of message dicts, ``chat.completions.create``, then append the
reply. chatkeep saves the user message before the call and the reply after it,
to SQLite with its default durability (WAL, synchronous=NORMAL: no fsync per
commit). Measured: the whole ``send`` turn; for streams, the time to the first
text delta (from just before ``chat.stream(...)``, so the user message save is
included) and the whole turn (the reply save included). The target is a
chatkeep/SDK ratio of medians of at most 1.05.

Each system has its own client and its own growing conversations; turn i of one
runs right next to turn i of the other, in alternating order, so machine noise
hits both alike.

Run: .venv/bin/python benchmarks/turn.py [--turns 200] [--latency-ms 20] [--no-async]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakeopenai import FakeOpenAI, text  # noqa: E402

from chatkeep import AsyncChat, Chat, open_store  # noqa: E402

MODEL = "gpt-4o"
REPLY = (
    "A write-ahead log records each change before it reaches the main database file, so after "
    "a crash the database replays the committed entries and discards the rest. Readers keep "
    "seeing a consistent snapshot while a single writer appends new pages to the end of the log."
)  # 44 words, ~270 characters: a short but realistic answer
TARGET = 1.05
Times = dict[str, list[float]]  # workload -> milliseconds, one per measured turn
Msgs = list[dict[str, Any]]


def prompt(i: int) -> str:
    return f"Question {i}: how does a write-ahead log keep a database consistent after a crash?"


def ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def content(chunk: Any) -> str | None:
    return chunk.choices[0].delta.content if chunk.choices else None


def bare_send(client: Any, messages: Msgs, text_: str) -> float:
    t0 = time.perf_counter()
    messages.append({"role": "user", "content": text_})
    response = client.chat.completions.create(model=MODEL, messages=messages)
    messages.append({"role": "assistant", "content": response.choices[0].message.content})
    return ms(t0)


def bare_stream(client: Any, messages: Msgs, text_: str) -> tuple[float, float]:
    t0, first, parts = time.perf_counter(), 0.0, []
    messages.append({"role": "user", "content": text_})
    request = {"model": MODEL, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
    with client.chat.completions.create(**request) as chunks:
        for chunk in chunks:
            if delta := content(chunk):
                first = first or ms(t0)
                parts.append(delta)
    messages.append({"role": "assistant", "content": "".join(parts)})
    return first, ms(t0)


def keep_send(chat: Chat, text_: str) -> float:
    t0 = time.perf_counter()
    chat.send(text_)
    return ms(t0)


def keep_stream(chat: Chat, text_: str) -> tuple[float, float]:
    t0, first = time.perf_counter(), 0.0
    for _ in chat.stream(text_):
        first = first or ms(t0)
    return first, ms(t0)


def forget_requests(server: FakeOpenAI) -> None:
    # The fake keeps every parsed request body for the tests' assertions: ~1,600
    # growing message lists here, which make the garbage collector's full passes
    # long and land on whichever system runs then. A real server is not in-process.
    server.requests.clear()


def record(times: Times, system: str, send: float, stream: tuple[float, float]) -> None:
    for workload, value in (("send", send), ("stream: first delta", stream[0]), ("stream: whole turn", stream[1])):
        times.setdefault(f"{workload} [{system}]", []).append(value)


def run_sync(server: FakeOpenAI, store: Any, turns: int, warmup: int) -> tuple[Times, Times, list[str]]:
    bare_client, keep_client = server.client(), server.client()
    bare_msgs: tuple[Msgs, Msgs] = ([], [])  # send, stream
    convs = (store.new_conversation(title="send"), store.new_conversation(title="stream"))
    chats = [Chat(conv, keep_client, model=MODEL) for conv in convs]
    bare: Times = {}
    keep: Times = {}
    steps: list[tuple[Times, Callable[[int], tuple[float, tuple[float, float]]]]] = [
        (bare, lambda i: (bare_send(bare_client, bare_msgs[0], prompt(i)),
                          bare_stream(bare_client, bare_msgs[1], prompt(i)))),
        (keep, lambda i: (keep_send(chats[0], prompt(i)), keep_stream(chats[1], prompt(i)))),
    ]
    for i in range(warmup + turns):
        for times, step in steps if i % 2 == 0 else steps[::-1]:
            send, stream = step(i)
            if i >= warmup:
                record(times, "sync", send, stream)
        forget_requests(server)
    return bare, keep, check(convs, bare_msgs, warmup + turns, "sync")


async def run_async(server: FakeOpenAI, store: Any, turns: int, warmup: int) -> tuple[Times, Times, list[str]]:
    bare: Times = {}
    keep: Times = {}
    bare_msgs: tuple[Msgs, Msgs] = ([], [])
    convs = (store.new_conversation(title="send"), store.new_conversation(title="stream"))
    async with server.async_client() as bare_client, server.async_client() as keep_client:
        chats = [AsyncChat(conv, keep_client, model=MODEL) for conv in convs]

        async def run_bare(i: int) -> tuple[float, tuple[float, float]]:
            t0 = time.perf_counter()
            bare_msgs[0].append({"role": "user", "content": prompt(i)})
            response = await bare_client.chat.completions.create(model=MODEL, messages=bare_msgs[0])
            bare_msgs[0].append({"role": "assistant", "content": response.choices[0].message.content})
            send, t0, first, parts = ms(t0), time.perf_counter(), 0.0, []
            bare_msgs[1].append({"role": "user", "content": prompt(i)})
            request = {"model": MODEL, "messages": bare_msgs[1], "stream": True,
                       "stream_options": {"include_usage": True}}
            async with await bare_client.chat.completions.create(**request) as chunks:
                async for chunk in chunks:
                    if delta := content(chunk):
                        first = first or ms(t0)
                        parts.append(delta)
            bare_msgs[1].append({"role": "assistant", "content": "".join(parts)})
            return send, (first, ms(t0))

        async def run_keep(i: int) -> tuple[float, tuple[float, float]]:
            t0 = time.perf_counter()
            await chats[0].send(prompt(i))
            send, t0, first = ms(t0), time.perf_counter(), 0.0
            async with chats[1].stream(prompt(i)) as deltas:
                async for _ in deltas:
                    first = first or ms(t0)
            return send, (first, ms(t0))

        for i in range(warmup + turns):
            steps: list[tuple[Times, Callable[[int], Awaitable[tuple[float, tuple[float, float]]]]]]
            steps = [(bare, run_bare), (keep, run_keep)]
            for times, step in steps if i % 2 == 0 else steps[::-1]:
                send, stream = await step(i)
                if i >= warmup:
                    record(times, "async", send, stream)
            forget_requests(server)
    return bare, keep, check(convs, bare_msgs, warmup + turns, "async")


def check(convs: Iterable[Any], bare_msgs: Iterable[Msgs], total: int, label: str) -> list[str]:
    """Nothing lost: each chatkeep conversation holds every turn, equal to the SDK's list."""
    lines = []
    for conv, msgs in zip(convs, bare_msgs):
        stored, same = len(conv), [m["content"] for m in conv.messages] == [m["content"] for m in msgs]
        ok = stored == 2 * total and same
        lines.append(f"{label} {conv.record.title}: {stored} messages stored, expected {2 * total}, "
                     f"same contents as the SDK's list: {same} -> {'OK' if ok else 'LOST MESSAGES'}")
    return lines


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def print_table(bare: Times, keep: Times) -> None:
    header = ["workload", "bare SDK median (ms)", "chatkeep median (ms)", "ratio chatkeep/SDK",
              f"target (<= {TARGET})", "median paired diff (ms)", "bare p90", "chatkeep p90"]
    rows = []
    for name, b in bare.items():
        k = keep[name]
        ratio = statistics.median(k) / statistics.median(b)
        diff = statistics.median(x - y for x, y in zip(k, b))  # same turn index: same history size
        rows.append([name, f"{statistics.median(b):.2f}", f"{statistics.median(k):.2f}", f"{ratio:.3f}",
                     "pass" if ratio <= TARGET else "FAIL", f"{diff:+.2f}", f"{p90(b):.2f}", f"{p90(k):.2f}"])
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-async", action="store_true", help="skip the AsyncChat rows")
    args = parser.parse_args()
    # No chunk_delay: the deltas arrive as fast as the loopback carries them, so
    # the stream rows show chatkeep's own per-chunk cost, not the server's pacing.
    reply = text(REPLY, chunk_size=16)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(default=reply, latency=args.latency_ms / 1000) as server:
        with open_store(Path(tmp) / "bench.db") as store:
            bare, keep, checks = run_sync(server, store, args.turns, args.warmup)
            if not args.no_async:
                more = asyncio.run(run_async(server, store, args.turns, args.warmup))
                bare, keep, checks = {**bare, **more[0]}, {**keep, **more[1]}, checks + more[2]
    print(f"{args.turns} turns per row (after {args.warmup} warm-up turns), loopback server answering after "
          f"{args.latency_ms:g} ms; reply {len(REPLY.split())} words, streamed in 16-character deltas")
    print("chatkeep store: SQLite, WAL, synchronous=NORMAL (default durability; no fsync per commit)")
    print()
    print_table(bare, keep)
    print()
    print("\n".join(checks))


if __name__ == "__main__":
    main()
