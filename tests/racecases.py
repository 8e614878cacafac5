"""Concurrency scenarios, run by tests/test_races.py and, larger, by benchmarks/races.py.

Each scenario runs real threads, tasks or processes against a real store (and
the loopback OpenAI-compatible server for chat turns) and returns a
``Figures`` record: how many operations ran, how many messages were lost, how
many were misplaced (a reply under a prompt it does not answer, a request
that differs from the stored path to its prompt, a message no branch reaches).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from chatkeep import AsyncChat, Chat, open_store
from fakeopenai import FakeOpenAI, echo

#: Replies slow enough that two chats' turns overlap: a short wait, then a few streamed pieces.
OVERLAPPING = echo(chunk_size=3, chunk_delay=0.004, delay=0.01)


@dataclass
class Figures:
    """What a scenario did and what it found."""

    scenario: str
    workers: str
    operations: int
    lost: int = 0
    misplaced: int = 0
    notes: list[str] = field(default_factory=list)


class Stores:
    """Stores a scenario opens, closed when it ends: a PostgreSQL pool left to the garbage
    collector stops its worker threads from one of them, which fails the test run."""

    def __init__(self) -> None:
        self.opened: list[Any] = []

    def __call__(self, target: str) -> Any:
        store = open_store(target)
        self.opened.append(store)
        return store

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        for store in self.opened:
            store.close()


def check_turns(store: Any, conversation_id: str, requests: list[Any], figures: Figures) -> Figures:
    """Every reply under its prompt, every request equal to the stored path to its prompt, every message reachable.

    Prompts are unique texts, and the loopback server's ``echo`` reply names the
    prompt it answered, so each stored reply shows where it belongs.
    """
    everything = store.find_messages(conversation_id, kind="chat")
    by_id = {m.id: m for m in everything}
    prompts = {m.message["content"]: m for m in everything if m.role == "user"}
    for reply in (m for m in everything if m.role == "assistant"):
        parent = by_id.get(reply.parent_id or "")
        if parent is None or reply.message["content"] != f"re: {parent.message['content']}":
            figures.misplaced += 1
            figures.notes.append(f"reply {reply.message['content']!r} under {parent and parent.message['content']!r}")
    for request in requests:
        messages = request.body.get("messages")
        if messages is None:
            continue
        prompt = prompts.get(messages[-1].get("content"))
        stored = [m.message for m in store.path(conversation_id, head_id=prompt.id)] if prompt else None
        if stored != messages:
            figures.misplaced += 1
            figures.notes.append(f"request for {messages[-1].get('content')!r} differs from its stored path")
    reachable: set[str] = set()
    for branch in store.conversation(conversation_id).branches():
        reachable.update(m.id for m in store.path(conversation_id, head_id=branch.tip.id))
    figures.misplaced += len(set(by_id) - reachable)
    return figures


def _prompts(name: str, turns: int) -> list[str]:
    return [f"{name}{n}" for n in range(turns)]


def chats_in_threads(target: str, server: FakeOpenAI, *, chats: int = 2, turns: int = 5) -> Figures:
    """``chats`` sync ``Chat``s (threads, each with its own store and client) taking turns on one conversation."""
    with Stores() as stores:
        return _chats_in_threads(stores, target, server, chats, turns)


def _chats_in_threads(stores: Stores, target: str, server: FakeOpenAI, chats: int, turns: int) -> Figures:
    setup = stores(target)
    conversation_id = setup.new_conversation().id
    server.default = OVERLAPPING

    def talk(name: str) -> None:
        chat = Chat(stores(target).conversation(conversation_id), server.client(max_retries=0))
        for n, prompt in enumerate(_prompts(name, turns)):
            if n % 2:
                for _ in chat.stream(prompt):
                    pass
            else:
                chat.send(prompt)

    _together(*(partial(talk, chr(ord("A") + i)) for i in range(chats)))
    figures = Figures("Chat turns, one conversation", f"{chats} threads", chats * turns)
    figures.lost = chats * turns * 2 - setup.count_messages(conversation_id)
    return check_turns(setup, conversation_id, list(server.requests), figures)


def chats_in_tasks(target: str, server: FakeOpenAI, *, chats: int = 2, turns: int = 5, shared: bool = False) -> Figures:
    """``chats`` ``AsyncChat`` tasks gathered on one conversation (``shared``: all through one AsyncChat)."""
    with Stores() as stores:
        return _chats_in_tasks(stores(target), server, chats, turns, shared)


def _chats_in_tasks(setup: Any, server: FakeOpenAI, chats: int, turns: int, shared: bool) -> Figures:
    conversation_id = setup.new_conversation().id
    server.default = OVERLAPPING

    async def main() -> None:
        async with server.async_client(max_retries=0) as client:
            one = AsyncChat(setup.conversation(conversation_id), client)

            async def talk(name: str) -> None:
                chat = one if shared else AsyncChat(setup.conversation(conversation_id), client)
                for n, prompt in enumerate(_prompts(name, turns)):
                    if n % 2:
                        async for _ in chat.stream(prompt):
                            pass
                    else:
                        await chat.send(prompt)

            await asyncio.gather(*(talk(chr(ord("A") + i)) for i in range(chats)))

    asyncio.run(main())
    label = "AsyncChat.send gathered on one AsyncChat" if shared else "AsyncChat turns, one conversation"
    figures = Figures(label, f"{chats} tasks", chats * turns)
    figures.lost = chats * turns * 2 - setup.count_messages(conversation_id)
    return check_turns(setup, conversation_id, list(server.requests), figures)


def undo_racing_appends(target: str, *, start: int = 50, appends: int = 150, undos: int = 50) -> Figures:
    """One thread appends user messages while another undoes: each undo takes exactly one message off the branch."""
    with Stores() as stores:
        return _undo_racing_appends(stores(target), start, appends, undos)


def _undo_racing_appends(store: Any, start: int, appends: int, undos: int) -> Figures:
    conversation = store.new_conversation()
    for n in range(start):
        conversation.append({"role": "user", "content": f"start {n}"})

    def append() -> None:
        for n in range(appends):
            conversation.append({"role": "user", "content": f"appended {n}"})

    def undo() -> None:
        for _ in range(undos):
            conversation.undo()

    _together(append, undo)
    figures = Figures("undo racing appends", "2 threads", appends + undos)
    figures.lost = start + appends - len(conversation)
    # Each undo steps back exactly one message here (they are all user messages), so the
    # branch is as long as the messages minus the undos; an undo that moved the head
    # over a message appended meanwhile would leave it shorter.
    figures.misplaced = abs(start + appends - undos - len(conversation.history()))
    return figures


def session_add_racing_pop(target: str, *, start: int = 300, adds: int = 150, pops: int = 150) -> Figures:
    """One Agents SDK session seen by two writers (as two processes would): one adds items, the other pops."""
    with Stores() as stores:
        return _session_add_racing_pop(stores, target, start, adds, pops)


def _session_add_racing_pop(stores: Stores, target: str, start: int, adds: int, pops: int) -> Figures:
    from chatkeep.integrations import ChatkeepSession

    session = ChatkeepSession("racing", stores(target))
    popper = ChatkeepSession("racing", stores(target))
    first = [{"role": "user", "content": f"start {n}"} for n in range(start)]
    asyncio.run(session.add_items(first))
    added = [{"role": "user", "content": f"added {n}"} for n in range(adds)]
    popped: list[Any] = []

    def add() -> None:
        for item in added:
            asyncio.run(session.add_items([item]))

    def pop() -> None:
        for _ in range(pops):
            popped.append(asyncio.run(popper.pop_item()))

    _together(add, pop)
    remaining = asyncio.run(session.get_items())
    texts = [i["content"] for i in remaining] + [i["content"] for i in popped if i]
    figures = Figures("Agents SDK session add_items racing pop_item", "2 threads", adds + pops)
    figures.lost = len({i["content"] for i in first + added} - set(texts))
    figures.misplaced = len(texts) - len(set(texts))  # an item popped twice, or popped and still there
    if len(remaining) != start + adds - pops:
        figures.notes.append(f"{len(remaining)} items remain, expected {start + adds - pops}")
        figures.lost += max(0, start + adds - pops - len(remaining))
    return figures


_JSON_WRITER = """
import sys
from chatkeep import open_store
store = open_store(sys.argv[1])
conversation = store.conversation(store.conversation_id)
for i in range(int(sys.argv[3])):
    conversation.append({"role": "user", "content": f"{sys.argv[2]}:{i}"})
