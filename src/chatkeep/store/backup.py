"""Backing up a live SQLite store, and putting a backup back.

A backup is made with ``VACUUM INTO`` on the store's own connection: one read
transaction, so the copy is one consistent state of the store (everything
committed before it began, nothing half-written) while other processes go on
appending; the copy is compact, and an encrypted store's copy is encrypted
with the same key. It is written beside the destination, checked (it opens,
passes ``PRAGMA integrity_check``, holds as many conversations and messages
as the snapshot), and only then given its name: an existing file is never
overwritten unless asked, and an interrupted backup leaves no half file.

A restore checks the backup first (a SQLite file, sound, a chatkeep store of
a schema this chatkeep can migrate), refuses while another process has the
store open, keeps the current store aside as ``NAME.before-restore`` until
the restored one has opened (and migrated) cleanly, then removes it; any
failure puts the old store back.

PostgreSQL has its own tools (``pg_dump``); see :func:`postgres_advice`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import EncryptionKeyError, StoreError
from .encryption import file_kind, fsync_path, is_db_error, resolve_key, take_exclusive
from .files import touch_private_file
from .sqlite import SQLiteStore
from .sqlite_schema import SCHEMA_VERSION

__all__ = ["BackupReport", "RestoreReport", "backup", "inspect_backup", "postgres_advice", "restore"]


@dataclass(frozen=True)
class BackupReport:
    """A backup made: where, how big, what it holds (as checked after writing it)."""

    path: Path
    size: int
    conversations: int
    messages: int
    encrypted: bool
    seconds: float


@dataclass(frozen=True)
class RestoreReport:
    """A backup put back: the store, what it now holds, and the backup's schema version."""

    path: Path
    backup: Path
    conversations: int
    messages: int
    schema_version: int
    replaced: bool


def postgres_advice(url: str) -> str:
    """How to back up and restore a PostgreSQL store: the server's tools, not chatkeep's."""
    return (f"{url} is a PostgreSQL store: back it up with pg_dump --format=custom --file=BACKUP.dump \"URL\" "
            "(add --schema=NAME when chatkeep has its own schema) and restore it with "
            "pg_restore --clean --if-exists --dbname \"URL\" BACKUP.dump; chatkeep export --all --format jsonl "
            "writes every conversation to a file too (see docs/maintenance.md)")


def _counts(db: sqlite3.Connection, schema: str) -> tuple[int, int]:
    conversations = db.execute(f"SELECT count(*) FROM {schema}.conversations").fetchone()[0]
    messages = db.execute(f"SELECT count(*) FROM {schema}.messages").fetchone()[0]
    return int(conversations), int(messages)


def _destination(path: Path) -> Path:
    if path.is_dir():  # a folder: a dated file inside it
        return path / f"chatkeep-{datetime.now().strftime('%Y%m%d-%H%M%S')}.db"
    return path


def backup(store: SQLiteStore, destination: str | os.PathLike[str], *, force: bool = False) -> BackupReport:
    """Copy ``store`` to ``destination`` (a file, or a folder for a dated file) while others may write.

    Refuses to replace an existing file unless ``force``. The copy is checked
    before it gets its name; an encrypted store's copy needs the same key.
    """
    if not isinstance(store, SQLiteStore):
        url = getattr(store, "url", repr(store))
        if str(url).startswith("postgres"):
            raise StoreError(postgres_advice(str(url)))
        raise StoreError(f"{url}: only SQLite stores are backed up with chatkeep backup; "
                         "a JSON file store is one file: copy it")
    if store.file == ":memory:":
        raise StoreError("an in-memory store cannot be backed up (it is gone when the process ends)")
    target = _destination(Path(destination).expanduser())
    if target.exists() and not force:
        raise StoreError(f"{target} already exists; nothing was written (pass --force to replace it)")
    if target.exists() and os.path.samefile(target, store.file):
        raise StoreError(f"{target} is the store itself; back it up to another file")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    started = time.perf_counter()
    try:
        partial.unlink(missing_ok=True)
        touch_private_file(partial)  # VACUUM INTO fills an empty file, and this one is owner-only
        conversations, messages = _vacuum_into(store, partial)
        fsync_path(partial)
        if force:
            os.replace(partial, target)
        else:
            try:
                os.link(partial, target)  # fails if the name was taken meanwhile: never overwrites
            except FileExistsError as exc:
                raise StoreError(f"{target} already exists; nothing was written (pass --force to replace it)") from exc
            partial.unlink()
        fsync_path(target.parent)
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(target, target.stat().st_size, conversations, messages, store.encrypted,
                        time.perf_counter() - started)


