"""Build the next turn's context (128k budget): a running chat's and peers', a new process's first turn's.

At 1,000 and 10,000 messages:

- chatkeep: ``TrimToBudget`` over the branch a running ``Chat`` keeps, with
  the token counts stored beside each message (benchmarks/context.py's warm
  turn: check the head in the store, choose the window); and the read a new
  process's first turn makes (the branch's tail back to where the window can
  reach, and its pinned messages: chatkeep.context.loading) from SQLite.
- LangChain: ``trim_messages(strategy="last", include_system=True)`` with an
  exact counter (tiktoken's o200k_base, OpenAI's chat format, the same count
  chatkeep makes) over the message list already in memory.
- LlamaIndex: ``ChatMemoryBuffer.from_defaults(token_limit=128000).get()``
  over a SimpleChatStore in memory. Its tokenizer would be tiktoken's
  cl100k_base, which downloads its file on first use, so
  ``Settings.tokenizer`` is set to chatkeep's offline o200k_base ``encode``.
  It counts only the messages' text, joined by spaces.

A call still running after 20 s is stopped and reported as such.

The first-turn workload (``a new process's first turn's context``, at 1,000,
10,000 and 100,000 messages) is the whole thing a new process does before its
first model call, each run in a fresh interpreter: open the store, load the
tokenizer, read the conversation (stored counts, as ``Chat`` writes them),
save the user's message and build the request's context for a 128k budget
with ``TrimToBudget``; that is ``Chat.send`` run up to the model call (the SDK
is imported and its client made before the clock starts, and the call is
never made). Each run works on a fresh copy of the database. The sizes run
round-robin, so the 1,000-message yardstick beside every size is measured in
the same run; the first run at each size is not counted, and checks that what
it would send is what the whole branch gives.

Run from benchmarks/: python -m peers.trim --out rows.json [--quick]
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from context import BUDGET, build, message  # benchmarks/context.py: the same ~60-token messages

from chatkeep import TokenCounter, TrimToBudget, open_store
from chatkeep.context import History, get_encoding
from chatkeep.context.loading import read_earlier, read_tail
from chatkeep.context.policies import ReadEarlier
from chatkeep.store import Draft

from .common import (
    CHATKEEP_DURABILITY,
    Row,
    interleaved,
    parse_args,
    progress,
    size_label,
    write_rows,
)
from .goals import FIRST_TURN, FIRST_TURN_AT_1000

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
        head = store.get_conversation(conversation_id).head_id
        partial = read_tail(store, conversation_id, head, counter.message, "o200k_base", BUDGET)
        while isinstance(choice := policy.select(partial, BUDGET), ReadEarlier):
            read_earlier(store, conversation_id, partial, choice.tokens)

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
    "chatkeep, a new process's first turn": "reads the window's tail, its pinned messages and their stored counts "
                                            "from SQLite (tokenizer already loaded)",
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


# -- a new process's first turn ---------------------------------------------------------------------------------

FIRST_TURN_WORKLOAD = f"{FIRST_TURN} (128k budget, TrimToBudget, tokenizer loading included)"
TOKENIZER_FLOOR = "floor: load the o200k_base tokenizer (new process)"
PROMPT = "And what comes next?"

#: A new process's first turn, run by ``python -c`` with arguments: database, conversation, budget, check|-.
FIRST_TURN_CHILD = f"""
import json, sys, time
import openai
from chatkeep import Chat, TrimToBudget, open_store
from chatkeep.client.effects import Call

db, conversation_id, budget, check = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "check"
client = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")  # never called
client.chat.completions.create  # the SDK's resources load lazily: before the clock, as an app's client would
started, cpu = time.perf_counter(), time.process_time()
store = open_store(db)
chat = Chat(store.conversation(conversation_id), client, model="gpt-4o", context=TrimToBudget(), budget=budget)
steps = chat._turn({PROMPT!r}, {{}})  # what chat.send carries out, stopped at the model call
effect = next(steps)
while not isinstance(effect, Call):
    effect = steps.send(effect.operation())
