"""Where chatkeep keeps its files, and creating them owner-only."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_database_path", "ensure_private_dir", "touch_private_file"]

#: The environment variable that names the store (a path or a URL).
ENV_VAR = "CHATKEEP_DB"


def default_database_path() -> Path:
    """The SQLite file in the platform's user data directory (``chatkeep.db``)."""
    from platformdirs import user_data_path

    return user_data_path("chatkeep", appauthor=False) / "chatkeep.db"


def ensure_private_dir(directory: Path) -> None:
    """Create a directory (and missing parents) readable by its owner only.

    Only the directories chatkeep creates are narrowed: an existing folder the
    user chose, such as the current directory, is left as it is.
    """
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # another process made it first
            continue
        os.chmod(path, 0o700)  # mkdir's mode is narrowed by the umask, never widened


def touch_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; say whether it was created."""
    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    os.chmod(path, 0o600)
    return True
