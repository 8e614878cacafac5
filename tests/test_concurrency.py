"""8 processes × 500 appends, into one conversation and into eight: nothing lost, order kept, no lock errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatkeep import open_store

WRITERS, APPENDS = 8, int(os.environ.get("CHATKEEP_CONCURRENCY_APPENDS", "500"))

WRITER = """
import sys
from chatkeep import open_store
store = open_store(sys.argv[1])
n, shared = int(sys.argv[2]), sys.argv[3] == "shared"
conversation = store.conversation("shared" if shared else f"writer-{n}")
for i in range(int(sys.argv[4])):
    conversation.append({"role": "user", "content": f"{n}:{i}"})
"""


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "concurrent.db")


@pytest.mark.parametrize("layout", ["shared", "separate"])
def test_concurrent_writers_lose_nothing(target: str, layout: str, tmp_path: Path) -> None:
    store = open_store(target)
    for cid in ["shared"] + [f"writer-{n}" for n in range(WRITERS)]:
        store.new_conversation(cid)
    errors = [tmp_path / f"writer-{n}.err" for n in range(WRITERS)]
    procs = []
    for n in range(WRITERS):
        with open(errors[n], "wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-c", WRITER, target, str(n), layout, str(APPENDS)],
                                          stderr=err))
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0] * WRITERS, [e.read_text() for e in errors]
    assert all(e.read_text() == "" for e in errors)  # no lock error, no warning, reached anyone
    ids = ["shared"] if layout == "shared" else [f"writer-{n}" for n in range(WRITERS)]
    seen = [m["content"] for cid in ids for m in store.conversation(cid).messages]  # the branches, head to root
    assert len(seen) == WRITERS * APPENDS == store.count_messages()
    for n in range(WRITERS):
        assert [t for t in seen if t.startswith(f"{n}:")] == [f"{n}:{i}" for i in range(APPENDS)]
    print(f"\nconcurrency figures: {target.split(':')[0]} {layout}: {WRITERS} processes x {APPENDS} appends, {len(seen)} present, 0 lost")
