"""One corpus of conversations, written into a chatkeep store and into an llm logs.db alike.

The corpus: conversations of 100 messages (50 user/assistant turns) of 25-40
words drawn from a 5,000-word vocabulary with Zipf-like frequencies. Two words
are planted at known rates, so a search has a known number of hits: RARE in
one message in 10,000, COMMON in one in 100.

- chatkeep: ``store.import_conversations`` (its bulk API), 1,000 conversations
  a transaction; FTS5 is kept by chatkeep's own triggers.
- llm: ``llm.migrations.migrate`` makes the schema llm 0.36 writes (a
  conversation is a ``threads`` row; its messages are content-addressed
  ``messages`` rows hashed exactly as ``llm.logs.message_hash`` does, each with
  one text ``parts`` row; each exchange is a ``turns`` row; its searchable
  text a ``turn_search`` row, indexed in ``turn_search_fts`` by the triggers
  llm's migration installs). The rows are inserted directly, in one
  transaction: ``LogStore.log`` needs a model response object per turn.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

from ulid import ULID

from chatkeep import open_store
from chatkeep.store.bulk import ImportConversation, ImportMessage

from .common import progress

PER_CONVERSATION = 100
RARE, COMMON = "zanzibar", "checkpoint"
RARE_EVERY, COMMON_EVERY = 10_000, 100
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def vocabulary(size: int = 5_000) -> list[str]:
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    rng = random.Random(7)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words - {RARE, COMMON})


def texts(total: int) -> list[str]:
    """``total`` message texts, the same on every run."""
    words = vocabulary()
    cumulative = list(accumulate(1 / (rank + 1) for rank in range(len(words))))
    rng = random.Random(42)
    out = []
    for i in range(total):
        chosen = rng.choices(words, cum_weights=cumulative, k=rng.randint(25, 40))
        if i % RARE_EVERY == RARE_EVERY // 2:
            chosen[len(chosen) // 2] = RARE
        if i % COMMON_EVERY == COMMON_EVERY // 3:
            chosen[len(chosen) // 3] = COMMON
        out.append(" ".join(chosen))
    return out


def role(i: int) -> str:
    return "user" if i % 2 == 0 else "assistant"


def title(text: str) -> str:
    return text[:40]


def build_chatkeep(path: Path, corpus: list[str]) -> None:
    store = open_store(path)
    conversations = len(corpus) // PER_CONVERSATION
    for low in range(0, conversations, 1_000):
        items = []
        for c in range(low, min(conversations, low + 1_000)):
            base = c * PER_CONVERSATION
            messages = [
                ImportMessage({"role": role(i), "content": corpus[base + i]}, key=str(i),
                              parent_key=str(i - 1) if i else None)
                for i in range(PER_CONVERSATION)
            ]
            items.append(ImportConversation(messages, title=title(corpus[base])))
        store.import_conversations(items)
        progress(f"chatkeep store: {min(conversations, low + 1_000) * PER_CONVERSATION:,} messages")
    store.close()


class LlmRows(NamedTuple):
    """One conversation's rows in each of llm's tables."""

    threads: list[tuple[Any, ...]]
    messages: list[tuple[Any, ...]]
    parts: list[tuple[Any, ...]]
    turns: list[tuple[Any, ...]]
    search: list[tuple[Any, ...]]


def _llm_rows(corpus: list[str]) -> Iterator[LlmRows]:
    """Per conversation: its thread, messages, parts, turns and turn_search rows."""
    from llm.logs import content_hash

    for c in range(len(corpus) // PER_CONVERSATION):
        base = c * PER_CONVERSATION
        moment = START + timedelta(minutes=c)
        thread = str(ULID.from_datetime(moment)).lower()
        parent: str | None = None
        rows = LlmRows([], [], [], [], [])
        for i in range(PER_CONVERSATION):
            text = corpus[base + i]
            body = {"role": role(i), "parts": [{"type": "text", "text": text}]}
            digest = content_hash({"parent": parent, "message": body})  # llm.logs.message_hash's form
            rows.messages.append((digest, parent, role(i), None))
            rows.parts.append((digest, 0, "text", None, text, None))
            if i % 2 == 1:  # the assistant's reply closes a turn begun by the user message before it
                when = moment + timedelta(seconds=i)
                turn = str(ULID.from_datetime(when)).lower()
                rows.turns.append((turn, thread, parent, digest, "gpt-4o", when.isoformat()))
                rows.search.append((turn, corpus[base + i - 1], text))
            parent = digest
        rows.threads.append((thread, title(corpus[base]), parent, None, str(moment)))
        yield rows


def build_llm(path: Path, corpus: list[str]) -> None:
    import sqlite_utils
    from llm.migrations import migrate

    db = sqlite_utils.Database(path)
    migrate(db)  # type: ignore[no-untyped-call]
    db.close()
    conn = sqlite3.connect(path)
    with conn:
        for n, rows in enumerate(_llm_rows(corpus), 1):
            conn.executemany("INSERT INTO threads (id, name, tip_message_hash, forked_from, datetime_utc)"
                             " VALUES (?, ?, ?, ?, ?)", rows.threads)
            conn.executemany("INSERT INTO messages (hash, parent_hash, role, provider_metadata)"
                             " VALUES (?, ?, ?, ?)", rows.messages)
            conn.executemany("INSERT INTO parts (message_hash, position, type, tool_name, text, payload)"
                             " VALUES (?, ?, ?, ?, ?, ?)", rows.parts)
            conn.executemany("INSERT INTO turns (id, thread_id, parent_message_hash, tip_message_hash, model,"
                             " datetime_utc) VALUES (?, ?, ?, ?, ?, ?)", rows.turns)
            # turn_search's insert trigger (from enable_fts) keeps turn_search_fts, as in LogStore.log.
            conn.executemany("INSERT INTO turn_search (turn_id, prompt, response) VALUES (?, ?, ?)", rows.search)
            if n % 1_000 == 0:
                progress(f"llm logs.db: {n * PER_CONVERSATION:,} messages")
    conn.close()
