"""Latency of one chat turn: chatkeep's Chat, and a captured client, against the bare openai SDK call.

Both talk to the loopback server of the tests (tests/fakeopenai.py), which waits
--latency-ms before every answer. The bare SDK is what a user writes without
chatkeep: a list of message dicts, ``chat.completions.create``, then append the
reply. chatkeep saves the user message before the call and the reply after it,
to SQLite with its default durability (WAL, synchronous=NORMAL: no fsync per
commit). Measured: the whole ``send`` turn; for streams, the time to the first
text delta (from just before ``chat.stream(...)``, so the user message save is
included) and the whole turn (the reply save included). Target: a chatkeep/SDK
ratio of medians of at most 1.05. The "captured" rows run the bare SDK code
itself through ``chatkeep.capture(client)`` (the one-line change for existing
code); their target is at most 1 ms of storage per call at the median.

Each system has its own client and its own growing conversations on the same
server; turn i of one runs right next to turn i of the other, the first one
alternating, so machine noise hits both alike.

Run: .venv/bin/python benchmarks/turn.py [--turns 200] [--latency-ms 20] [--no-async]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from chatkeep import AsyncChat, Chat, Conversation, open_store  # noqa: E402
from fakeopenai import FakeOpenAI, text  # noqa: E402

MODEL = "gpt-4o"
REPLY = (
    "A write-ahead log records each change before it reaches the main database file, so after "
    "a crash the database replays the committed entries and discards the rest. Readers keep "
    "seeing a consistent snapshot while a single writer appends new pages to the end of the log."
)  # 46 words: a short but realistic answer
TARGET = 1.05
# The SDK's request building grows with the history (~0.2 ms a message here), so
# late turns dilute chatkeep's fixed cost; the early turns show the strict case.
EARLY = 20
WORKLOADS = ("send", "stream: first delta", "stream: whole turn")
STREAM: dict[str, Any] = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True}}
Sample = tuple[float, float, float]  # milliseconds, one per workload
Step = Callable[[int], Awaitable[Sample]]
Times = dict[str, list[float]]  # row name -> milliseconds, one per measured turn
Msgs = list[dict[str, Any]]


def prompt(i: int) -> str:
    return f"Question {i}: how does a write-ahead log keep a database consistent after a crash?"


def ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def content(chunk: Any) -> str | None:
    return chunk.choices[0].delta.content if chunk.choices else None


def bare_turn(client: Any, sent: Msgs, streamed: Msgs, i: int) -> Sample:
    t0 = time.perf_counter()
    sent.append({"role": "user", "content": prompt(i)})
    response = client.chat.completions.create(model=MODEL, messages=sent)
    sent.append({"role": "assistant", "content": response.choices[0].message.content})
    send, t0, first, parts = ms(t0), time.perf_counter(), 0.0, []
    streamed.append({"role": "user", "content": prompt(i)})
    with client.chat.completions.create(messages=streamed, **STREAM) as chunks:
        for chunk in chunks:
            if delta := content(chunk):
                first = first or ms(t0)
                parts.append(delta)
    streamed.append({"role": "assistant", "content": "".join(parts)})
    return send, first, ms(t0)


def keep_turn(send_chat: Chat, stream_chat: Chat, i: int) -> Sample:
    t0 = time.perf_counter()
    send_chat.send(prompt(i))
    send, t0, first = ms(t0), time.perf_counter(), 0.0
    with stream_chat.stream(prompt(i)) as deltas:
        for _ in deltas:
            first = first or ms(t0)
    return send, first, ms(t0)


async def abare_turn(client: Any, sent: Msgs, streamed: Msgs, i: int) -> Sample:
    t0 = time.perf_counter()
    sent.append({"role": "user", "content": prompt(i)})
    response = await client.chat.completions.create(model=MODEL, messages=sent)
    sent.append({"role": "assistant", "content": response.choices[0].message.content})
    send, t0, first, parts = ms(t0), time.perf_counter(), 0.0, []
    streamed.append({"role": "user", "content": prompt(i)})
    async with await client.chat.completions.create(messages=streamed, **STREAM) as chunks:
        async for chunk in chunks:
            if delta := content(chunk):
                first = first or ms(t0)
                parts.append(delta)
    streamed.append({"role": "assistant", "content": "".join(parts)})
    return send, first, ms(t0)


async def akeep_turn(send_chat: AsyncChat, stream_chat: AsyncChat, i: int) -> Sample:
    t0 = time.perf_counter()
    await send_chat.send(prompt(i))
    send, t0, first = ms(t0), time.perf_counter(), 0.0
    async with stream_chat.stream(prompt(i)) as deltas:
        async for _ in deltas:
            first = first or ms(t0)
    return send, first, ms(t0)


async def interleave(
    server: FakeOpenAI, bare: Step, keep: Step, turns: int, warmup: int, label: str
) -> tuple[Times, Times]:
    times: tuple[Times, Times] = ({}, {})
    steps = [(times[0], bare), (times[1], keep)]
    for i in range(warmup + turns):
        for out, step in steps if i % 2 == 0 else steps[::-1]:
            sample = await step(i)
            for workload, value in zip(WORKLOADS, sample):
                if i >= warmup:
                    out.setdefault(f"{workload} [{label}]", []).append(value)
        # The fake keeps every parsed request body for the tests' assertions: ~1,600
        # growing message lists here, whose garbage-collector passes grow long and
        # land on whichever system runs then. A real server is not in-process.
        server.requests.clear()
    return times


async def run_captured(server: FakeOpenAI, store: Any, turns: int, warmup: int, aio: bool) -> list[Any]:
    """The bare SDK beside the same code through ``chatkeep.capture(client)`` (the one-line change)."""
    from chatkeep import capture

    # Two conversations apiece, told apart by their system message (identical histories would be
    # one conversation to capture, rightly).
    label = "captured, async" if aio else "captured"
    sdk_lists: tuple[Msgs, Msgs] = ([{"role": "system", "content": "send"}], [{"role": "system", "content": "stream"}])
    kept_lists: tuple[Msgs, Msgs] = ([{"role": "system", "content": f"send {label}"}],
                                     [{"role": "system", "content": f"stream {label}"}])
    if aio:
        async with server.async_client() as sdk, server.async_client() as plain:
            kept = capture(plain, store=store)
            bare, keep = await interleave(
                server, lambda i: abare_turn(sdk, *sdk_lists, i), lambda i: abare_turn(kept, *kept_lists, i),
                turns, warmup, label)
    else:
        sync_sdk, kept = server.client(), capture(server.client(), store=store)

        async def bare_step(i: int) -> Sample:
            return bare_turn(sync_sdk, *sdk_lists, i)

        async def keep_step(i: int) -> Sample:
            return bare_turn(kept, *kept_lists, i)

        bare, keep = await interleave(server, bare_step, keep_step, turns, warmup, label)
    lines = []
    for kept_list in kept_lists:
        found = store.find_keys([f"chain:{chained_path(kept_list)}"])
        where = next(iter(found.values()), None)
        stored = len(store.path(where[0], head_id=where[1])) if where else 0
        verdict = "OK" if stored == len(kept_list) else "LOST MESSAGES"
        lines.append(f"{label} {kept_list[0]['content']}: {stored} messages on the captured path "
                     f"(expected {len(kept_list)}) -> {verdict}")
    return [bare, keep, lines]


def chained_path(messages: Msgs) -> str:
    from chatkeep.client.capture import chained

    previous = ""
    for message in messages:
        previous = chained(previous, message)
    return previous


async def run(server: FakeOpenAI, store: Any, turns: int, warmup: int, aio: bool) -> list[Any]:
    sdk_lists: tuple[Msgs, Msgs] = ([], [])  # the send and the stream conversations
    convs = (store.new_conversation(title="send"), store.new_conversation(title="stream"))
    label = "async" if aio else "sync"
    if aio:
        async with server.async_client() as sdk, server.async_client() as keep_client:
            achats = [AsyncChat(conv, keep_client, model=MODEL) for conv in convs]
            bare, keep = await interleave(
                server, lambda i: abare_turn(sdk, *sdk_lists, i), lambda i: akeep_turn(*achats, i),
                turns, warmup, label)
    else:
        sync_sdk, chats = server.client(), [Chat(c, server.client(), model=MODEL) for c in convs]

        async def bare_step(i: int) -> Sample:  # a coroutine only to share the driver
            return bare_turn(sync_sdk, *sdk_lists, i)

        async def keep_step(i: int) -> Sample:
            return keep_turn(*chats, i)

        bare, keep = await interleave(server, bare_step, keep_step, turns, warmup, label)
    return [bare, keep, check(convs, sdk_lists, warmup + turns, label)]


def check(convs: tuple[Conversation, ...], lists: tuple[Msgs, ...], total: int, label: str
          ) -> list[str]:
    """Nothing lost: each chatkeep conversation holds every turn, equal to the SDK's list."""
    lines = []
    for conv, msgs in zip(convs, lists):
        stored = len(conv)
        same = [m["content"] for m in conv.messages] == [m["content"] for m in msgs]
        verdict = "OK" if stored == 2 * total and same else "LOST MESSAGES"
        lines.append(f"{label} {conv.title}: {stored} messages stored (expected {2 * total}), "
                     f"same contents as the SDK's list: {same} -> {verdict}")
    return lines


