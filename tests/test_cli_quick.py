"""The fast path of a piped ``chatkeep list`` (cli/quick.py): the click command's output, or no answer at all."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatkeep import open_store
from chatkeep.cli import quick
from chatkeep.cli.app import cli
from chatkeep.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION, add_functions
from clitools import environment, run


def through_quick(env: dict[str, str], *args: str) -> tuple[str, set[str]]:
    """``python -m chatkeep ARGS`` piped: its output, and the modules it imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "chatkeep", *args], env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return done.stdout, imported


def through_click(*args: str) -> str:
    """The click command's output, run in this process (never the fast path)."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def varied(tmp_path: Path) -> Path:
    """A store holding every kind of row list prints: pinned, archived, tagged, captured, untitled, unruly titles."""
    db = tmp_path / "varied.db"
    with open_store(db) as store:
        for number in range(22):
            store.new_conversation(f"plain-{number:02}", title=f"Plain {number}").append(
                {"role": "user", "content": f"question {number}"})
        untitled = store.new_conversation("untitled-long")
        untitled.append({"role": "system", "content": "Be brief."})
        untitled.append({"role": "user", "content": "\n\n  How   do I\tboil an egg so that the yolk stays soft and the "
                                                    "white sets firmly all the way?\nSecond line"})
        store.new_conversation("empty")  # no message: "Untitled"
        store.new_conversation("only-system").append({"role": "system", "content": "nothing from a user"})
        store.new_conversation("unruly", title="\x1b[31mred\x1b[0m\ttab\nnewline\x07bell \u009b csi").append(
            {"role": "user", "content": "x"})
        store.new_conversation("ünïcødé-東京", title="東京 " * 30)
        store.new_conversation("captured", metadata={"source": "capture", "other": [1, 2]}).append(
            {"role": "user", "content": "captured from the SDK"})
        store.new_conversation("imported", metadata={"source": "chatgpt"}).append({"role": "user", "content": "old"})
        store.new_conversation("tagged", title="Tagged").append({"role": "user", "content": "t"})
        store.add_tags("tagged", ["work", "Alpha", "zeta tag"])
        store.new_conversation("pinned", title="Pinned one").append({"role": "user", "content": "p"})
        store.set_pinned("pinned")
        store.new_conversation("pinned-tagged").append({"role": "user", "content": "pinned and tagged"})
        store.set_pinned("pinned-tagged")
        store.add_tags("pinned-tagged", "home")
        store.new_conversation("archived", title="Archived").append({"role": "user", "content": "gone"})
        store.set_archived("archived")
        store.new_conversation("id\u0085with-a-c1-control", title="")
    return db


@pytest.mark.parametrize(("args", "lines"), [
    ([], 20), (["-n", "5"], 5), (["-n5"], 5), (["--count", "3"], 3), (["--count=40"], 33), (["-n", "0"], 0),
    (["-n", "007"], 7),
])
def test_the_fast_path_prints_what_the_click_command_prints(varied: Path, args: list[str], lines: int) -> None:
    env = environment(varied)
    del env["CHATKEEP_DB"]
    out, imported = through_quick(env, "list", "--db", str(varied), *args)
    assert "click" not in imported, "the fast path did not answer"
    assert out == through_click("list", "--db", str(varied), *args)
    assert out.count("\n") == lines


def test_the_store_may_come_from_the_environment_or_a_relative_path(varied: Path) -> None:
    expected = through_click("list", "--db", str(varied))
    from_env, imported = through_quick(environment(varied), "list")
    assert "click" not in imported and from_env == expected
    done = subprocess.run([sys.executable, "-m", "chatkeep", "list", "--db=varied.db"], cwd=varied.parent,
                          env={**environment(varied), "CHATKEEP_DB": "elsewhere.db"}, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, expected)
    assert not (varied.parent / "elsewhere.db").exists()


@pytest.mark.parametrize("args", [
    ["list", "--json"], ["list", "-q", "x"], ["list", "--all"], ["list", "--tag", "a"], ["list", "--pinned"],
    ["list", "--help"], ["list", "extra"], ["list", "-n"], ["list", "-n", "-1"], ["list", "-n", "+5"],
    ["list", "-n", "5_0"], ["list", "-n", "٣"], ["list", "-n=5"], ["list", "--db"], ["list", "--db", "--json"],
    ["list", "--db", "a", "--db", "b"], ["list", "--dbx=a"], ["list", "--", "x"], ["show", "x"], ["--version"], [],
    ["list", "--db", ""], ["list", "--db=  "], ["list", "--db="],
])
def test_any_other_command_line_is_left_to_click(args: list[str]) -> None:
    assert quick.parse(args, {"CHATKEEP_DB": "x.db"}) is None


def test_the_plain_command_lines_are_read() -> None:
    assert quick.parse(["list"], {"CHATKEEP_DB": "x.db"}) == ("x.db", 20)
    assert quick.parse(["list", "--db", "y.db", "-n", "3"], {"CHATKEEP_DB": "x.db"}) == ("y.db", 3)
    assert quick.parse(["list", "--count=7", "--db=~/z.db"], {}) == ("~/z.db", 7)
    assert quick.parse(["list"], {"CHATKEEP_DB": ""}) == (quick.default_store(), 20)  # no settings file here


def test_it_finds_the_settings_file_and_the_default_store_where_the_library_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatkeep.settings import settings_path
    from chatkeep.store.files import default_database_path

    assert quick.default_store() == str(default_database_path())
    assert quick.settings_file(os.environ) == str(settings_path())
    monkeypatch.setenv("CHATKEEP_CONFIG", "~/elsewhere.toml")
    assert quick.settings_file(os.environ) == str(settings_path())
    config = tmp_path / "settings.toml"
    monkeypatch.setenv("CHATKEEP_CONFIG", str(config))
    assert quick.parse(["list"], os.environ) == (quick.default_store(), 20)
    config.write_text('store = "somewhere.db"\n')
    assert quick.parse(["list"], os.environ) is None  # the settings name the store: click's path reads them
    assert quick.parse(["list", "--db", "x.db"], os.environ) == ("x.db", 20)


def test_the_default_store_is_listed_without_click(varied: Path, isolated_environment: Path) -> None:
    env = environment(varied)
    del env["CHATKEEP_DB"]
    default = isolated_environment / "chatkeep" / "chatkeep.db"
    default.parent.mkdir(parents=True)
    varied.rename(default)
    out, imported = through_quick(env, "list")
    assert "click" not in imported and out == through_click("list", "--db", str(default))


@pytest.mark.parametrize("target", ["postgresql://u@h/d", "sqlite:///x.db", "x.JSON", ":memory:", "http://x"])
def test_stores_other_than_a_sqlite_path_are_left_to_click(target: str) -> None:
    assert quick.listing(target, 20) is None


def test_files_the_store_must_look_at_are_left_to_click(varied: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert quick.listing(str(varied), 20) is not None
    missing = tmp_path / "missing.db"
    assert quick.listing(str(missing), 20) is None and not missing.exists()  # never created here
    (tmp_path / "not-a-db.db").write_bytes(b"hello, this is not SQLite at all" * 10)
    assert quick.listing(str(tmp_path / "not-a-db.db"), 20) is None
    monkeypatch.setenv("CHATKEEP_KEY", "secret")  # the store would refuse a key for a plain file
    assert quick.listing(str(varied), 20) is None
    monkeypatch.delenv("CHATKEEP_KEY")
    with sqlite3.connect(varied) as db:
        db.execute("PRAGMA journal_mode = DELETE")  # the store switches it back to WAL: a write
    assert quick.listing(str(varied), 20) is None
    with sqlite3.connect(varied) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")  # too new: the store says so
    assert quick.listing(str(varied), 20) is None
    too_new = run(environment(varied), "list")
    assert too_new.code == 1 and "newer than this chatkeep understands" in too_new.err


def test_it_reads_the_schema_this_chatkeep_writes() -> None:
    assert quick.SCHEMA_VERSION == SCHEMA_VERSION, "a migration was added: check quick.py's query, then its version"


def test_a_store_at_an_older_version_is_migrated_by_the_click_command(tmp_path: Path) -> None:
    older = tmp_path / "older.db"
    with sqlite3.connect(older, isolation_level=None) as db:  # the schema the release before the last migration wrote
        db.execute("PRAGMA journal_mode = WAL")
        add_functions(db)
        for migration in MIGRATIONS[:-1]:
            migration(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
        db.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES"
                   " ('old', 'From before', '2025-01-02T03:04:05.000000Z', '2025-01-02T03:04:05.000000Z')")
    assert quick.listing(str(older), 20) is None
    listed = run(environment(older), "list")
    assert (listed.code, listed.out.split("\t")[:3]) == (0, ["old", "From before", "0"])
    with sqlite3.connect(older) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert quick.listing(str(older), 20) == listed.out


def test_a_broken_settings_file_does_not_stop_list_with_an_explicit_store(varied: Path, tmp_path: Path) -> None:
    # list reads settings only to find the store; with --db or $CHATKEEP_DB it reads none, on either path.
    config = tmp_path / "settings.toml"
    config.write_text('modle = "gpt-4o"\n')
    env = environment(varied, CHATKEEP_CONFIG=str(config))
    assert run(env, "list").out == through_click("list", "--db", str(varied))
    assert run(env, "list", "--json").code == 0
    assert run(env, "show", "pinned").code == 1  # a command that may write still reads the settings


def test_a_stdout_that_cannot_show_a_title_gets_what_click_writes(varied: Path) -> None:
    # click writes UTF-8 to a stdout set to ASCII; the fast path declines rather than fail or differ.
    ascii_out = subprocess.run([sys.executable, "-m", "chatkeep", "list", "-n", "40"], capture_output=True,
                               env={**environment(varied), "PYTHONIOENCODING": "ascii"}).stdout
    assert "東京".encode() in ascii_out
    assert ascii_out == through_click("list", "--db", str(varied), "-n", "40").encode()


@pytest.mark.parametrize("args", [["list"], ["list", "--json"]])
def test_a_reader_that_left_gets_the_same_one_line_on_both_paths(varied: Path, args: list[str]) -> None:
    import os

    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "chatkeep", *args], env=environment(varied), stdout=write,
                              stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "chatkeep: unexpected error, please report it: BrokenPipeError: "
                                                 "[Errno 32] Broken pipe (everything saved before it is kept)\n")
