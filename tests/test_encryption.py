"""Encryption at rest (SQLCipher): encrypted stores work like plain ones, a wrong key is a clear error
that changes nothing, and encrypt/decrypt convert a store in place safely.

The store contract suite also runs over an encrypted store (tests/test_store_contract.py).
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chatkeep import EncryptionKeyError, StoreError, open_store
from chatkeep.store.backup import backup, restore
from chatkeep.store.encryption import decrypt_store, encrypt_store, file_kind, new_raw_key
from chatkeep.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from clitools import environment, run

pytest.importorskip("sqlcipher3")

KEY = "correct horse battery staple"
RAW_KEY = "x'" + "5a" * 32 + "'"  # no key derivation: fast to open
MARKER = "plaintextmarkerwordzz"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_of(db: Path) -> bytes:
    return b"".join(Path(f"{db}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm")
                    if Path(f"{db}{suffix}").exists())


def picture() -> str:
    return "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 12).decode()


def fill(db: Path, key: str | None = None, count: int = 30) -> None:
    with open_store(db, key=key) as store:
        conversation = store.conversation("secret", create=True)
        conversation.append({"role": "user", "content": [{"type": "text", "text": f"{MARKER} look"},
                                                         {"type": "image_url", "image_url": {"url": picture()}}]})
        for n in range(count):
            conversation.append({"role": "assistant" if n % 2 else "user", "content": f"{MARKER} number {n}"})


def test_an_encrypted_store_keeps_nothing_readable_and_works_as_usual(tmp_path: Path) -> None:
    db = tmp_path / "secret.db"
    fill(db, RAW_KEY)
    assert file_kind(db) == "encrypted" and MARKER.encode() not in files_of(db)
    with open_store(db, key=RAW_KEY) as store:
        assert store.encrypted and store.check_integrity() == []
        assert len(store.search(MARKER, limit=100)) == 31  # FTS5
        first = store.conversation("secret").messages[0]
        assert first["content"][1]["image_url"]["url"] == picture()  # attachments read back whole
        assert store.attachment_stats()["attachments"] == 1
        assert store.usage_by_model() == {"unknown": {"replies": 15, "prompt_tokens": 0, "completion_tokens": 0}}  # JSON
    with sqlite3.connect(db) as plain, pytest.raises(sqlite3.DatabaseError, match="not a database"):
        plain.execute("SELECT count(*) FROM sqlite_master").fetchone()


def test_a_new_store_opened_with_the_environment_key_is_created_encrypted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATKEEP_KEY", KEY)  # a passphrase: SQLCipher derives the key from it
    db = tmp_path / "new.db"
    fill(db, count=2)
    assert file_kind(db) == "encrypted"
    with open_store(db) as store:
        assert store.count_messages() == 3


@pytest.mark.parametrize("given", ["wrong key", None])
def test_a_wrong_or_missing_key_is_a_clear_error_and_changes_nothing(tmp_path: Path, given: str | None) -> None:
    db = tmp_path / "secret.db"
    fill(db, RAW_KEY)
    before = digest(db)
    with pytest.raises(EncryptionKeyError) as caught:
        open_store(db, key=given)
    assert str(db) in str(caught.value) and "$CHATKEEP_KEY" in str(caught.value)
    env = environment(db, **({"CHATKEEP_KEY": given} if given else {}))
    for command in (["list"], ["chat", "-m", "hello"], ["search", MARKER], ["backup", str(tmp_path / "b.db")]):
        result = run(env, *command)
        assert result.code == 1 and result.out == "" and "Traceback" not in result.err, (command, result.err)
        assert result.err.count("\n") == 1 and str(db) in result.err and "CHATKEEP_KEY" in result.err, result.err
    assert digest(db) == before and not (tmp_path / "b.db").exists()
    with open_store(db, key=RAW_KEY) as store:
        assert store.count_messages() == 31


def test_a_key_for_a_plain_store_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "plain.db"
    fill(db, count=1)
    before = digest(db)
    with pytest.raises(EncryptionKeyError, match="is not encrypted, yet the key given asks for an encrypted store"):
        open_store(db, key=KEY)
    result = run(environment(db, CHATKEEP_KEY=KEY), "list")
    assert result.code == 1 and "unset $CHATKEEP_KEY" in result.err
    assert digest(db) == before


def test_migrations_run_on_an_encrypted_store(tmp_path: Path) -> None:
    from sqlcipher3 import dbapi2

    db = tmp_path / "old.db"
    legacy = dbapi2.connect(str(db), isolation_level=None)
    legacy.execute(f"PRAGMA key = \"{RAW_KEY}\"")
    for migration in MIGRATIONS[:5]:  # a store as chatkeep wrote it five versions ago
        migration(legacy)
    legacy.execute("PRAGMA user_version = 5")
    legacy.close()
    with open_store(db, key=RAW_KEY) as store:
        store.conversation("now", create=True).append({"role": "user", "content": f"{MARKER} after upgrading"})
        assert [hit.message.conversation_id for hit in store.search(MARKER)] == ["now"]
    from chatkeep.store.encryption import open_connection
    from chatkeep.store.sqlite_files import connect

    check = open_connection(str(db), key=RAW_KEY, read_only=True, busy_timeout=5, plain=connect)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    check.close()


WRITER = """
import sys
from chatkeep import open_store
store = open_store(sys.argv[1])
conversation = store.conversation("shared")
for i in range(100):
    conversation.append({"role": "user", "content": f"{sys.argv[2]}:{i}"})
