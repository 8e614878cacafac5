"""The chatkeep command line, run as a real process against the loopback OpenAI server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from chatkeep import open_store
from clitools import environment, normalize, run
from fakeopenai import FakeOpenAI, text


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


@pytest.fixture
def env(db: Path, openai_server: FakeOpenAI) -> dict[str, str]:
    return environment(db, openai_server.base_url)


def test_one_shot_prints_the_reply_and_saves_the_turn(env: dict[str, str], db: Path, openai_server: FakeOpenAI) -> None:
    openai_server.script(text("Hello from the server."))
    result = run(env, "chat", "-m", "Hi there", "--model", "gpt-4o-mini", "-s", "Be brief.", "-t", "Greeting")
    assert (result.code, result.out, result.err) == (0, "Hello from the server.\n", "")
    [record] = open_store(db).list_conversations()
    assert record.title == "Greeting"
    assert open_store(db).conversation(record.id).messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello from the server."},
    ]
    assert openai_server.requests[0].body["model"] == "gpt-4o-mini"


def test_stdin_is_the_message_and_continue_resumes(env: dict[str, str], db: Path, openai_server: FakeOpenAI) -> None:
    openai_server.script(text("first"), text("second"))
    assert run(env, "chat", "--no-stream", input="line one\nline two\n").out == "first\n"
    assert run(env, "chat", "-c", "-m", "again").out == "second\n"
    assert openai_server.requests[1].body["messages"] == [
        {"role": "user", "content": "line one\nline two"},
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "again"},
    ]
    assert openai_server.requests[1].body["model"] == "gpt-4o"  # the conversation's model


def test_no_api_key_is_one_line_and_the_message_is_kept(db: Path) -> None:
    result = run(environment(db), "chat", "-m", "are you there?")
    assert result.code == 3 and result.out == ""
    assert result.err.startswith("chatkeep: no API key: set OPENAI_API_KEY") and result.err.count("\n") == 1
    [record] = open_store(db).list_conversations()
    [message] = open_store(db).path(record.id)
    assert (message.message["content"], message.status) == ("are you there?", "error")


def test_an_unreachable_server_is_one_line_and_the_message_is_kept(db: Path) -> None:
    with FakeOpenAI() as gone:
        address = gone.base_url
    result = run(environment(db, address), "chat", "-m", "hello?")
    assert result.code == 3 and "Traceback" not in result.err
    assert result.err.startswith("chatkeep: cannot reach the model server at http://127.0.0.1:")
    [record] = open_store(db).list_conversations()
    assert [m.status for m in open_store(db).path(record.id)] == ["error"]


def test_a_server_error_is_one_line(env: dict[str, str], openai_server: FakeOpenAI) -> None:
    from fakeopenai import error

    openai_server.script(*[error(500, "the model is on fire")] * 3)
    result = run(env, "chat", "-m", "hi")
    assert result.code == 3
    assert result.err.startswith("chatkeep: the model server answered 500: the model is on fire (your message is saved")


@pytest.fixture
def filled(db: Path) -> Path:
    store = open_store(db)
    weather = store.new_conversation("weather", title="Weather in Paris")
    weather.append({"role": "user", "content": "What is the weather in Paris?"})
    weather.append({"role": "assistant", "content": "Sunny, 21 degrees."}, model="gpt-4o-2024-08-06",
                   usage={"prompt_tokens": 12, "completion_tokens": 5})
    store.new_conversation("eggs", title="Boiling eggs").append({"role": "user", "content": "How long to boil an egg?"})
    return db


def test_list_show_search_and_stats(filled: Path) -> None:
    env = environment(filled)
    assert normalize(run(env, "list").out) == "eggs\tBoiling eggs\t1\t<time>\t\nweather\tWeather in Paris\t2\t<time>\t\n"
    assert run(env, "list", "-q", "paris").out.startswith("weather\t")
    assert normalize(run(env, "show", "weather").out) == (
        "# Weather in Paris\n"
        "weather · 2 messages on this branch · updated <time>\n\n"
        "## user  (<time>, <id1>)\nWhat is the weather in Paris?\n\n"
        "## assistant · gpt-4o-2024-08-06  (<time>, <id2>)\nSunny, 21 degrees.\n\n"
    )
    found = run(env, "search", "paris", "--role", "user").out
    assert normalize(found) == "weather · Weather in Paris · user · <time> · <id1>\n  What is the weather in [Paris]?\n"
    stats = json.loads(run(env, "stats", "--json").out)
    assert stats == {"conversations": 2, "messages": 3, "usage_by_model": {
        "gpt-4o-2024-08-06": {"replies": 1, "prompt_tokens": 12, "completion_tokens": 5}},
        "attachments": 0, "attachment_bytes": 0}
    listed = json.loads(run(env, "list", "--json").out)
    assert [c["id"] for c in listed] == ["eggs", "weather"]
    shown = json.loads(run(env, "show", "weather", "--json").out)
    assert [m["message"]["role"] for m in shown["messages"]] == ["user", "assistant"]
    hits = json.loads(run(env, "search", "egg", "--json").out)
    assert [h["conversation_id"] for h in hits] == ["eggs"]


def test_rename_fork_and_rm(filled: Path) -> None:
    env = environment(filled)
    assert run(env, "rename", "weather", "Paris forecast").code == 0
    first = open_store(filled).path("weather")[0]
    forked = run(env, "fork", "weather", "--at", first.id).out.strip()
    assert open_store(filled).conversation(forked).messages == [first.message]
    assert open_store(filled).get_conversation(forked).title == "Paris forecast (fork)"
    refused = run(env, "rm", "weather")
    assert refused.code == 1 and "pass --yes" in refused.err
    assert run(env, "rm", "weather", "--yes").code == 0
    assert [c.id for c in open_store(filled).list_conversations()] == [forked, "eggs"]


def test_missing_things_are_one_line_errors(filled: Path) -> None:
    env = environment(filled)
    for args in (["show", "nope"], ["rm", "--yes", "nope"], ["fork", "nope"], ["rename", "nope", "x"]):
        result = run(env, *args)
        assert (result.code, result.err) == (1, "chatkeep: no conversation with id 'nope'\n"), args
    assert run(env, "show").code == 2  # usage error


def test_path_prints_the_store(db: Path) -> None:
    assert run(environment(db), "path").out == f"{db}\n"
    assert run(environment(db), "path", "--db", "other.db").out == "other.db\n"


def test_show_tree_marks_the_current_branch(db: Path) -> None:
    store = open_store(db)
    conv = store.new_conversation("t")
    conv.append({"role": "user", "content": "Pick a colour"})
    red = conv.append({"role": "assistant", "content": "Red"})
    conv.edit(red.id, {"role": "assistant", "content": "Blue"})  # a second answer, now the head
    out = normalize(run(environment(db), "show", "t", "--tree").out)
    assert out.endswith("* <id1> user: Pick a colour\n    <id2> assistant: Red\n  * <id3> assistant: Blue\n")


def test_commands_without_a_model_do_not_import_openai_or_rich(filled: Path) -> None:
    import subprocess

    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom chatkeep.cli.app import cli as main\n"
        f"for args in (['list'], ['show', 'weather'], ['search', 'paris'], ['stats'], ['path']):\n"
        f"    assert CliRunner().invoke(main, [*args, '--db', {str(filled)!r}]).exit_code == 0, args\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('openai', 'httpx', 'httpx2', 'rich', 'tiktoken')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"



# What a piped `chatkeep list` must not load: click, typing and the store's modules cost several times
# Python's own start (issue 17: the cold start is held to 3x `python -c "import sqlite3"`).
HEAVY_FOR_LIST = ("click", "typing", "re", "enum", "inspect", "dataclasses", "json", "pathlib", "urllib", "asyncio",
                  "platformdirs", "tomllib", "ulid", "msgspec", "openai", "rich", "chatkeep.store", "chatkeep.settings",
                  "chatkeep.messages", "chatkeep.cli.app", "chatkeep.cli.commands", "chatkeep.cli.output")


@pytest.mark.parametrize("how", ["module", "console script"])
def test_a_piped_list_imports_nothing_heavy(filled: Path, how: str) -> None:
    import subprocess

    command = [sys.executable, "-X", "importtime", "-m", "chatkeep"] if how == "module" else [
        sys.executable, "-X", "importtime", str(Path(sys.executable).parent / "chatkeep")]
    done = subprocess.run([*command, "list", "--db", str(filled)], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[0].startswith("eggs\tBoiling eggs\t1\t")
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert sorted(m for m in imported if any(m == h or m.startswith(h + ".") for h in HEAVY_FOR_LIST)) == []

def test_the_cli_reference_is_up_to_date() -> None:
    from chatkeep.cli.reference import render

    reference = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert reference.read_text() == render(), "docs/cli.md is stale: run python -m chatkeep.cli.reference > docs/cli.md"


def test_branches_and_switch(db: Path) -> None:
    store = open_store(db)
    conv = store.new_conversation("b")
    conv.append({"role": "user", "content": "Pick a colour"})
    red = conv.append({"role": "assistant", "content": "Red"})
    conv.edit(red.id, {"role": "assistant", "content": "Blue"})  # a second answer, now the head
    env = environment(db)
    assert normalize(run(env, "branches", "b").out) == "\t<id1>\t2\tassistant: Red\n*\t<id2>\t2\tassistant: Blue\n"
    assert run(env, "switch", "b", red.id).code == 0
    assert [b["current"] for b in json.loads(run(env, "branches", "b", "--json").out)] == [True, False]
