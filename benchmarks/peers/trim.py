"""Build the next turn's context under a 128k-token budget, at 1,000 and 10,000 messages.

- chatkeep: ``TrimToBudget`` over the branch a running ``Chat`` keeps, with
  the token counts stored beside each message (benchmarks/context.py's warm
  turn: check the head in the store, choose the window); and a new process's
  first turn, which reads the branch and its stored counts from SQLite.
- LangChain: ``trim_messages(strategy="last", include_system=True)`` with an
  exact counter (tiktoken's o200k_base, OpenAI's chat format, the same count
  chatkeep makes) over the message list already in memory.
- LlamaIndex: ``ChatMemoryBuffer.from_defaults(token_limit=128000).get()``
  over a SimpleChatStore in memory. Its tokenizer would be tiktoken's
  cl100k_base, which downloads its file on first use, so
  ``Settings.tokenizer`` is set to chatkeep's offline o200k_base ``encode``.
  It counts only the messages' text, joined by spaces.

A call still running after 20 s is stopped and reported as such.

Run from benchmarks/: python -m peers.trim --out rows.json [--quick]
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from context import BUDGET, build, message  # benchmarks/context.py: the same ~60-token messages

from chatkeep import TokenCounter, TrimToBudget
from chatkeep.context import History, get_encoding

from .common import (
    CHATKEEP_DURABILITY,
    Row,
    interleaved,
    parse_args,
    progress,
    size_label,
    write_rows,
)

WORKLOAD = "build the next turn's context (128k budget)"
DEADLINE_S = 20.0
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


class TooSlow(Exception):
    """Raised inside a peer's token counter once a call has run past its deadline."""


class Deadline:
    """Stops a long call from the inside: the peers call our counter, which checks the clock."""

    def __init__(self) -> None:
        self.until = float("inf")
        self.calls = 0

    def start(self, seconds: float) -> None:
        self.until, self.calls = time.perf_counter() + seconds, 0

    def stop(self) -> None:
        self.until = float("inf")

    def check(self) -> None:
        self.calls += 1
        if time.perf_counter() > self.until:
            raise TooSlow


def bodies(size: int) -> list[dict[str, str]]:
    return [SYSTEM] + [message(i) for i in range(size - 1)]


def langchain_task(size: int, counter: TokenCounter, deadline: Deadline) -> Callable[[], Any]:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, trim_messages

    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    messages = [kinds[b["role"]](content=b["content"]) for b in bodies(size)]

    def count(batch: Sequence[Any]) -> int:
        deadline.check()
        return counter.messages([{"role": roles[m.type], "content": m.content} for m in batch])

    return lambda: trim_messages(messages, max_tokens=BUDGET, token_counter=count, strategy="last",
                                 include_system=True)


def llamaindex_task(size: int, deadline: Deadline) -> Callable[[], Any]:
    from llama_index.core import Settings
    from llama_index.core.llms import ChatMessage
    from llama_index.core.memory import ChatMemoryBuffer
    from llama_index.core.storage.chat_store import SimpleChatStore

    encode = get_encoding("o200k_base").encode

    def tokenize(text: str) -> list[int]:
        deadline.check()
        return encode(text)

    Settings.tokenizer = tokenize
    store = SimpleChatStore()
    store.set_messages("conversation", [ChatMessage(role=b["role"], content=b["content"]) for b in bodies(size)])
    memory = ChatMemoryBuffer.from_defaults(token_limit=BUDGET, chat_store=store, chat_store_key="conversation")
    return memory.get


def chatkeep_tasks(folder: Path, size: int, counter: TokenCounter) -> dict[str, Callable[[], Any]]:
    store, conversation_id = build(folder, size, counter)
    policy = TrimToBudget()
    history = History.of(store.path(conversation_id), counter.message, key="o200k_base")

    def warm() -> None:
        store.get_conversation(conversation_id)  # is the cached branch still the head's?
        policy.select(history, BUDGET)

    def first_turn() -> None:
        policy.select(History.of(store.path(conversation_id), counter.message, key="o200k_base"), BUDGET)

    return {"chatkeep": warm, "chatkeep, a new process's first turn": first_turn}


def probe(name: str, task: Callable[[], Any], deadline: Deadline) -> tuple[float, str]:
    """One call under the deadline: its milliseconds, or why it was stopped."""
    deadline.start(DEADLINE_S)
    started = time.perf_counter()
    try:
        task()
    except TooSlow:
        return 0.0, (f"stopped after {DEADLINE_S:g} s, unfinished ({deadline.calls:,} tokenizer calls: "
                     "it re-tokenizes the remaining history after dropping each message)")
    finally:
        deadline.stop()
    elapsed = (time.perf_counter() - started) * 1000
    progress(f"{name}: one call {elapsed:,.0f} ms")
    return elapsed, ""


SETTINGS = {
    "chatkeep": "TrimToBudget on a running Chat's branch, stored counts; " + CHATKEEP_DURABILITY,
    "chatkeep, a new process's first turn": "reads the branch and its stored counts from SQLite",
    "LangChain trim_messages": "strategy=last, include_system, exact o200k counter; list in memory",
    "LlamaIndex ChatMemoryBuffer.get": "Settings.tokenizer = o200k encode; SimpleChatStore in memory",
}


def measure(folder: Path, size: int, counter: TokenCounter) -> list[Row]:
    deadline = Deadline()
    tasks = chatkeep_tasks(folder, size, counter)
    stopped: dict[str, str] = {}
    for name, task in (("LangChain trim_messages", langchain_task(size, counter, deadline)),
                       ("LlamaIndex ChatMemoryBuffer.get", llamaindex_task(size, deadline))):
        _, why = probe(name, task, deadline)
        if why:
            stopped[name] = why
        else:
            tasks[name] = task
    timings = interleaved(tasks, runs=101, budget_s=6.0)
    rows = []
    for name, setting in SETTINGS.items():
        if name in stopped:
            rows.append(Row(WORKLOAD, size_label(size), name, setting, None, 0, stopped[name]))
            continue
        timing = timings[name]
        rows.append(Row(WORKLOAD, size_label(size), name, setting, timing.median, len(timing.samples),
                        reference=name == "chatkeep"))
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    sizes = [1_000, 3_000] if args.quick else [1_000, 10_000]
    counter = TokenCounter("o200k_base")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="chatkeep-bench-") as tmp:
        for size in sizes:
            progress(f"context at {size:,} messages")
            rows += measure(Path(tmp), size, counter)
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
