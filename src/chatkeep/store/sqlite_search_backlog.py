"""The SQLite search index's backlog: messages saved but not yet in ``messages_fts``.

FTS5 writes a new index segment each time a transaction that added to it
commits; for one message that was 40% of an append's SQL. So an insert only
notes its row in ``search_backlog`` (the trigger of ``m014_search_backlog``),
and the backlog joins the index in one statement: before a read of the index,
and when an append finds it grown past :data:`BACKLOG_LIMIT`. What a read
still finds waiting (the store is read-only, or another process appended
since) goes into a small temporary index of the connection's own,
:data:`WAITING`, which that read consults beside the main one.
"""

from __future__ import annotations

import sqlite3

__all__ = ["BACKLOG_LIMIT", "WAITING", "backlog_start", "index_backlog", "index_waiting"]

#: An append that finds the backlog's oldest row this many rows back indexes the whole backlog.
BACKLOG_LIMIT = 256

#: The connection's temporary index of the messages still in the backlog.
WAITING = "search_backlog_words"

# The messages in the backlog and their words, as messages_fts holds them (see m006_search_words).
_WAITING_WORDS = ("SELECT m.seq, chatkeep_search_words(m.text) FROM search_backlog b"
                  " JOIN messages m ON m.seq = b.seq ORDER BY b.seq")


def backlog_start(db: sqlite3.Connection) -> int | None:
    """The ``seq`` of the oldest message waiting for the index (``None``: none waits)."""
    return db.execute("SELECT min(seq) FROM search_backlog").fetchone()[0]  # type: ignore[no-any-return]


def index_backlog(db: sqlite3.Connection) -> None:
    """Move every waiting message into the search index, inside the caller's write transaction."""
    db.execute(f"INSERT INTO messages_fts (rowid, words) {_WAITING_WORDS}")
    db.execute("DELETE FROM search_backlog")


def index_waiting(db: sqlite3.Connection) -> bool:
    """Make the connection's :data:`WAITING` index hold exactly the messages waiting; whether there are any.

    Run it inside the read transaction that then reads both indexes, so the
    two agree with each other and with the messages read. The temporary
    schema is the connection's own: a read-only store can write it.
    """
    if backlog_start(db) is None:
        return False
    # The tokenizer is messages_fts's (m006): the words come already split.
    db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{WAITING} USING fts5(words,"
               " tokenize = \"ascii tokenchars '$+<=>^`|~'\")")
    db.execute(f"DELETE FROM temp.{WAITING}")
    db.execute(f"INSERT INTO temp.{WAITING} (rowid, words) {_WAITING_WORDS}")
    return True
