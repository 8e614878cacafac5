"""Encryption at rest for the SQLite store, through SQLCipher.

SQLCipher encrypts every page of the database file and of its write-ahead log
(AES-256 with an HMAC per page), below SQLite's own code: FTS5 search, JSON
functions, attachments, WAL, migrations and many processes at once work on an
encrypted store exactly as on a plain one. The binding is ``sqlcipher3``
(``pip install 'chatkeep[encryption]'``), a wheel with SQLCipher built in.

Where the key comes from, first found first: ``key=`` given to the store,
``$CHATKEEP_KEY``, then the OS keyring (service ``chatkeep``, user name the
store's absolute path; ``pip install keyring``), which is read only for a
file that is encrypted. A passphrase goes through SQLCipher's key derivation
(PBKDF2-HMAC-SHA512, 256,000 rounds: about 0.3 s per open); a raw key written
``x'<64 hex digits>'`` skips it (``chatkeep encrypt --keyring`` makes one).

What is refused, before anything is written:

- an encrypted file without a key, or with one that does not open it
  (``EncryptionKeyError``, naming the store and ``$CHATKEEP_KEY``);
- a key for a plain file: the user asked for encryption, and the file is not
  (``chatkeep encrypt`` converts it).

A new file opened with a key is created encrypted.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard, cast

from ..errors import BackendUnavailable, EncryptionKeyError, StoreError
from .files import touch_private_file

__all__ = [
    "KEY_ENV",
    "KEYRING_SERVICE",
    "Conversion",
    "decrypt_store",
    "encrypt_store",
    "file_kind",
    "is_encrypted",
    "new_raw_key",
    "open_connection",
    "resolve_key",
]

KEY_ENV = "CHATKEEP_KEY"
KEYRING_SERVICE = "chatkeep"
_HEADER = b"SQLite format 3\x00"

FileKind = Literal["missing", "plain", "encrypted"]


def file_kind(path: Path) -> FileKind:
    """``plain`` (a SQLite header), ``missing`` (absent or empty), else ``encrypted`` (or not a database at all)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_HEADER))
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise StoreError(f"{path}: cannot be read ({exc.strerror})") from exc
    if not head:
        return "missing"
    return "plain" if head == _HEADER else "encrypted"


def new_raw_key() -> str:
    """A random 256-bit key in SQLCipher's raw form, ``x'<64 hex digits>'`` (no key derivation on open)."""
    return f"x'{secrets.token_hex(32)}'"


def keyring_key(file: str) -> str | None:
    """The key the OS keyring holds for ``file``, or None (no keyring installed, no entry, keyring locked)."""
    try:
        import keyring
    except ImportError:
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, os.path.abspath(file))
    except Exception:  # any backend failure means "no key from here"; the caller names the other sources
        return None


def resolve_key(file: str, key: str | None = None, *, keyring: bool = True) -> tuple[str | None, str]:
    """The key for ``file`` and where it came from: ``key``, ``$CHATKEEP_KEY``, then the keyring."""
    if key:
        return key, "the key given"
    from_env = os.environ.get(KEY_ENV, "")
    if from_env:
        return from_env, f"the key in ${KEY_ENV}"
    if keyring:
        found = keyring_key(file)
        if found:
            return found, "the key in the OS keyring"
    return None, ""


def _cipher() -> Any:
    try:
        from sqlcipher3 import dbapi2
    except ImportError as exc:
        raise BackendUnavailable(
            "encrypted stores need SQLCipher: pip install 'chatkeep[encryption]'"
        ) from exc
    return dbapi2


def _key_pragma(key: str) -> str:
    if "\x00" in key:
        raise EncryptionKeyError("an encryption key cannot contain a NUL character")
    return "'" + key.replace("'", "''") + "'"


