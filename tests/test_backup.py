"""Backups of a live SQLite store, and restoring them: consistent, checked, never half-done."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatkeep import StoreError, open_store
from chatkeep.store import SQLiteStore
from chatkeep.store.backup import backup, restore
from chatkeep.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from clitools import environment, run

WRITERS = 4

# Appends until told to stop; after each append returns, its id is written to the log in one
# O_APPEND write, so a complete line means the store had promised to keep that message.
WRITER = """
import os, sys, time
from chatkeep import open_store
store = open_store(sys.argv[1])
conversation = store.conversation(sys.argv[2])
log = os.open(sys.argv[3], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
stop, deadline = sys.argv[4], time.monotonic() + 120
n = 0
while not os.path.exists(stop) and time.monotonic() < deadline:
    stored = conversation.append({"role": "user", "content": f"{sys.argv[2]} message {n} " + "x" * (n % 700)})
    os.write(log, (stored.id + "\\n").encode())
    n += 1
"""


def acknowledged(logs: list[Path]) -> set[str]:
    """The message ids whose log line is complete."""
    ids = set()
    for log in logs:
        text = log.read_text() if log.exists() else ""
        ids.update(line for line in text.split("\n")[:-1] if line)  # the last piece may be cut short
    return ids


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fill(path: Path, count: int = 20) -> None:
    with open_store(path) as store:
        conversation = store.conversation("kept", create=True)
        for n in range(count):
            conversation.append({"role": "user", "content": f"message {n}"})


def test_a_backup_taken_while_four_processes_append_holds_every_acknowledged_message(tmp_path: Path) -> None:
    db, copy, stop = tmp_path / "live.db", tmp_path / "backup.db", tmp_path / "stop"
    with open_store(db) as store:
        for n in range(WRITERS):
            store.create_conversation(f"writer-{n}")
    logs = [tmp_path / f"writer-{n}.log" for n in range(WRITERS)]
    errors = [tmp_path / f"writer-{n}.err" for n in range(WRITERS)]
    procs = []
    for n in range(WRITERS):
        with open(errors[n], "wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-c", WRITER, str(db), f"writer-{n}", str(logs[n]),
                                           str(stop)], stderr=err))
    try:
        deadline = time.monotonic() + 60
        while min(len(acknowledged([log])) for log in logs) < 50:  # every writer is well under way
            assert time.monotonic() < deadline, [e.read_text() for e in errors]
            time.sleep(0.05)
        before = acknowledged(logs)
        result = run(environment(db), "backup", str(copy))
        during = acknowledged(logs)
        time.sleep(0.3)
        after = acknowledged(logs)
    finally:
        stop.touch()
        codes = [p.wait(timeout=60) for p in procs]
    assert result.code == 0, result.err
    assert result.out.startswith(f"Backed up {WRITERS} conversations (") and str(copy) in result.out
    assert codes == [0] * WRITERS and all(e.read_text() == "" for e in errors)
    assert len(after) > len(before) and len(after) > len(during)  # the writers went on around the backup
    with sqlite3.connect(copy) as check:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        kept = {row[0] for row in check.execute("SELECT id FROM messages")}
    assert before <= kept, f"{len(before - kept)} acknowledged messages missing from the backup"
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    with open_store(copy) as restored:
        assert restored.check_integrity() == []
    print(f"\nbackup figures: {len(before)} acknowledged before, {len(kept)} in the backup, "
          f"{len(after)} acknowledged by the end")


def test_a_backup_never_overwrites_unless_forced(tmp_path: Path) -> None:
    db, copy = tmp_path / "chat.db", tmp_path / "backup.db"
    fill(db)
    copy.write_bytes(b"an older backup")
    with open_store(db) as store:
        with pytest.raises(StoreError, match=r"backup\.db already exists; nothing was written \(pass --force"):
            backup(store, copy)
        assert copy.read_bytes() == b"an older backup"
        result = run(environment(db), "backup", str(copy))
        assert (result.code, copy.read_bytes()) == (1, b"an older backup")
        assert result.err == f"chatkeep: {copy} already exists; nothing was written (pass --force to replace it)\n"
        report = backup(store, copy, force=True)
    assert (report.conversations, report.messages, report.encrypted) == (1, 20, False)
    with open_store(copy) as restored:
        assert len(restored.conversation("kept").messages) == 20
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_a_folder_gets_a_dated_backup(tmp_path: Path) -> None:
    db, folder = tmp_path / "chat.db", tmp_path / "backups"
    fill(db, 3)
    folder.mkdir()
    with open_store(db) as store:
        report = backup(store, folder)
    assert report.path.parent == folder and report.path.name.startswith("chatkeep-") and report.path.suffix == ".db"


def test_restore_puts_the_backup_back(tmp_path: Path) -> None:
    db, copy = tmp_path / "chat.db", tmp_path / "backup.db"
    fill(db, 5)
    with open_store(db) as store:
        backup(store, copy)
        store.conversation("kept").append({"role": "user", "content": "written after the backup"})
        store.create_conversation("newer")
    result = run(environment(db), "restore", str(copy), "--yes")
    assert (result.code, result.err) == (0, "")
    assert result.out == f"Restored 1 conversations (5 messages) from {copy} into {db}\n"
    with open_store(db) as store:
        assert [m["content"] for m in store.conversation("kept").messages] == [f"message {n}" for n in range(5)]
        assert store.count_conversations() == 1 and store.check_integrity() == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("chat.db", ".chat.db"))) == ["chat.db"]


def test_restore_asks_first_and_refuses_without_an_answer(tmp_path: Path) -> None:
    db, copy = tmp_path / "chat.db", tmp_path / "backup.db"
    fill(db, 2)
    with open_store(db) as store:
        backup(store, copy)
    before = digest(db)
    result = run(environment(db), "restore", str(copy))
    assert result.code == 1 and result.err == "chatkeep: refusing to go on without confirmation: pass --yes\n"
    assert digest(db) == before


@pytest.mark.parametrize("kind", ["not a database", "another application's database", "damaged", "newer schema"])
def test_a_bad_backup_is_refused_and_the_store_is_left_alone(tmp_path: Path, kind: str) -> None:
    db, bad = tmp_path / "chat.db", tmp_path / "bad.db"
    fill(db, 3)
    if kind == "not a database":
        bad.write_bytes(b"my shopping list, not a database " * 200)
    elif kind == "another application's database":
        with sqlite3.connect(bad) as other:
            other.execute("CREATE TABLE notes (body TEXT)")
    else:
        with open_store(db) as store:
            backup(store, bad)
        if kind == "damaged":
            data = bytearray(bad.read_bytes())
            for page in range(1, len(data) // 4096):
                data[page * 4096 + 8:page * 4096 + 64] = b"\x07" * 56
            bad.write_bytes(bytes(data))
        else:
            with sqlite3.connect(bad) as newer:
                newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = digest(db)
    expected = {"not a database": "is not a SQLite database", "another application's database": "not a chatkeep store",
                "damaged": "damaged|malformed|cannot be read", "newer schema": "newer than this chatkeep understands"}
    with pytest.raises(StoreError, match=expected[kind]):
        restore(db, bad)
    assert digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir() if "chat.db" in p.name) == ["chat.db"]


def test_restore_is_refused_while_another_process_has_the_store_open(tmp_path: Path) -> None:
    db, copy = tmp_path / "chat.db", tmp_path / "backup.db"
    fill(db, 3)
    with open_store(db) as store:
        backup(store, copy)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from chatkeep import open_store; "
                               "s = open_store(sys.argv[1]); s.count_messages(); print('open', flush=True); "
                               "time.sleep(30)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        result = run(environment(db), "restore", str(copy), "--yes")
    finally:
        holder.kill()
        holder.communicate()
    assert result.code == 1
    assert result.err == (f"chatkeep: {db} is open in another process (a chat, a web server, a script): close it, "
                          "then restore again; nothing was changed\n")
    with open_store(db) as store:
        assert store.count_messages() == 3


def test_an_older_schema_is_restored_and_migrated(tmp_path: Path) -> None:
    db, old = tmp_path / "chat.db", tmp_path / "old.db"
    fill(db, 2)
    with sqlite3.connect(old, isolation_level=None) as legacy:  # a store as chatkeep wrote it four versions ago
        for migration in MIGRATIONS[:4]:
            migration(legacy)
        legacy.execute("PRAGMA user_version = 4")
        legacy.execute("INSERT INTO conversations (id, created_at, updated_at) VALUES ('old', '2024-01-01T00:00:00Z',"
                       " '2024-01-01T00:00:00Z')")
    report = restore(db, old)
    assert (report.schema_version, report.conversations, report.messages) == (4, 1, 0)
    with open_store(db) as store:
        assert [r.id for r in store.list_conversations()] == ["old"]
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_restore_that_cannot_open_puts_the_old_store_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, copy = tmp_path / "chat.db", tmp_path / "backup.db"
    fill(db, 4)
    with open_store(db) as store:
        backup(store, copy)
        store.conversation("kept").append({"role": "user", "content": "newer"})
    # A key is set, so the plain restored store refuses to open: the store goes back as it was.
    monkeypatch.setenv("CHATKEEP_KEY", "a key for a plain store")
    with pytest.raises(StoreError, match="the store was put back as it was"):
        restore(db, copy)
    monkeypatch.delenv("CHATKEEP_KEY")
    with open_store(db) as store:  # its log was folded into the file first; every message is there
        assert [m["content"] for m in store.conversation("kept").messages][-2:] == ["message 3", "newer"]
        assert store.check_integrity() == []
    assert sorted(p.name for p in tmp_path.iterdir() if "chat.db" in p.name) == ["chat.db"]


def test_postgres_stores_are_pointed_to_pg_dump(tmp_path: Path) -> None:
    url = "postgresql://alice:s3cret@db.example/chats"
    result = run(environment(tmp_path / "unused.db", CHATKEEP_DB=url), "backup", str(tmp_path / "x.db"))
    assert result.code == 1 and "s3cret" not in result.err
    assert "pg_dump --format=custom --file=BACKUP.dump" in result.err and "export --all" in result.err
    result = run(environment(tmp_path / "unused.db", CHATKEEP_DB=url), "restore", str(tmp_path / "unused.db"), "--yes")
    assert result.code != 0 and "s3cret" not in result.err


def test_the_library_refuses_other_stores(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="in-memory store cannot be backed up"):
        backup(SQLiteStore(":memory:"), tmp_path / "x.db")
    json_store = open_store(tmp_path / "history.json")
    with pytest.raises(StoreError, match="a JSON file store is one file: copy it"):
        backup(json_store, tmp_path / "x.db")  # type: ignore[arg-type]
    assert not (tmp_path / "x.db").exists()
    assert os.listdir(tmp_path) == ["history.json"] or "x.db" not in os.listdir(tmp_path)