"""


def json_file_processes(path: str, *, processes: int = 4, appends: int = 50) -> Figures:
    """Several processes appending to one tutorial JSON file at once."""
    procs = [subprocess.Popen([sys.executable, "-c", _JSON_WRITER, path, str(n), str(appends)],
                              stderr=subprocess.PIPE, text=True) for n in range(processes)]
    problems = [p.communicate(timeout=300)[1] for p in procs]
    if any(p.returncode for p in procs):
        raise AssertionError(f"a writer failed: {problems}")
    store = open_store(path)
    texts = [m["content"] for m in store.conversation(store.conversation_id).messages]
    figures = Figures("appends to the tutorial's JSON file", f"{processes} processes", processes * appends)
    figures.lost = processes * appends - len(set(texts))
    for n in range(processes):  # each writer's own order is kept
        mine = [t for t in texts if t.startswith(f"{n}:")]
        if mine != [f"{n}:{i}" for i in range(appends)]:
            figures.misplaced += 1
    return figures


def json_file_chats(path: str, server: FakeOpenAI, *, chats: int = 2, turns: int = 3) -> Figures:
    """Chats in threads on one tutorial JSON file: turns take turns, each reply right after its prompt."""
    server.default = OVERLAPPING

    def talk(name: str) -> None:
        store = open_store(path)
        chat = Chat(store.conversation(store.conversation_id), server.client(max_retries=0))
        for prompt in _prompts(name, turns):
            chat.send(prompt)

    _together(*(partial(talk, chr(ord("A") + i)) for i in range(chats)))
    store = open_store(path)
    messages = store.conversation(store.conversation_id).messages
    figures = Figures("Chat turns on the tutorial's JSON file", f"{chats} threads", chats * turns)
    figures.lost = chats * turns * 2 - len(messages)
    pairs = list(zip(messages[::2], messages[1::2]))
    figures.misplaced = sum(1 for q, a in pairs if a["content"] != f"re: {q['content']}")
    return check_turns(store, store.conversation_id, list(server.requests), figures)


def _together(*work: Callable[[], None]) -> None:
    """Run the functions in threads started at the same moment; re-raise the first error."""
    errors: list[BaseException] = []
    gate = threading.Barrier(len(work))

    def run(function: Callable[[], None]) -> None:
        gate.wait()
        try:
            function()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(function,)) for function in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def batch_is_one_transaction(target: str) -> bool:
    """A session batch with one item that cannot be stored leaves nothing behind."""
    from chatkeep.integrations import ChatkeepSession

    with Stores() as stores:
        store = stores(target)
        return _batch_is_one_transaction(ChatkeepSession("batch", store), store)


def _batch_is_one_transaction(session: Any, store: Any) -> bool:
    broken = {"type": "reasoning", "id": "rs_1", "summary": [], "unstorable": {1, 2}}
    try:
        asyncio.run(session.add_items([{"role": "user", "content": "kept?"}, broken]))
    except (TypeError, ValueError):
        pass
    return asyncio.run(session.get_items()) == [] and store.count_messages() == 0


__all__ = ["Figures", "batch_is_one_transaction", "chats_in_tasks", "chats_in_threads", "check_turns",
           "json_file_chats", "json_file_processes", "session_add_racing_pop", "undo_racing_appends"]