ms, cpu = (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000
sent = effect.kwargs["messages"]
class Stopped(Exception):
    pass
try:  # as a failed call ends a turn: the prompt is marked unanswered, the tip released
    effect = steps.throw(Stopped())
    while True:
        effect = steps.send(effect.operation())
except Stopped:
    pass
same = None
if check:  # after the clock: what the whole branch, read and counted afresh, gives for the same prompt
    from chatkeep.context import History, TokenCounter
    counter = TokenCounter("o200k_base")
    head = store.get_conversation(conversation_id).head_id
    whole = History.of(store.path(conversation_id, head_id=head), counter.message, key=counter.name)
    same = TrimToBudget().select(whole, budget).messages == sent
print(json.dumps({{"ms": ms, "cpu": cpu, "sent": len(sent), "same": same}}))
"""

TOKENIZER_CHILD = """
import json, time
from chatkeep import TokenCounter
started, cpu = time.perf_counter(), time.process_time()
TokenCounter("o200k_base")
print(json.dumps({"ms": (time.perf_counter() - started) * 1000, "cpu": (time.process_time() - cpu) * 1000}))
"""


def build_conversation(folder: Path, size: int, counter: TokenCounter) -> tuple[Path, str]:
    """A closed SQLite file holding one conversation of ``size`` messages with stored counts, as a Chat writes."""
    path = folder / f"first-turn-{size}.db"
    with open_store(path) as store:
        conv = store.new_conversation()
        bodies = [SYSTEM] + [message(i) for i in range(size - 1)]
        for start in range(0, size, 5_000):
            store.append_many(conv.id, [Draft(body, token_counts={"o200k_base": counter.message(body)})
                                        for body in bodies[start:start + 5_000]])
    return path, conv.id


def run_child(code: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the first-turn child failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def fresh_copy(source: Path, target: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")
    return target


def first_turn_rows(folder: Path, sizes: list[int], runs: int, counter: TokenCounter) -> list[Row]:
    """The first-turn workload at every size, the 1,000-message yardstick and the tokenizer floor beside each."""
    built = {}
    for size in sizes:
        progress(f"first turn: building {size:,} messages")
        built[size] = build_conversation(folder, size, counter)
    jobs: list[int | None] = [*sizes, None]  # None: the tokenizer floor
    samples: dict[int | None, list[float]] = {job: [] for job in jobs}
    cpu: dict[int | None, list[float]] = {job: [] for job in jobs}  # the same runs' CPU time, less hit by load
    sent: dict[int, int] = {}
    for run in range(runs + 1):  # run 0 warms the file cache and checks what is sent; it is not counted
        took: list[str] = []
        for job in jobs[run % len(jobs):] + jobs[:run % len(jobs)]:
            if job is None:
                result = run_child(TOKENIZER_CHILD)
            else:
                path, conversation_id = built[job]
                copy = fresh_copy(path, folder / "first-turn-run.db")
                result = run_child(FIRST_TURN_CHILD, str(copy), conversation_id, str(BUDGET),
                                   "check" if run == 0 else "-")
                if run == 0 and not result["same"]:
                    raise RuntimeError(f"at {job:,} messages the first turn did not send what the whole branch gives")
                sent[job] = result["sent"]
            if run:
                samples[job].append(result["ms"])
                cpu[job].append(result["cpu"])
            took.append(f"{'tokenizer' if job is None else f'{job:,}'} {result['ms']:,.0f} ms")
        progress(f"first turn, run {run}{' (warm-up)' if run == 0 else ''}: {', '.join(took)}")
    medians = {job: statistics.median(values) for job, values in samples.items()}
    cpu_ms = {job: f"CPU time {statistics.median(values):,.0f} ms" for job, values in cpu.items()}
    rows = []
    for size in sizes:
        label = size_label(size)
        rows += [
            Row(FIRST_TURN_WORKLOAD, label, "chatkeep",
                "a fresh process: open_store, Chat(TrimToBudget, budget=128,000).send up to the model call; "
                + CHATKEEP_DURABILITY, medians[size], runs,
                f"sends {sent[size]:,} messages, the same as the whole branch gives; {cpu_ms[size]}", reference=True),
            Row(FIRST_TURN_WORKLOAD, label, FIRST_TURN_AT_1000, "chatkeep's median at 1,000 messages, same runs",
                medians[1_000], runs, cpu_ms[1_000], yardstick=True),
            Row(FIRST_TURN_WORKLOAD, label, TOKENIZER_FLOOR, "tiktoken Encoding from bpe-openai's o200k_base file, "
                "in a fresh process (the same runs)", medians[None], runs, cpu_ms[None], yardstick=True),
        ]
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
        first_sizes = [1_000, 3_000] if args.quick else [1_000, 10_000, 100_000]
        rows += first_turn_rows(Path(tmp), first_sizes, 3 if args.quick else 15, counter)
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