def _vacuum_into(store: SQLiteStore, partial: Path) -> tuple[int, int]:
    """Write the snapshot and check it through the store's connection (which knows an encrypted store's key)."""
    with store._lock:
        db = store._db
        try:
            db.execute("VACUUM INTO ?", (str(partial),))
            # Attached without a key, an encrypted store's copy is read with the store's own key.
            db.execute("ATTACH DATABASE ? AS checked_backup", (str(partial),))
            try:
                problems = [str(r[0]) for r in db.execute("PRAGMA checked_backup.integrity_check") if r[0] != "ok"]
                counts = _counts(db, "checked_backup")
            finally:
                db.execute("DETACH DATABASE checked_backup")
        except Exception as exc:
            if is_db_error(exc):
                raise StoreError(f"{store.file}: the backup could not be made ({exc}); nothing was written") from exc
            raise
    if problems:
        raise StoreError(f"the backup of {store.file} failed its integrity check ({'; '.join(problems[:3])}); "
                         "nothing was written")
    return counts


# -- restore --------------------------------------------------------------------


def _connect(file: Path, key: str | None, name: Path | None = None) -> sqlite3.Connection:
    """A plain or SQLCipher connection to ``file`` (``key`` only for an encrypted one); errors say ``name``."""
    from .encryption import _check_key, _keyed

    if key is None:
        return sqlite3.connect(file, isolation_level=None, timeout=2.0)
    db = _keyed(str(file), key, busy_timeout=2.0)
    _check_key(db, str(name or file), "the key")
    return db


