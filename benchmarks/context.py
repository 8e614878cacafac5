"""Building the next turn's context as a conversation grows, from stored token counts.

For conversations of 1,000 and 100,000 messages of about 60 tokens each and a
128k-token budget (TrimToBudget), it measures:

- warm: what each turn of a running Chat costs: check the head in the store,
  then choose the window from the stored counts (prefix sums, binary search);
- cold: a new process's first turn: read the branch and its stored counts
  from SQLite, then choose the window;
- from scratch: tokenizing the chosen window with tiktoken, which is what a
  policy without stored counts does every turn.

SQLite runs with its default durability (WAL, synchronous=NORMAL); only the
setup writes. Run: .venv/bin/python benchmarks/context.py [--sizes 1000,100000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatkeep import TokenCounter, TrimToBudget, open_store
from chatkeep.context import History

BUDGET = 128_000
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def message(i: int) -> dict[str, str]:
    words = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(50))
    return {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}: {words}"}


def median_ms(work: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def build(folder: Path, size: int, counter: TokenCounter) -> tuple[Any, str]:
    store = open_store(folder / f"context-{size}.db")
    conv = store.new_conversation()
    conv.append({"role": "system", "content": "You are a helpful assistant."},
                token_counts={"o200k_base": counter.message({"role": "system", "content": "You are a helpful assistant."})})
    for i in range(size - 1):
        body = message(i)
        conv.append(body, token_counts={"o200k_base": counter.message(body)})
    return store, conv.id


def measure(store: Any, conversation_id: str, counter: TokenCounter, runs: int) -> dict[str, float]:
    policy = TrimToBudget()
    history = History.of(store.path(conversation_id), counter.message, key="o200k_base")
    context = policy.select(history, BUDGET)

    def warm() -> None:
        store.get_conversation(conversation_id)  # is the cached branch still the head's?
        policy.select(history, BUDGET)

    def cold() -> None:
        policy.select(History.of(store.path(conversation_id), counter.message, key="o200k_base"), BUDGET)

    return {
        "window": float(len(context.messages)),
        "tokens": float(context.tokens),
        "warm": median_ms(warm, runs * 20),
        "cold": median_ms(cold, max(3, runs // 3)),
        "scratch": median_ms(lambda: counter.messages(context.messages), runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    counter = TokenCounter("o200k_base")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for size in sizes:
            store, conversation_id = build(Path(tmp), size, counter)
            results[size] = measure(store, conversation_id, counter, args.runs)
    print(f"budget {BUDGET:,} tokens, TrimToBudget, ~60 tokens a message; medians in ms")
    print("messages | window sent | warm turn (stored counts) | cold first turn | tokenize window from scratch | scratch / warm")
    print("---|---|---|---|---|---")
    for size, r in results.items():
        print(f"{size:,} | {int(r['window']):,} msgs, {int(r['tokens']):,} tok | {r['warm']:.3f} | {r['cold']:.1f} "
              f"| {r['scratch']:.1f} | {r['scratch'] / r['warm']:.0f}x")
    small, large = results[sizes[0]], results[sizes[-1]]
    print(f"\nwarm ratio {sizes[-1]:,} / {sizes[0]:,}: {large['warm'] / small['warm']:.2f} (target <= 1.5)")
    print(f"cold ratio {sizes[-1]:,} / {sizes[0]:,}: {large['cold'] / small['cold']:.2f} (reads the whole branch once)")


if __name__ == "__main__":
    main()
