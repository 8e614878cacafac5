"""Crash tests: a writer killed with SIGKILL at seeded random moments loses nothing it was told was saved.

The trial count is CHATKEEP_CRASH_TRIALS (default 8 a backend, so the suite
stays quick); the published figures use 50 or more.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatkeep import ConversationNotFound, open_store
from crash_writer import digest
from fakeopenai import FakeOpenAI, text

TRIALS = int(os.environ.get("CHATKEEP_CRASH_TRIALS", "8"))
WRITER = Path(__file__).with_name("crash_writer.py")


def run_and_kill(target: str, log: Path, seed: int, base_url: str | None) -> None:
    """Start the writer, let it work for a seeded random while, then SIGKILL it."""
    env = {**os.environ, "PYTHONPATH": str(WRITER.parent)}
    args = [sys.executable, str(WRITER), target, str(log), str(seed)] + ([base_url] if base_url else [])
    errors = log.with_suffix(".stderr")
    with open(errors, "wb") as stderr, subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=stderr) as writer:
        deadline = time.monotonic() + 30
        while not (log.exists() and log.read_bytes().startswith(b"ready")):
            assert writer.poll() is None, errors.read_text()
            assert time.monotonic() < deadline, "the writer never started"
            time.sleep(0.01)
        time.sleep(random.Random(seed).uniform(0.02, 0.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL, errors.read_text()


def _forget(url: str) -> None:
    """Each PostgreSQL trial starts afresh in the test's schema."""
    store = open_store(url)
    try:
        store.delete_conversation("crash")
    except ConversationNotFound:
        pass
    finally:
        store.close()


def promised(log: Path) -> list[tuple[str, str]]:
    """The writes the writer logged as returned.

    A line cut short is not a promise: Linux may stop a write() part-way when
    SIGKILL arrives, so only newline-terminated lines count.
    """
    lines = log.read_text().splitlines(keepends=True)[1:]
    return [tuple(line.rstrip("\n").split("\t")) for line in lines if line.endswith("\n")]  # type: ignore[misc]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("with_turns", [False, True], ids=["appends", "appends-and-turns"])
def test_a_database_keeps_every_returned_write_through_sigkill(
    tmp_path: Path, with_turns: bool, backend: str, request: pytest.FixtureRequest
) -> None:
    checked = 0
    postgres = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with FakeOpenAI() as server:
        server.default = text("a reply that streams in several chunks", chunk_size=6)
        for trial in range(TRIALS):
            db, log = postgres or str(tmp_path / f"crash-{trial}.db"), tmp_path / f"crash-{trial}.log"
            if postgres and trial:
                _forget(postgres)
            run_and_kill(db, log, 1000 + trial, server.base_url if with_turns else None)
            store = open_store(db)
            assert store.check_integrity() == []
            for message_id, expected in promised(log):
                assert digest(store.get_message(message_id).message) == expected
                checked += 1
            store.close()
    assert checked > TRIALS  # the writers really wrote before they were killed
    print(f"\ncrash figures: {backend} {'with turns' if with_turns else 'appends'}: {TRIALS} kills, "
          f"{checked} returned writes checked, 0 lost")


def test_the_json_file_is_always_a_whole_old_or_new_file(tmp_path: Path) -> None:
    checked = 0
    for trial in range(TRIALS):
        file, log = tmp_path / f"history-{trial}.json", tmp_path / f"history-{trial}.log"
        run_and_kill(str(file), log, 2000 + trial, None)
        messages = json.loads(file.read_text())  # parses: never half a file
        kept = {digest(m) for m in messages}
        for _, expected in promised(log):
            assert expected in kept
            checked += 1
    print(f"\ncrash figures: json file: {TRIALS} kills, {checked} returned writes checked, 0 lost")