def inspect_backup(path: Path, key: str | None = None, *, name: Path | None = None) -> tuple[int, int, int]:
    """Check a backup file and return its schema version, conversations and messages.

    It must open (with ``key`` when encrypted), pass the integrity check, be a
    chatkeep store, and have a schema this chatkeep can migrate. A ``-wal``
    file beside it is folded in first, so only a copy should be inspected;
    errors name ``name`` (the original of a copy) when given.
    """
    shown = name or path
    kind = file_kind(path)
    if kind == "missing":
        raise StoreError(f"{shown}: no backup there (the file is missing or empty)")
    if kind == "encrypted" and not key:
        raise EncryptionKeyError(f"{shown} is encrypted (or is not a SQLite database): set $CHATKEEP_KEY to its key; "
                                 "nothing was restored")
    db = _connect(path, key if kind == "encrypted" else None, shown)
    try:
        db.execute("PRAGMA journal_mode = DELETE")  # a self-contained file: its log folded in
        problems = [str(r[0]) for r in db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        if problems:
            raise StoreError(f"{shown}: the backup is damaged ({'; '.join(problems[:3])}); nothing was restored")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if not {"conversations", "messages"} <= tables or version < 1:
            raise StoreError(f"{shown} is not a chatkeep store; nothing was restored")
        if version > SCHEMA_VERSION:
            raise StoreError(f"{shown}: the backup's schema version {version} is newer than this chatkeep "
                             f"understands ({SCHEMA_VERSION}); upgrade chatkeep to restore it")
        return (version, *_counts(db, "main"))
    except Exception as exc:
        if is_db_error(exc):
            raise StoreError(f"{shown}: the backup cannot be read as a SQLite store ({exc}); nothing was restored") \
                from exc
        raise
    finally:
        db.close()


def _hold_current(file: Path, key: str | None) -> sqlite3.Connection | None:
    """Make sure no other process has the store open (refuse otherwise); None when it cannot be opened at all.

    A store too damaged to open (the usual reason to restore) is replaced as it
    is; it is still kept aside until the restored one has opened.
    """
    kind = file_kind(file)
    if kind == "missing":
        return None
    if kind == "encrypted" and not key:
        raise EncryptionKeyError(f"{file} is encrypted: set $CHATKEEP_KEY to its key, so restore can make sure "
                                 "no other process has it open; nothing was restored")
    try:
        db = _connect(file, key if kind == "encrypted" else None)
    except EncryptionKeyError as exc:
        raise EncryptionKeyError(f"{exc}; nothing was restored") from exc
    except Exception as exc:
        if is_db_error(exc):
            return None
        raise
    try:
        take_exclusive(db, file, "restore")
    except StoreError:
        db.close()
        raise
    except Exception as exc:
        db.close()
        if is_db_error(exc):
            return None
        raise
    return db


def _set_aside(file: Path, aside: Path) -> None:
    """Keep the current store under another name too (a hard link, else a copy)."""
    aside.unlink(missing_ok=True)
    try:
        os.link(file, aside)
    except OSError:
        shutil.copy2(file, aside)


def restore(store_path: str | os.PathLike[str], backup_path: str | os.PathLike[str], *,
            key: str | None = None) -> RestoreReport:
    """Put the backup at ``backup_path`` in place of the SQLite store at ``store_path``.

    ``key`` (else ``$CHATKEEP_KEY``, else the keyring entry of the store) opens
    an encrypted backup and the encrypted store it replaces.
    """
    file, source = Path(store_path).expanduser(), Path(backup_path).expanduser()
    if not source.is_file():
        raise StoreError(f"{source}: no backup there")
    if file.exists() and os.path.samefile(file, source):
        raise StoreError(f"{source} is the store itself; nothing was restored")
    found, _ = resolve_key(str(file), key)
    partial = file.with_name(f".{file.name}.restoring-{os.getpid()}")
    aside = file.with_name(file.name + ".before-restore")
    _clear(partial)
    touch_private_file(partial)
    shutil.copyfile(source, partial)
    if Path(f"{source}-wal").exists():  # committed pages still in the backup's log come along
        shutil.copyfile(f"{source}-wal", f"{partial}-wal")
    current = None
    try:
        version, _, _ = inspect_backup(partial, found, name=source)
        current = _hold_current(file, found)
        replaced = file.exists()
        fsync_path(partial)
        if replaced:
            _set_aside(file, aside)
        os.replace(partial, file)
        fsync_path(file.parent)
        for suffix in ("-wal", "-shm"):  # the old store's; they belong to no database now
            Path(f"{file}{suffix}").unlink(missing_ok=True)
    except BaseException:
        _clear(partial)
        if current is not None:
            current.execute("PRAGMA journal_mode = WAL")  # the store goes on as it was
            current.close()
        raise
    if current is not None:
        current.close()
    return _open_restored(file, source, aside if replaced else None, found, version, replaced)


def _open_restored(file: Path, source: Path, aside: Path | None, key: str | None, version: int,
                   replaced: bool) -> RestoreReport:
    """Open (and migrate) the restored store; on any failure the store set aside goes back."""
    try:
        with SQLiteStore(file, key=key) as restored:
            problems = restored.check_integrity()
            if problems:
                raise StoreError(f"{file}: the restored store failed its check ({'; '.join(problems[:3])})")
            counts = restored.count_conversations(), restored.count_messages()
    except BaseException as exc:
        if aside is not None:
            os.replace(aside, file)
            for suffix in ("-wal", "-shm"):
                Path(f"{file}{suffix}").unlink(missing_ok=True)
            if isinstance(exc, StoreError):
                raise StoreError(f"{exc}; the store was put back as it was") from exc
        raise
    if aside is not None:
        aside.unlink(missing_ok=True)
    return RestoreReport(file, source, *counts, schema_version=version, replaced=replaced)


def _clear(partial: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)


def describe(report: BackupReport | RestoreReport) -> dict[str, Any]:
    """A report as plain JSON values."""
    values = dict(vars(report))
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}

