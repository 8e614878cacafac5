"""The SQLite backend's own promises: settings, migrations, files, processes."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chatkeep import MigrationError, StoreError, open_store
from chatkeep.store import SQLiteStore
from chatkeep.store.sqlite_schema import SCHEMA_VERSION


def test_settings_are_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    store = open_store(tmp_path / "chat.db")
    assert isinstance(store, SQLiteStore)
    pragma = lambda name: store._db.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("foreign_keys") == 1
    assert pragma("busy_timeout") == 60_000
    assert pragma("synchronous") == 1  # NORMAL
    assert pragma("user_version") == SCHEMA_VERSION
    full = open_store(tmp_path / "full.db", durability="full")
    assert full._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_default_location_is_the_user_data_dir_and_env_overrides(
    isolated_environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store()
    assert Path(store.file) == isolated_environment / "chatkeep" / "chatkeep.db"
    monkeypatch.setenv("CHATKEEP_DB", str(tmp_path / "env.db"))
    assert Path(open_store().file) == tmp_path / "env.db"
    assert Path(open_store(tmp_path / "arg.db").file) == tmp_path / "arg.db"
    assert open_store(f"sqlite:///{tmp_path}/url.db").file == f"{tmp_path}/url.db"


def test_created_files_and_directories_are_owner_only(isolated_environment: Path) -> None:
    store = open_store()
    store.conversation("c", create=True).append({"role": "user", "content": "hi"})
    created = [isolated_environment, isolated_environment / "chatkeep"]
    created += list((isolated_environment / "chatkeep").iterdir())
    assert len(created) >= 4  # the directories, the database and its WAL files
    for path in created:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    open_store(tmp_path / "chat.db").close()
    with sqlite3.connect(tmp_path / "chat.db") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(MigrationError, match="newer than this chatkeep understands"):
        open_store(tmp_path / "chat.db")


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(StoreError, match=r"notes\.db is not a SQLite database; it was left untouched"):
        open_store(junk)
    assert junk.read_bytes() == b"these are my notes, not a database" * 100


def test_unknown_url_schemes_are_refused() -> None:
    with pytest.raises(StoreError, match="unsupported store URL scheme 'mysql'"):
        open_store("mysql://localhost/chat")


def test_integrity_check_is_clean_after_work(tmp_path: Path) -> None:
    store = open_store(tmp_path / "chat.db")
    conv = store.new_conversation()
    for i in range(50):
        conv.append({"role": "user", "content": f"message {i}"})
    conv.delete()
    assert store.check_integrity() == []


def test_another_process_sees_what_one_wrote(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    writer = (
        "import sys; from chatkeep import open_store;"
        "c = open_store(sys.argv[1]).conversation('support-42', create=True);"
        "c.append({'role': 'user', 'content': 'from process one'})"
    )
    subprocess.run([sys.executable, "-c", writer, str(db)], check=True)
    reader = (
        "import sys, json; from chatkeep import open_store;"
        "print(json.dumps(open_store(sys.argv[1]).conversation('support-42').messages))"
    )
    out = subprocess.run([sys.executable, "-c", reader, str(db)], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == '[{"role": "user", "content": "from process one"}]'


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    open_store(db).new_conversation("shared")
    writer = (
        "import sys; from chatkeep import open_store;"
        "c = open_store(sys.argv[1]).conversation('shared');"
        "[c.append({'role': 'user', 'content': f'{sys.argv[2]}-{i}'}) for i in range(100)]"
    )
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(db), str(n)]) for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    texts = [m["content"] for m in open_store(db).conversation("shared").messages]
    assert len(texts) == 400
    for n in range(4):  # one chain, and each writer's own order kept within it
        assert [t for t in texts if t.startswith(f"{n}-")] == [f"{n}-{i}" for i in range(100)]


def test_lone_surrogates_and_nul_bytes_round_trip(tmp_path: Path) -> None:
    conv = open_store(tmp_path / "chat.db").new_conversation()
    odd = {"role": "user", "content": "a\x00b \ud800 \u202eevil \U0001f600"}
    conv.append(odd)
    assert open_store(tmp_path / "chat.db").conversation(conv.id).messages == [odd]
