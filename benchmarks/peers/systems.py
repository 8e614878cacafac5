"""Each system's way to keep one conversation: start it at a length, append, read.

Every system gets the same messages (``append.message``: about 170 characters,
user and assistant alternating) and keeps each conversation length in a fresh
conversation: a new session in one database for the database-backed systems
(as an application holds many conversations), a new file for the file-backed
ones (one file per conversation is how they are used).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from append import message  # benchmarks/append.py: the same messages as the single-system run

from chatkeep import open_store
from chatkeep.store.bulk import ImportConversation, ImportMessage
from chatkeep.store.pinned import pinned_of
from chatkeep.store.sqlite_search_backlog import BACKLOG_LIMIT, index_backlog

from .common import CHATKEEP_DURABILITY

BATCH = 10_000


def batches(start: int, stop: int) -> Iterator[range]:
    for low in range(start, stop, BATCH):
        yield range(low, min(stop, low + BATCH))


class System:
    """A conversation store under test; subclasses fill in the four operations."""

    name = ""
    floor = False  # a floor: what the machine allows, measured for appends only
    setting = ""  # durability: does each commit reach the disk?
    prefill = ""  # how a conversation is grown to a length before timing
    last20_note = ""  # how "the last 20" is read, when the API cannot read only 20

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.length = 0
        self.cut = ""  # why longer conversations are not run

    def start(self, n: int) -> None:
        """Make a new conversation holding messages 0..n-1."""
        raise NotImplementedError

    def _next(self) -> dict[str, str]:
        body = message(self.length)
        self.length += 1
        return body

    def append(self) -> None:
        raise NotImplementedError

    def last20(self) -> Any:
        raise NotImplementedError

    def read_all(self) -> Any:
        raise NotImplementedError


class Chatkeep(System):
    name = "chatkeep"
    setting = CHATKEEP_DURABILITY
    prefill = "import_conversations, one transaction"

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.store = open_store(folder / "chatkeep.db")

    def start(self, n: int) -> None:
        # Keys chain the messages one after another; without them each would be a root.
        items = [ImportMessage(message(i), key=str(i), parent_key=str(i - 1) if i else None) for i in range(n)]
        summary = self.store.import_conversations([ImportConversation(items)])
        self.conv = self.store.conversation(summary.conversation_ids[0])
        self.length = n

    def append(self) -> None:
        self.conv.append(self._next())

    def last20(self) -> Any:
        return self.conv.history(last=20)

    def read_all(self) -> Any:
        return self.conv.messages


class Tutorial(System):
    name = "tutorial: list + json.dump(indent=2)"
    setting = "plain file write, no fsync"
    prefill = "list built in memory"
    last20_note = "json.load of the whole file (a restart; a running process holds the list)"

    def start(self, n: int) -> None:
        self.file = self.folder / f"tutorial-{n}.json"
        self.messages = [message(i) for i in range(n)]
        self.length = n

    def append(self) -> None:
        self.messages.append(self._next())
        with open(self.file, "w") as f:
            json.dump(self.messages, f, indent=2)

    def last20(self) -> Any:
        with open(self.file) as f:
            return json.load(f)[-20:]

    def read_all(self) -> Any:
        with open(self.file) as f:
            return json.load(f)


def _lc(body: dict[str, str]) -> Any:
    from langchain_core.messages import AIMessage, HumanMessage

    return (HumanMessage if body["role"] == "user" else AIMessage)(content=body["content"])


class LangChainFile(System):
    name = "LangChain FileChatMessageHistory"
    setting = "plain file write, no fsync"
    prefill = "its JSON file written directly"
    last20_note = "reads all: .messages[-20:]"

    def start(self, n: int) -> None:
        from langchain_community.chat_message_histories import FileChatMessageHistory
        from langchain_core.messages import messages_to_dict

        path = self.folder / f"langchain-{n}.json"
        path.write_text(json.dumps(messages_to_dict([_lc(message(i)) for i in range(n)])))
        self.history = FileChatMessageHistory(str(path))
        self.length = n

    def append(self) -> None:
        self.history.add_message(_lc(self._next()))

    def last20(self) -> Any:
        return self.history.messages[-20:]

    def read_all(self) -> Any:
        return self.history.messages


class LangChainSQL(System):
    name = "LangChain SQLChatMessageHistory"
    setting = "set to WAL, synchronous=NORMAL (default: rollback journal, fsync per commit)"
    prefill = "add_messages, 10,000 a batch"
    last20_note = "reads all: .messages[-20:]; session_id has no index"

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        from sqlalchemy import create_engine, event

        self.engine = create_engine(f"sqlite:///{folder / 'langchain.db'}")

        # The engine is the user's to configure: set chatkeep's durability on every connection.
        @event.listens_for(self.engine, "connect")
        def pragmas(connection: Any, _record: Any) -> None:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")

    def start(self, n: int) -> None:
        from langchain_community.chat_message_histories import SQLChatMessageHistory

        self.history = SQLChatMessageHistory(session_id=f"conversation-{n}", connection=self.engine)
        for chunk in batches(0, n):
            self.history.add_messages([_lc(message(i)) for i in chunk])
        self.length = n

    def append(self) -> None:
        self.history.add_message(_lc(self._next()))

    def last20(self) -> Any:
        return self.history.messages[-20:]

    def read_all(self) -> Any:
        return self.history.messages


class LlamaIndex(System):
    name = "LlamaIndex SimpleChatStore + persist"
    setting = "plain file write, no fsync"
    prefill = "set_messages, persisted once"
    last20_note = "reads all: from_persist_path + get_messages()[-20:] (a restart; a running process holds the list)"

    def start(self, n: int) -> None:
        from llama_index.core.storage.chat_store import SimpleChatStore

        self.path = str(self.folder / f"llamaindex-{n}.json")
        self.store = SimpleChatStore()
        self.store.set_messages("conversation", [_li(message(i)) for i in range(n)])
        self.store.persist(self.path)
        self.length = n

    def append(self) -> None:
        self.store.add_message("conversation", _li(self._next()))
        self.store.persist(self.path)

    def _load(self) -> Any:
        from llama_index.core.storage.chat_store import SimpleChatStore

        return SimpleChatStore.from_persist_path(self.path).get_messages("conversation")

    def last20(self) -> Any:
        return self._load()[-20:]

    def read_all(self) -> Any:
        return self._load()


def _li(body: dict[str, str]) -> Any:
    from llama_index.core.llms import ChatMessage

    return ChatMessage(role=body["role"], content=body["content"])


class Agents(System):
    name = "Agents SDK SQLiteSession"
    setting = "WAL, set to synchronous=NORMAL (default FULL: fsync per commit); async"
    prefill = "add_items, 10,000 a batch"

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        from agents import SQLiteSession

        class Session(SQLiteSession):
            # The SDK has no durability option; its per-connection hook is the one place to set it.
            @staticmethod
            def _configure_connection(conn: Any) -> None:
                SQLiteSession._configure_connection(conn)
                conn.execute("PRAGMA synchronous=NORMAL")

        self.session_class = Session
        self.loop = asyncio.new_event_loop()

    def start(self, n: int) -> None:
        self.session = self.session_class(f"conversation-{n}", self.folder / "agents.db")
        for chunk in batches(0, n):
            self.loop.run_until_complete(self.session.add_items([message(i) for i in chunk]))  # type: ignore[misc]
        self.length = n

    def append(self) -> None:
        self.loop.run_until_complete(self.session.add_items([self._next()]))  # type: ignore[list-item]

    def last20(self) -> Any:
        return self.loop.run_until_complete(self.session.get_items(limit=20))

    def read_all(self) -> Any:
        return self.loop.run_until_complete(self.session.get_items())


class PlainFloor(System):
    """The floor the issue names: one raw ``INSERT`` and its commit, into the plainest table that holds the row."""

    name = "floor: raw sqlite3 INSERT + COMMIT, plain table"
    setting = "WAL, synchronous=NORMAL: no fsync per commit"
    prefill = "executemany, one transaction"
    floor = True

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.db = sqlite3.connect(folder / "floor-plain.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("CREATE TABLE messages (seq INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, body TEXT NOT NULL)")

    def start(self, n: int) -> None:
        self.conversation = f"conversation-{n}"
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO messages (conversation_id, body) VALUES (?, ?)",
                                [(self.conversation, json.dumps(message(i))) for i in range(n)])
        self.length = n

    def append(self) -> None:
        # Autocommit: the statement is its own transaction, committed as it ends.
        self.db.execute("INSERT INTO messages (conversation_id, body) VALUES (?, ?)",
                        (self.conversation, json.dumps(self._next())))


class PlainSearchFloor(PlainFloor):
    """The plain floor with a full-text index: the same INSERT, and its text's FTS5 entry, in one transaction."""

    name = "floor: raw sqlite3 INSERT + COMMIT, plain table with an FTS5 index"

    def __init__(self, folder: Path) -> None:
        System.__init__(self, folder)
        self.db = sqlite3.connect(folder / "floor-plain-fts.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("CREATE TABLE messages (seq INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL, body TEXT NOT NULL)")
        self.db.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(words)")
        # FTS5 writes what a transaction added when it commits, so each append pays for its own segment.
        self.db.execute("CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
                        " INSERT INTO messages_fts(rowid, words) VALUES (new.seq, new.body); END")


class SchemaFloor(System):
    """What SQLite alone costs for chatkeep's row: chatkeep's statements on chatkeep's tables, no Python around them."""

    name = "floor: raw sqlite3, chatkeep's tables and statements"
    setting = "WAL, synchronous=NORMAL: no fsync per commit"
    prefill = "import_conversations, one transaction"
    floor = True

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        from chatkeep.store.sqlite_schema import add_functions

        self.store = open_store(folder / "floor-schema.db")  # makes chatkeep's schema: indexes, search index
        self.db = sqlite3.connect(folder / "floor-schema.db", isolation_level=None)
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA foreign_keys = ON")
        add_functions(self.db)  # the search index's trigger calls chatkeep's word splitter

    def start(self, n: int) -> None:
        items = [ImportMessage(message(i), key=str(i), parent_key=str(i - 1) if i else None) for i in range(n)]
        self.conversation = self.store.import_conversations([ImportConversation(items)]).conversation_ids[0]
        self.length = n

    def append(self) -> None:
        body = self._next()
        row_id = f"floor-{self.conversation}-{self.length}"
        db = self.db
        # chatkeep's append: take the write lock, read the head, insert the row under it, move the head.
        db.execute("BEGIN IMMEDIATE")
        # With the head, where the search index's backlog starts (store/sqlite_search_backlog.py).
        head, backlog_from = db.execute("SELECT head_id, (SELECT min(seq) FROM search_backlog) FROM conversations"
                                        " WHERE id = ?", (self.conversation,)).fetchone()
        # The row names its nearest system or developer ancestor, read from its parent, as chatkeep's does.
        seq = db.execute("INSERT INTO messages (id, conversation_id, parent_id, kind, role, body, text, created_at,"
                         " status, metadata, pinned_ancestor) VALUES (?1, ?2, ?3, 'chat', ?4, ?5, ?6,"
                         f" '2026-01-01T00:00:00.000000Z', 'complete', '{{}}', {pinned_of('?3')})",
                         (row_id, self.conversation, head, body["role"], json.dumps(body), body["content"])).lastrowid
        if backlog_from is not None and seq - backlog_from >= BACKLOG_LIMIT:
            index_backlog(db)  # the backlog joins the index: chatkeep's two statements
        db.execute("UPDATE conversations SET head_id = ?, updated_at = '2026-01-01T00:00:00.000000Z' WHERE id = ?",
                   (row_id, self.conversation))
        db.execute("COMMIT")


ALL: list[type[System]] = [Chatkeep, Tutorial, LangChainFile, LangChainSQL, LlamaIndex, Agents]
#: The floors the append is measured against: what SQLite itself costs, without chatkeep.
FLOORS: list[type[System]] = [PlainFloor, PlainSearchFloor, SchemaFloor]
