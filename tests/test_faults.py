"""Every fault in every mode: the caller gets a clear error, the store keeps what it promised,
and once the fault is gone the conversation goes on."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chatdriver import MODES, Driver
from chatkeep import PendingToolCalls, open_store
from fakeopenai import FakeOpenAI, text, tool_calls
from faultmatrix import FAULTS, Fault, render


class _DeadServer:
    """A base URL whose port was open a moment ago and now refuses connections."""

    def __init__(self) -> None:
        with FakeOpenAI() as gone:
            self.base_url = gone.base_url

    def client(self, **kw: object) -> object:
        import openai

        return openai.OpenAI(base_url=self.base_url, api_key="sk-test", **kw)  # type: ignore[arg-type]

    def async_client(self, **kw: object) -> object:
        import openai

        return openai.AsyncOpenAI(base_url=self.base_url, api_key="sk-test", **kw)  # type: ignore[arg-type]


@contextmanager
def tiny_disk(folder: Path) -> Iterator[Path]:
    """A 4 MB tmpfs at ``folder``: a real file system that runs out of space (needs root, as CI runs)."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs to fill: {mounted.stderr.strip()}"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Fill the file system under ``folder`` to the last byte; the returned file frees it again."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 1):
            try:
                while os.write(fd, b"\0" * size) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


@contextmanager
def store_fault(kind: str, file: Path) -> Iterator[dict[str, object]]:
    """Inject a store fault around a turn; yields the options to open the store with while it lasts."""
    if kind == "locked":
        blocker = sqlite3.connect(file, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process's long write
        try:
            yield {"busy_timeout": 0.2}
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    elif kind == "full":
        filler = fill(file.parent)
        try:
            yield {}
        finally:
            filler.unlink()
    else:
        mode = file.stat().st_mode
        file.chmod(stat.S_IMODE(mode) & ~0o222)
        try:
            yield {}
        finally:
            file.chmod(stat.S_IMODE(mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(fault: Fault, mode: str, openai_server: FakeOpenAI, tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk") if fault.store_fault == "full" else _no_disk(tmp_path) as folder:
        _fault_then_recovery(fault, mode, openai_server, folder / "faults.db")


@contextmanager
def _no_disk(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def _fault_then_recovery(fault: Fault, mode: str, openai_server: FakeOpenAI, file: Path) -> None:
    server = _DeadServer() if fault.refused_port else openai_server
    openai_server.script(*fault.replies)
    conversation_id = open_store(file).new_conversation().id
    expected = fault.outcome(mode)
    with store_fault(fault.store_fault, file) if fault.store_fault else _nothing() as options:
        store = open_store(file, **options)
        conversation = store.conversation(conversation_id)
        chat = Driver(mode, server, conversation, client_options=dict(fault.client_options))  # type: ignore[arg-type]
        if expected.raised == "reply":
            assert chat.turn(fault.prompt).reply is not None
        else:
            with pytest.raises(Exception) as caught:
                chat.turn(fault.prompt)
            assert type(caught.value).__name__ == expected.raised
            if fault.store_fault:  # a sentence that names the file and the trouble, before any call
                said = {"locked": "write lock", "full": "disk is full", "read-only": "read-only"}[fault.store_fault]
                assert str(file) in str(caught.value) and said in str(caught.value), caught.value
                assert openai_server.requests == []
    store = open_store(file)  # the fault is gone
    conversation = store.conversation(conversation_id)
    branch = conversation.history()
    assert tuple(f"{m.role}:{m.status}" for m in branch) == expected.stored
    assert store.check_integrity() == []
    if branch:
        assert branch[0].message == {"role": "user", "content": fault.prompt}  # the user's message is never lost
    if branch and branch[0].status == "error":
        assert branch[0].error and branch[0].error.split(":")[0] in (expected.raised, "ResponseError")
    # Usable afterwards: the next turn (or /retry of an unanswered one) is answered and stored whole.
    openai_server.script(text("Back to normal."))
    after = Driver(mode, openai_server, conversation)
    retry = bool(branch) and branch[-1].status == "error"
    outcome = after.turn(retry=True) if retry else after.turn("and now?")
    assert outcome.reply is not None and outcome.reply.status == "complete" and str(outcome.reply) == "Back to normal."


@contextmanager
def _nothing() -> Iterator[dict[str, object]]:
    yield {}


@pytest.mark.parametrize("mode", MODES)
def test_no_tool_call_is_left_without_its_result(mode: str, openai_server: FakeOpenAI, tmp_path: Path) -> None:
    conversation = open_store(tmp_path / "tools.db").new_conversation()
    chat = Driver(mode, openai_server, conversation)
    openai_server.script(tool_calls([{"id": "call_1", "name": "f", "arguments": "{}"}]), text("done"))
    chat.turn("use the tool")
    with pytest.raises(PendingToolCalls):
        chat.turn("and now?")
    assert len(openai_server.requests) == 1  # refused before any request
    chat.add_tool_result("call_1", "42")
    assert str(chat.turn().reply) == "done"


def test_the_reliability_document_shows_this_matrix() -> None:
    document = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    assert render() in document, "docs/reliability.md is stale: paste the output of python tests/faultmatrix.py"