"""


def test_several_processes_append_to_an_encrypted_store(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    env = environment(db, CHATKEEP_KEY=RAW_KEY)
    with open_store(db, key=RAW_KEY) as store:
        store.create_conversation("shared")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(n)], env=env, stderr=subprocess.PIPE)
             for n in range(4)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outcomes]
    with open_store(db, key=RAW_KEY) as store:
        assert store.count_messages() == 400 and store.check_integrity() == []


def test_encrypt_and_decrypt_convert_a_store_in_place(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    fill(db)
    assert MARKER.encode() in files_of(db)
    missing = run(environment(db), "encrypt")
    assert missing.code == 1 and "set CHATKEEP_KEY to the key" in missing.err and file_kind(db) == "plain"
    env = environment(db, CHATKEEP_KEY=KEY)
    done = run(env, "encrypt")
    assert done.code == 0, done.err
    assert done.out == (f"Encrypted {db} (1 conversations, 31 messages checked). Its key is the one in $CHATKEEP_KEY: "
                        "without it the store cannot be opened.\n")
    assert file_kind(db) == "encrypted" and MARKER.encode() not in files_of(db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.db"]  # no copy, no log, no plain file left
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    found = run(env, "search", MARKER)
    assert found.code == 0 and len(found.out.strip().splitlines()) >= 20
    again = run(env, "encrypt")
    assert again.code == 1 and "already encrypted" in again.err
    done = run(env, "decrypt")
    assert done.code == 0 and done.out.endswith("Unset CHATKEEP_KEY to open it.\n"), done.err
    assert file_kind(db) == "plain" and MARKER.encode() in db.read_bytes()
    with open_store(db) as store:
        assert store.count_messages() == 31 and store.check_integrity() == []
        assert store.conversation("secret").messages[0]["content"][1]["image_url"]["url"] == picture()


def test_converting_is_refused_while_another_process_has_the_store_open(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    fill(db, count=3)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from chatkeep import open_store; "
                               "s = open_store(sys.argv[1]); s.count_messages(); print('open', flush=True); "
                               "time.sleep(30)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(StoreError, match="is open in another process"):
            encrypt_store(db, KEY)
    finally:
        holder.kill()
        holder.communicate()
    assert file_kind(db) == "plain" and sorted(p.name for p in tmp_path.iterdir() if "converting" in p.name) == []
    with open_store(db) as store:
        assert store.count_messages() == 4


def test_a_failed_conversion_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    fill(db, RAW_KEY, count=3)
    before = digest(db)
    with pytest.raises(EncryptionKeyError, match="does not open it"):
        decrypt_store(db, "not the key")
    assert digest(db) == before
    with pytest.raises(StoreError, match="is not encrypted"):
        decrypt_store(tmp_path / "absent.db", RAW_KEY)


def test_the_key_can_live_in_the_os_keyring(tmp_path: Path) -> None:
    pytest.importorskip("keyrings.alt")
    db = tmp_path / "chat.db"
    fill(db, count=2)
    # A real keyring backend that keeps its file under the test's own data directory.
    env = environment(db, PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
                      XDG_DATA_HOME=str(tmp_path / "data"))
    done = run(env, "encrypt", "--keyring")
    assert done.code == 0 and "kept in the OS keyring" in done.out, done.err
    assert file_kind(db) == "encrypted"
    listed = run(env, "list")
    assert listed.code == 0 and listed.out.startswith("secret\t"), listed.err
    without = run({**env, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}, "list")
    assert without.code == 1 and "CHATKEEP_KEY" in without.err
    assert run(env, "decrypt").code == 0 and file_kind(db) == "plain"


def test_backups_of_an_encrypted_store_are_encrypted_and_restore(tmp_path: Path) -> None:
    db, copy = tmp_path / "chat.db", tmp_path / "backup.db"
    fill(db, RAW_KEY, count=4)
    with open_store(db, key=RAW_KEY) as store:
        report = backup(store, copy)
        store.conversation("secret").append({"role": "user", "content": "after the backup"})
    assert report.encrypted and file_kind(copy) == "encrypted" and MARKER.encode() not in copy.read_bytes()
    with pytest.raises(EncryptionKeyError):
        restore(db, copy)  # no key: neither file can be read
    assert restore(db, copy, key=RAW_KEY).messages == 5
    with open_store(db, key=RAW_KEY) as store:
        assert store.count_messages() == 5


def test_a_raw_key_is_random_and_in_sqlciphers_form() -> None:
    first, second = new_raw_key(), new_raw_key()
    assert first != second and first.startswith("x'") and first.endswith("'") and len(first) == 67