def _keyed(file: str, key: str, *, uri: bool = False, busy_timeout: float = 60.0) -> sqlite3.Connection:
    """A SQLCipher connection to ``file`` with ``key`` applied (not yet checked)."""
    cipher = _cipher()
    db = cipher.connect(file, uri=uri, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
    db.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is our error to report, not lines on stderr
    db.execute(f"PRAGMA key = {_key_pragma(key)}")
    return cast(sqlite3.Connection, db)


def _check_key(db: sqlite3.Connection, file: str, source: str) -> None:
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except Exception as exc:
        db.close()
        if is_db_error(exc):
            raise EncryptionKeyError(
                f"{file}: {source} does not open it (a wrong key, or the file is not a chatkeep database); "
                f"nothing was changed. Set ${KEY_ENV} to the store's key"
            ) from exc
        raise


def is_db_error(exc: BaseException) -> TypeGuard[Exception]:
    """Whether ``exc`` is a database error of sqlite3 or of SQLCipher's binding (its own class tree)."""
    if isinstance(exc, sqlite3.Error):
        return True
    import sys

    cipher = sys.modules.get("sqlcipher3.dbapi2")
    return cipher is not None and isinstance(exc, cipher.Error)


def is_encrypted(db: sqlite3.Connection) -> bool:
    """Whether ``db`` is a SQLCipher connection."""
    return type(db).__module__.startswith("sqlcipher3")


def open_connection(
    file: str, *, key: str | None, read_only: bool, busy_timeout: float, plain: Any
) -> sqlite3.Connection:
    """A connection to the store ``file``: plain, or SQLCipher with a verified key.

    ``plain`` opens a plain file (the store's own ``connect``). Nothing is
    written here: an encrypted file whose key is wrong is left as it was.
    """
    if file == ":memory:":
        return cast(sqlite3.Connection, plain(file, read_only=read_only, busy_timeout=busy_timeout))
    kind = file_kind(Path(file))
    given, source = resolve_key(file, key, keyring=kind == "encrypted")
    if kind == "plain":
        if given:
            raise EncryptionKeyError(
                f"{file} is not encrypted, yet {source} asks for an encrypted store: encrypt it with "
                f"chatkeep encrypt, or unset ${KEY_ENV} to open it as it is; nothing was changed"
            )
        return cast(sqlite3.Connection, plain(file, read_only=read_only, busy_timeout=busy_timeout))
    if kind == "missing" and not given:
        return cast(sqlite3.Connection, plain(file, read_only=read_only, busy_timeout=busy_timeout))
    if not given:
        raise EncryptionKeyError(
            f"{file} is not a SQLite database; it was left untouched. If it is an encrypted chatkeep store, "
            f"set ${KEY_ENV} to its key (or keep the key in the OS keyring: chatkeep encrypt --keyring)"
        )
    if read_only:
        from urllib.parse import quote

        db = _keyed(f"file:{quote(os.path.abspath(file))}?mode=ro", given, uri=True, busy_timeout=busy_timeout)
    else:
        db = _keyed(file, given, busy_timeout=busy_timeout)
    _check_key(db, file, source)
    return db


# -- converting a store in place -----------------------------------------------


@dataclass(frozen=True)
class Conversion:
    """What ``encrypt_store`` or ``decrypt_store`` did: the file, its counts (checked equal before the swap)."""

    file: Path
    encrypted: bool
    conversations: int
    messages: int
    attachments: int


_COUNTED = ("conversations", "messages", "attachments")


def _counts(db: sqlite3.Connection, schema: str = "main") -> tuple[int, ...]:
    tables = {row[0] for row in db.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")}
    return tuple(int(db.execute(f"SELECT count(*) FROM {schema}.{t}").fetchone()[0]) if t in tables else 0
                 for t in _COUNTED)


def take_exclusive(db: sqlite3.Connection, file: Path | str, what: str) -> None:
    """Leave WAL mode, which SQLite allows only while no other connection has the file open.

    That is how a conversion or a restore knows no other process would go on
    writing to the file it replaces; it also folds the log into the file.
    """
    try:
        mode = str(db.execute("PRAGMA journal_mode = DELETE").fetchone()[0]).lower()
    except Exception as exc:
        if not is_db_error(exc):
            raise
        mode = "busy"
    if mode != "delete":
        raise StoreError(
            f"{file} is open in another process (a chat, a web server, a script): close it, then {what} again; "
            "nothing was changed"
        )


def _remove_leftovers(file: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{file}{suffix}").unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk; a folder that cannot be opened is skipped (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _convert(file: Path, source_key: str | None, source: str, target_key: str | None,
             busy_timeout: float) -> Conversion:
    """Copy ``file`` into a new file with ``target_key`` (None: plain), check it, then swap it in."""
    file = Path(file)
    db = _keyed(str(file), source_key, busy_timeout=busy_timeout) if source_key else \
        cast(sqlite3.Connection, _cipher().connect(str(file), isolation_level=None, timeout=busy_timeout))
    if source_key:
        _check_key(db, str(file), source)
    partial = file.with_name(file.name + ".converting")
    try:
        db.execute(f"PRAGMA busy_timeout = {int(min(busy_timeout, 2.0) * 1000)}")
        take_exclusive(db, file, "convert it")
        _remove_leftovers(partial)
        touch_private_file(partial)
        db.execute("ATTACH DATABASE ? AS converted KEY ?", (str(partial), target_key or ""))
        db.execute("BEGIN")  # one read transaction: the copy is one consistent state of the store
        before = _counts(db)
        version = int(db.execute("PRAGMA main.user_version").fetchone()[0])
        db.execute("SELECT sqlcipher_export('converted')")
        db.execute(f"PRAGMA converted.user_version = {version}")
        db.execute("COMMIT")
        db.execute("DETACH DATABASE converted")
        _verify(partial, target_key, before, version)
        fsync_path(partial)
        os.replace(partial, file)  # the store is the old file or the new one, never neither
        fsync_path(file.parent)
    except BaseException:
        _remove_leftovers(partial)
        raise
    finally:
        db.close()
    for suffix in ("-wal", "-shm"):  # the old file's, if any were left: they belong to no database now
        Path(f"{file}{suffix}").unlink(missing_ok=True)
    return Conversion(file, target_key is not None, *before)


def _verify(partial: Path, key: str | None, before: tuple[int, ...], version: int) -> None:
    """The new file opens with its key, passes the integrity checks and holds what the old one held."""
    db = _keyed(str(partial), key) if key else cast(sqlite3.Connection, _cipher().connect(str(partial)))
    try:
        problems = [str(r[0]) for r in db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "messages_fts" in tables:
            try:
                db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
            except Exception as exc:
                problems.append(f"search index: {exc}")
        after = _counts(db)
        if after != before:
            problems.append(f"counts differ: {dict(zip(_COUNTED, before))} before, {dict(zip(_COUNTED, after))} after")
        if int(db.execute("PRAGMA user_version").fetchone()[0]) != version:
            problems.append("the schema version was not copied")
    finally:
        db.close()
    if problems:
        raise StoreError(f"{partial}: the converted copy failed its checks ({'; '.join(problems[:3])}); "
                         "the store was left as it was")


def encrypt_store(file: str | Path, key: str, *, busy_timeout: float = 2.0) -> Conversion:
    """Encrypt a plain SQLite store in place with ``key``.

    A new encrypted file is written beside it (SQLCipher's ``sqlcipher_export``),
    checked (integrity, search index, counts, schema version), then swapped in
    with ``os.replace``; the plain file is gone only once the encrypted one is
    in its place. Refused while another process has the store open.
    """
    file = Path(file)
    if not key:
        raise EncryptionKeyError(f"{file}: no key to encrypt it with: set ${KEY_ENV} (or use --keyring)")
    kind = file_kind(file)
    if kind == "missing":
        raise StoreError(f"{file}: no store there to encrypt (a new store is created encrypted when ${KEY_ENV} is set)")
    if kind == "encrypted":
        raise StoreError(f"{file} is already encrypted (or is not a SQLite database); nothing was changed")
    return _convert(file, None, "", key, busy_timeout)


def decrypt_store(file: str | Path, key: str | None = None, *, busy_timeout: float = 2.0) -> Conversion:
    """Turn an encrypted store back into a plain SQLite file, in place, the same safe way as ``encrypt_store``."""
    file = Path(file)
    kind = file_kind(file)
    if kind != "encrypted":
        raise StoreError(f"{file} is not encrypted ({'no store there' if kind == 'missing' else 'a plain SQLite file'});"
                         " nothing was changed")
    found, source = resolve_key(str(file), key)
    if not found:
        raise EncryptionKeyError(f"{file} is encrypted: set ${KEY_ENV} to its key to decrypt it")
    return _convert(file, found, source, None, busy_timeout)


def remember_key(file: str | Path, key: str) -> None:
    """Keep ``key`` for ``file`` in the OS keyring (``pip install keyring``)."""
    try:
        import keyring
    except ImportError as exc:
        raise BackendUnavailable("keeping the key in the OS keyring needs: pip install keyring") from exc
    try:
        keyring.set_password(KEYRING_SERVICE, os.path.abspath(file), key)
    except Exception as exc:
        raise StoreError(f"the OS keyring refused the key ({exc}); nothing was changed") from exc


def forget_key(file: str | Path) -> None:
    """Remove ``file``'s key from the OS keyring, if one is there."""
    try:
        import keyring
        keyring.delete_password(KEYRING_SERVICE, os.path.abspath(file))
    except Exception:  # nothing there, or no keyring: nothing to forget
        pass
