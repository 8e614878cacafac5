"""Shared fixtures: every test gets its own data dir and no OpenAI settings from outside."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point chatkeep's data and config dirs into tmp_path and drop OPENAI_* and CHATKEEP_* settings."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "CHATKEEP_")):
            monkeypatch.delenv(name)
    data_home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))  # no settings file from outside
    yield data_home


@pytest.fixture
def samples() -> Path:
    """The shared sample conversation files; tests using them skip where the folder is absent (fail on CI)."""
    if not SAMPLES.is_dir():
        reason = f"sample files not found at {SAMPLES} (clone with ../shared beside the project)"
        if os.environ.get("CI"):
            pytest.fail(f"CI needs them: {reason}")
        pytest.skip(reason)
    return SAMPLES


# The loopback OpenAI-compatible server's fixtures, for every test module.
from fakeopenai import openai_client, openai_server  # noqa: E402,F401
from pg import postgres_url, pytest_terminal_summary  # noqa: E402,F401  PostgreSQL per-test schemas


def _loopback_only(event: str, args: tuple[object, ...]) -> None:
    """Fail any test that opens a network connection beyond this machine's loopback."""
    if event != "socket.connect":
        return
    address = args[1]
    if isinstance(address, tuple) and address and not str(address[0]).startswith(("127.", "::1", "localhost")):
        raise ConnectionRefusedError(f"tests may only connect to loopback, not {address!r}")


import sys  # noqa: E402

sys.addaudithook(_loopback_only)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A new store on SQLite (``chat.db`` in the test's folder) and on PostgreSQL (the test's own schema).

    Modules whose tests run on both backends the same way use this one; a module defines its own
    ``store`` when it needs another backend set or file.
    """
    from chatkeep import open_store

    target = request.getfixturevalue("postgres_url") if request.param == "postgres" else tmp_path / "chat.db"
    opened = open_store(target)
    yield opened
    opened.close()
