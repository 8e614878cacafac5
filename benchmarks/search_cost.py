"""What a search costs when the stored text or the typed query is hostile, on SQLite and PostgreSQL.

The store holds the peers' corpus (``peers.corpus``: 1,000,000 messages in
10,000 conversations of 100, 25-40 words each from a 5,000-word Zipf
vocabulary, COMMON planted in one message in 100) plus one conversation whose
only message is 10 MB of one word, FILL, repeated. Three searches, each the
best 20 with snippets through ``store.search``:

- an ordinary word: COMMON, found in 10,000 messages;
- FILL, found once, in the 10 MB message (1.4 million occurrences);
- a 1,000-word query drawn from the vocabulary as a message's words are
  (so mostly the commonest words, each with a long posting list);
- the commonest word, in 97% of the messages (a search ranks the latest
  10,000 matches: ``chatkeep.store.search.MAX_RANKED``).

Each row is the median of several calls after a warm-up, and its ratio to
the ordinary word's median; the target is under a second for every row.
The stores are built once (``import_conversations``, a thousand
conversations a transaction) and kept when ``--keep DIR`` names a folder, so
a second run, or a run of another chatkeep version, measures the same data.
An existing store from an older chatkeep is migrated when opened, and the
time that took is printed.

Run: .venv/bin/python benchmarks/search_cost.py [--messages 1000000] [--postgres URL] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from peers.common import interleaved, progress  # noqa: E402
from peers.corpus import COMMON, PER_CONVERSATION, role, texts, title, vocabulary  # noqa: E402

from chatkeep import open_store  # noqa: E402
from chatkeep.store.bulk import ImportConversation, ImportMessage  # noqa: E402

FILL = "haystack"  # in no other message
FILL_BYTES = 10_000_000
QUERY_WORDS = 1_000
BATCH = 1_000  # conversations a transaction
TARGET_MS = 1_000.0
SCHEMA = "chatkeep_search_cost"


def long_query(words: int = QUERY_WORDS) -> str:
    """``words`` words drawn as the corpus draws a message's words (the same on every run)."""
    vocab = vocabulary()
    cumulative = list(accumulate(1 / (rank + 1) for rank in range(len(vocab))))
    return " ".join(random.Random(3).choices(vocab, cum_weights=cumulative, k=words))


def conversations(total: int) -> Iterator[list[ImportConversation]]:
    """The corpus as import batches, then the conversation holding the 10 MB message."""
    corpus = texts(total)
    count = total // PER_CONVERSATION
    for low in range(0, count, BATCH):
        batch = []
        for c in range(low, min(count, low + BATCH)):
            base = c * PER_CONVERSATION
            messages = [
                ImportMessage({"role": role(i), "content": corpus[base + i]}, key=str(i),
                              parent_key=str(i - 1) if i else None,
                              model="gpt-4o" if role(i) == "assistant" else None)
                for i in range(PER_CONVERSATION)
            ]
            batch.append(ImportConversation(messages, key=f"bench:{c}", title=title(corpus[base])))
        yield batch
    big = (f"{FILL} " * (FILL_BYTES // (len(FILL) + 1) + 1))[:FILL_BYTES]
    yield [ImportConversation([ImportMessage({"role": "user", "content": big}, key="0")], key="bench:fill",
                              title="Ten megabytes of one word")]


def build(store: Any, total: int) -> None:
    started = time.perf_counter()
    written = 0
    for batch in conversations(total):
        store.import_conversations(batch)
        written += sum(len(item.messages) for item in batch)
        if len(batch) > 1:
            progress(f"{written:,} messages written ({time.perf_counter() - started:.0f} s)")
    progress(f"built in {time.perf_counter() - started:.0f} s")


def opened(target: str, total: int) -> Any:
    """The store at ``target``, built unless it already holds the corpus (a migration is timed)."""
    started = time.perf_counter()
    store = open_store(target)
    progress(f"opened {target.split('?')[0]} in {time.perf_counter() - started:.1f} s "
             "(an older store is migrated on opening)")
    if store.count_messages() != total + 1:
        if store.count_messages():
            sys.exit(f"{target} holds other data: give --keep an empty folder")
        build(store, total)
    return store


def postgres_target(url: str) -> str:
    """``url`` with its own schema on the search path (created when missing)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{SCHEMA}"


def tasks(store: Any) -> dict[str, Callable[[], Any]]:
    query = long_query()

    def ordinary() -> None:
        assert len(store.search(COMMON, limit=20)) == 20

    def filled() -> None:
        [hit] = store.search(FILL, limit=20)
        assert FILL in hit.snippet()

    def thousand_words() -> None:
        store.search(query, limit=20)

    def commonest() -> None:
        assert len(store.search(vocabulary()[0], limit=20)) == 20

    return {
        f"ordinary word '{COMMON}' (10,000 hits)": ordinary,
        f"'{FILL}', filling one 10 MB message": filled,
        f"a {QUERY_WORDS:,}-word query": thousand_words,
        f"commonest word '{vocabulary()[0]}' (in 97%)": commonest,
    }


def report(backend: str, store: Any) -> bool:
    timings = interleaved(tasks(store), runs=21, budget_s=10.0, min_runs=3)
    baseline = next(iter(timings.values())).median or 1.0
    within = True
    print(f"\n{backend}: {store.count_messages():,} messages")
    print(f"  {'search':<46} {'median ms':>10} {'ratio':>8} {'runs':>5}")
    for name, timing in timings.items():
        median = timing.median or 0.0
        within = within and median < TARGET_MS
        print(f"  {name:<46} {median:>10.1f} {median / baseline:>7.1f}x {len(timing.samples):>5}")
    return within


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="corpus size (a multiple of 100)")
    parser.add_argument("--postgres", metavar="URL", help="also measure PostgreSQL (in schema chatkeep_search_cost)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build the SQLite store here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatkeep-search-cost-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        within = report("SQLite", opened(str(folder / "search_cost.db"), args.messages))
        if args.postgres:
            within = report("PostgreSQL", opened(postgres_target(args.postgres), args.messages)) and within
    print(f"\nevery search under {TARGET_MS:,.0f} ms: {'yes' if within else 'NO'}")
    sys.exit(0 if within else 1)


if __name__ == "__main__":
    main()
