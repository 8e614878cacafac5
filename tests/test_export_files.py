"""``chatkeep export -o FILE``: the format its name implies, and a file written the way the user left it.

The export writes a temporary file beside the target and renames it over the
target. These tests pin what that must not change (an existing file's mode, a
symlink staying a symlink) and that a killed export's temporary file does not
stay behind forever.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatkeep import open_store
from chatkeep.formats import read_conversations, write_conversations
from clitools import environment, run


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    with open_store(path) as store:
        conversation = store.new_conversation("weather", title="Weather in Paris")
        conversation.append({"role": "user", "content": "What is the weather in Paris?"})
        conversation.append({"role": "assistant", "content": "Sunny, 21 degrees."})
    return path


def temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


# -- which format ------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "start"), [
    ("chat.md", "# Weather in Paris\n"), ("chat.markdown", "# Weather in Paris\n"), ("chat.MD", "# Weather in Paris\n"),
    ("chat.html", "<!DOCTYPE html>\n"), ("chat.htm", "<!DOCTYPE html>\n"),
    ("chat.jsonl", '{"messages": [{"role": "user"'), ("chat.json", '[\n  {\n    "role": "user"'),
    ("chat.txt", "# Weather in Paris\n"), ("chat", "# Weather in Paris\n"),  # unknown: the default, markdown
])
def test_export_picks_the_format_from_the_output_files_extension(db: Path, tmp_path: Path, name: str,
                                                                 start: str) -> None:
    target = tmp_path / name
    result = run(environment(db), "export", "weather", "-o", str(target))
    assert (result.code, result.out, result.err) == (0, "", f"Wrote {target}\n")
    assert target.read_text().startswith(start)


def test_an_explicit_format_wins_over_the_extension_and_stdout_stays_markdown(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "chat.md"
    assert run(environment(db), "export", "weather", "-f", "jsonl", "-o", str(target)).code == 0
    assert json.loads(target.read_text())["messages"][1]["content"] == "Sunny, 21 degrees."
    assert run(environment(db), "export", "weather").out.startswith("# Weather in Paris\n")


def test_ids_together_with_all_are_a_usage_error_naming_them(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "all.md"
    result = run(environment(db), "export", "--all", "nope", "weather", "-o", str(target))
    assert result.code == 2 and result.out == ""
    assert "--all exports every conversation: drop nope weather, or drop --all" in result.err
    assert not target.exists()
    neither = run(environment(db), "export")
    assert neither.code == 2 and "name conversations to export, or pass --all" in neither.err


# -- the file written ---------------------------------------------------------------------------

def test_an_existing_file_keeps_its_mode_and_a_new_one_is_private(db: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared.md"
    shared.write_text("old")
    shared.chmod(0o644)
    with open_store(db) as store:
        assert write_conversations(store, "weather", "markdown", shared) == 1
        assert write_conversations(store, "weather", "markdown", tmp_path / "new.md") == 1
    assert shared.read_text().startswith("# Weather in Paris\n")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "new.md").stat().st_mode) == 0o600
    assert temporary_files(tmp_path) == []


def test_a_symlink_stays_a_link_and_its_target_gets_the_export(db: Path, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    real = tmp_path / "notes" / "chat.md"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "latest.md"
    link.symlink_to(Path("notes") / "chat.md")  # relative, as `ln -s` makes it
    chained = tmp_path / "again.md"
    chained.symlink_to(link.name)
    dangling = tmp_path / "dangling.md"
    dangling.symlink_to(Path("notes") / "later.md")
    for through in (link, chained, dangling):
        result = run(environment(db), "export", "weather", "-o", str(through))
        assert result.code == 0, result.err
        assert through.is_symlink()
    assert os.readlink(link) == str(Path("notes") / "chat.md") and os.readlink(chained) == "latest.md"
    assert real.read_text().startswith("# Weather in Paris\n") and stat.S_IMODE(real.stat().st_mode) == 0o640
    assert (tmp_path / "notes" / "later.md").read_text() == real.read_text()
    assert temporary_files(tmp_path) == temporary_files(tmp_path / "notes") == []


def test_a_pipe_or_a_loop_of_links_is_refused_untouched(db: Path, tmp_path: Path) -> None:
    # A pipe stands for every file that is not a regular one: a test must never aim at /dev/null as root.
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    to_pipe = tmp_path / "to-pipe.md"
    to_pipe.symlink_to(pipe)
    loop = tmp_path / "loop.md"
    loop.symlink_to("loop2.md")
    (tmp_path / "loop2.md").symlink_to("loop.md")
    for target, reason in ((to_pipe, "not a regular file"), (loop, "the symlink never reaches a file")):
        result = run(environment(db), "export", "weather", "-o", str(target))
        assert (result.code, result.out) == (1, ""), result.err
        assert result.err.startswith(f"chatkeep: {target}: cannot write: {reason}"), result.err
    assert stat.S_ISFIFO(pipe.lstat().st_mode) and to_pipe.is_symlink() and loop.is_symlink()
    assert temporary_files(tmp_path) == []


def test_the_next_export_removes_temporary_files_that_dead_exports_left(db: Path, tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getpid()
    stale = [f".chat.md.chatkeep-{dead}-k3x9_q2a.tmp", f".chat.md.chatkeep-{dead}-zz.tmp"]
    kept = [f".chat.md.chatkeep-{alive}-busy.tmp",  # an export still running
            f".other.md.chatkeep-{dead}-k3x9_q2a.tmp",  # another target's: its own export cleans it
            ".chat.md.k3x9_q2a.tmp", "chat.md.chatkeep-1-x.tmp"]  # not named by chatkeep's exporter
    for name in stale + kept:
        (tmp_path / name).write_text("partial")
    assert run(environment(db), "export", "weather", "-o", str(tmp_path / "chat.md")).code == 0
    assert temporary_files(tmp_path) == sorted(kept)


def test_a_killed_export_leaves_a_temporary_file_the_next_export_removes(tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    with big.open("w") as out:  # about 8 MB of Markdown: long enough to be caught writing it
        for i in range(2000):
            out.write(json.dumps({"messages": [{"role": "user", "content": f"q{i} " + "x" * 2000},
                                               {"role": "assistant", "content": f"a{i} " + "y" * 2000}]}) + "\n")
    db = tmp_path / "big.db"
    with open_store(db) as store:
        store.import_conversations(read_conversations(big, "jsonl"))
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "all.md"
    target.write_text("the previous export")
    args = [sys.executable, "-m", "chatkeep", "export", "--all", "-o", str(target)]
    with subprocess.Popen(args, env=environment(db), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as export:
        deadline = time.monotonic() + 60
        while not (left := temporary_files(folder)):
            assert export.poll() is None, f"the export ended before it was caught writing: {export.stderr!r}"
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        export.send_signal(signal.SIGKILL)
        export.wait()
    assert export.returncode == -signal.SIGKILL
    assert re.fullmatch(rf"\.all\.md\.chatkeep-{export.pid}-\w+\.tmp", left[0])
    assert temporary_files(folder) == left and target.read_text() == "the previous export"
    again = run(environment(db), "export", "--all", "-o", str(target))
    assert again.code == 0, again.err
    assert temporary_files(folder) == []
    assert target.read_text().count("\n---\n") == 1999
