"""``chatkeep list``, piped, answered without click or the store's imports: a cold start near Python's own.

A listing piped to another program (a script, a shell prompt, ``fzf``) is the
command run most often in a new process, and there every import counts:
click, the store's modules and ``typing`` cost several times what starting
Python and importing ``sqlite3`` does. So ``chatkeep list [--db PATH] [-n N]``
with stdout not a terminal is read here with ``sqlite3`` alone, and printed
exactly as the click command prints it (tests/test_cli_quick.py compares the two).

It answers only when the answer is certain to be the click command's: any
other option, no ``--db`` or ``$CHATKEEP_DB`` while a settings file exists (it
may name the store), a URL, a ``.json`` file, ``$CHATKEEP_KEY``, a file that is
missing, not SQLite, not in WAL mode or not at this chatkeep's schema version,
or any error at all, and it declines: the click command then runs with its own
checks, migrations and messages. The file is opened read-only, so declining
after a failure never leaves anything changed.
"""

from __future__ import annotations

import os
import sys

from .._display import UNTITLED, derive_title, parse_time
from .text import listed_title, plain_row, short_time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the fast path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = ["SCHEMA_VERSION", "default_store", "listing", "parse", "serve", "settings_file"]

#: The SQLite schema version this reading matches (``store/sqlite_schema.py``; a test keeps them equal).
#: A file at any other version goes to the click command, which migrates it or says it is too new.
SCHEMA_VERSION = 14
DEFAULT_COUNT = 20  # list's -n default

# ``Organizing.list_conversations(limit=N, archived=False, pinned_first=True)`` (store/organize.py) with
# each conversation's message count (``SQLiteStore.count_messages``) in the same statement.
# The page is chosen first (MATERIALIZED): the subqueries then run for its rows only, not for every
# conversation before the sort (with 10,000 conversations of 100 messages, 120 ms against 3 ms).
_LIST = """
    WITH page AS MATERIALIZED (
        SELECT id, title, created_at, updated_at, metadata, pinned_at FROM conversations
        WHERE archived_at IS NULL ORDER BY (pinned_at IS NULL), updated_at DESC, id DESC LIMIT ? OFFSET 0)
    SELECT id, title, created_at, updated_at, metadata, pinned_at,
        (SELECT json_group_array(tag) FROM conversation_tags t WHERE t.conversation_id = page.id),
        (SELECT substr(m.text, 1, 1000) FROM messages m WHERE m.conversation_id = page.id
            AND m.role = 'user' AND m.kind <> 'summary' AND m.text <> '' ORDER BY m.seq LIMIT 1),
        (SELECT count(*) FROM messages m WHERE m.conversation_id = page.id)
    FROM page ORDER BY (pinned_at IS NULL), updated_at DESC, id DESC
"""


def parse(args: Sequence[str], environ: Mapping[str, str]) -> tuple[str, int] | None:
    """The store and count of ``list [--db PATH] [-n N]``, or None for any other command line."""
    if not args or args[0] != "list":
        return None
    given: dict[str, str] = {}
    rest = list(args[1:])
    while rest:
        arg = rest.pop(0)
        if arg.startswith("--") and "=" in arg:
            name, _, value = arg.partition("=")
        elif arg.startswith("-n") and len(arg) > 2:
            name, value = "-n", arg[2:]
        elif rest and not rest[0].startswith("-"):
            name, value = arg, rest.pop(0)
        else:
            return None
        name = "-n" if name == "--count" else name
        if name not in ("--db", "-n") or name in given:
            return None
        given[name] = value
    count = given.get("-n", str(DEFAULT_COUNT))
    if not (count.isascii() and count.isdigit()):
        return None  # click reads "+5", " 5" and "5_000" too: leave those to it
    db = given.get("--db", environ.get("CHATKEEP_DB") or "")  # click reads the variable only when set and non-empty
    if "--db" in given and not db.strip():
        return None  # an empty --db: click's path says what it makes of it
    if not db.strip():
        if os.path.lexists(settings_file(environ)):
            return None  # the settings may name the store (or be broken): click's path reads them
        db = default_store()
    return db, int(count)


def settings_file(environ: Mapping[str, str]) -> str:
    """``settings.settings_path()``, without importing the settings module (a test keeps the two equal)."""
    override = environ.get("CHATKEEP_CONFIG", "").strip()
    if override:
        return os.path.expanduser(override)
    from platformdirs import user_config_dir

    return os.path.join(user_config_dir("chatkeep", appauthor=False), "settings.toml")


def default_store() -> str:
    """``store.files.default_database_path()``, without importing the store (a test keeps the two equal)."""
    from platformdirs import user_data_dir

    return os.path.join(user_data_dir("chatkeep", appauthor=False), "chatkeep.db")


def _file(db: str) -> str | None:
    """The SQLite file ``open_store(db)`` opens, or None when it is not a plain path to one."""
    if "://" in db or db.startswith("sqlite:") or db.lower().endswith(".json") or db == ":memory:":
        return None
    return os.path.abspath(os.path.expanduser(db))


def listing(db: str, count: int) -> str | None:
    """What ``chatkeep list --db DB -n COUNT`` prints to a pipe, or None when the click command must answer."""
    import sqlite3

    file = _file(db)
    if file is None or os.name != "posix" or os.environ.get("CHATKEEP_KEY"):
        return None
    # Read-only, and never created: a missing file goes to the click command, which creates it owner-only.
    uri = "file:" + file.replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=60.0)
    except sqlite3.Error:
        return None
    try:
        if (connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION
                or str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal"):
            return None
        rows = connection.execute(_LIST, (count,)).fetchall()
        return "".join(_line(row) + "\n" for row in rows)
    except Exception:  # a damaged file, a lock held too long, a value the store would refuse: click says what
        return None
    finally:
        connection.close()


def _line(row: Sequence[Any]) -> str:
    conversation_id, title, created_at, updated_at, metadata, pinned_at, tags, first_prompt, messages = row
    parse_time(created_at)  # the store reads it too: a value it cannot read is its error to report
    updated = parse_time(updated_at)
    if pinned_at is not None:
        parse_time(pinned_at)
    extra = _json(metadata) if metadata != "{}" else {}
    if not isinstance(extra, dict):
        raise TypeError("metadata is not an object")  # the store's record would fail on it: leave it to click
    names = sorted(_json(tags)) if tags != "[]" else []
    shown = title or derive_title(first_prompt or "") or UNTITLED
    marked = listed_title(shown, pinned=pinned_at is not None, archived=False, source=extra.get("source"))
    return plain_row([conversation_id, marked, str(messages), short_time(updated), ", ".join(names)])


def _json(text: str) -> Any:
    import json  # only for a conversation with tags or metadata: most have neither

    return json.loads(text)


def serve(args: Sequence[str]) -> bool:
    """Print the listing when ``args`` is a plain piped ``list`` this module can answer; say whether it did."""
    stdout = sys.stdout
    if stdout is None or stdout.isatty():
        return False  # a terminal gets the click command's table
    parsed = parse(args, os.environ)
    text = None if parsed is None else listing(*parsed)
    if text is None:
        return False
    try:
        text.encode(stdout.encoding or "utf-8", stdout.errors or "strict")
    except (UnicodeError, LookupError):
        return False  # the click command reports what this stdout cannot show
    try:
        stdout.write(text)
        stdout.flush()
    except BrokenPipeError as exc:  # the reader left: say so as the click command does (rare, so click may load)
        from .errors import fail, unexpected_text

        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())  # the unwritten rest is dropped quietly at exit
        fail(unexpected_text(exc))
    return True