def print_table(bare: Times, keep: Times) -> None:
    header = ["workload", "bare SDK median (ms)", "chatkeep median (ms)", "ratio chatkeep/SDK",
              f"target (<= {TARGET})", "paired median: diff (ms) / ratio",
              "p90 SDK / chatkeep (ms)",
              f"ratio, first {EARLY} turns"]
    rows = [header]
    for name, b in bare.items():
        k, med = keep[name], statistics.median
        ratio = med(k) / med(b)
        p90 = [statistics.quantiles(v, n=10)[-1] for v in (b, k)]
        rows.append([
            name, f"{med(b):.2f}", f"{med(k):.2f}", f"{ratio:.3f}",
            "pass" if ratio <= TARGET else "FAIL",
            # Turn i against turn i (same history size): steadier than the ratio of
            # medians, whose per-turn times spread over the whole growing history.
            f"{med(x - y for x, y in zip(k, b)):+.2f} / {med(x / y for x, y in zip(k, b)):.3f}",
            f"{p90[0]:.2f} / {p90[1]:.2f}", f"{med(k[:EARLY]) / med(b[:EARLY]):.3f}",
        ])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    for n, row in enumerate(rows):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("-|-".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-async", action="store_true", help="skip the AsyncChat rows")
    args = parser.parse_args()
    # No chunk_delay: deltas arrive as fast as the loopback carries them, so the
    # stream rows show chatkeep's own per-chunk cost, not the server's pacing.
    reply = text(REPLY, chunk_size=16)
    bare: Times = {}
    keep: Times = {}
    checks: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, \
            FakeOpenAI(default=reply, latency=args.latency_ms / 1000) as server, \
            open_store(Path(tmp) / "bench.db") as store:
        for way in (run, run_captured):
            for aio in (False,) if args.no_async else (False, True):
                b, k, c = asyncio.run(way(server, store, args.turns, args.warmup, aio))
                bare, keep, checks = {**bare, **b}, {**keep, **k}, checks + c
    print(f"{args.turns} turns per row (+{args.warmup} warm-up); loopback server answering after "
          f"{args.latency_ms:g} ms; reply of {len(REPLY.split())} words in 16-character deltas")
    print("chatkeep store: SQLite, WAL, synchronous=NORMAL (the default: no fsync per commit)")
    print()
    print_table(bare, keep)
    print()
    print("\n".join(checks))


if __name__ == "__main__":
    main()
