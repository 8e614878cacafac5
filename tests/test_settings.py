"""The settings file: where it is, what it may hold, and its place below flags and environment variables."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from chatkeep import SettingsError, open_store
from chatkeep.settings import KEYS, load_settings, parse_duration, set_value, settings_path, unset_value
from clitools import environment, run
from fakeopenai import FakeOpenAI, text


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "conf" / "settings.toml"


def test_the_file_is_in_the_user_config_dir_unless_chatkeep_config_names_another(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_path() == tmp_path / "xdg-config" / "chatkeep" / "settings.toml"
    assert run(environment(tmp_path / "x.db"), "config", "path").out == f"{settings_path()}\n"
    monkeypatch.setenv("CHATKEEP_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert settings_path() == tmp_path / "elsewhere.toml"
    assert load_settings().values == {}  # no file yet: no settings, and no error


def test_set_writes_checked_values_owner_only_and_keeps_comments(config: Path) -> None:
    assert set_value("model", " gpt-4.1 ", path=config) == "gpt-4.1"
    assert set_value("auto_title", "yes", path=config) is True
    assert set_value("retention", "90d", path=config) == "90d"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    config.write_text(config.read_text() + "# my own note\ncontext = \"trim\"  # for long chats\n")
    set_value("model", "gpt-4o-mini", path=config)
    written = config.read_text()
    assert "# my own note" in written and '"trim"  # for long chats' in written
    assert load_settings(config).values == {"model": "gpt-4o-mini", "auto_title": True, "retention": "90d",
                                            "context": "trim"}
    assert unset_value("retention", path=config) is True and unset_value("retention", path=config) is False
    assert "retention" not in load_settings(config).values


@pytest.mark.parametrize("key", ["api_key", "openai_api_key", "token", "OPENAI_SECRET", "password"])
def test_api_keys_are_refused_on_the_command_line_and_in_the_file(key: str, config: Path) -> None:
    with pytest.raises(SettingsError, match="never kept in settings: set OPENAI_API_KEY"):
        set_value(key, "sk-abc123456789", path=config)
    assert not config.exists()
    config.parent.mkdir(parents=True)
    config.write_text(f'model = "gpt-4o"\n\n{key} = "sk-abc123456789"\n')
    with pytest.raises(SettingsError, match=f"^{config}:3: {key}: API keys"):
        load_settings(config)
    config.write_text(f'[openai]\n{key} = "sk-abc123456789"\n')
    with pytest.raises(SettingsError, match=f"^{config}:2: openai.{key}: API keys"):
        load_settings(config)


@pytest.mark.parametrize(("content", "message"), [
    ('model = "gpt-4o"\nmodle = "x"\n', ":2: modle: unknown setting (did you mean model? known: model, base_url,"),
    ("auto_title = \"yes\"\n", ":1: auto_title: expected true or false, got 'yes'"),
    ("context = \"everything\"\n", ":1: context: expected 'all', 'trim' or 'summarize', got 'everything'"),
    ("retention = \"3 months\"\n", ":1: retention: expected a span such as 12h, 90d, 6w or 1y, got '3 months'"),
    ("model = 4\n", ":1: model: expected text, got int 4"),
    ('base_url = "localhost:8080"\n', ":1: base_url: expected an http:// or https:// URL"),
    ('base_url = "https://user:sk-1234567@example.com/v1"\n', ":1: base_url: a URL with credentials"),
    ('model = "gpt-4o"\n\nmodel2 = [1,\n', ":4: not valid TOML"),
])
def test_a_bad_file_is_named_with_its_line_and_key(content: str, message: str, config: Path) -> None:
    config.parent.mkdir(parents=True)
    config.write_text(content)
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    assert str(raised.value).startswith(f"{config}{message}")


def test_spans_of_time() -> None:
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration(" 12H ") == timedelta(hours=12)
    assert parse_duration("6w") == timedelta(weeks=6) and parse_duration("1y") == timedelta(days=365)
    for bad in ("0d", "3m", "d", "1.5d", "90", ""):
        with pytest.raises(ValueError, match="expected a span"):
            parse_duration(bad)


def test_cli_config_set_get_list_and_unset(tmp_path: Path, config: Path) -> None:
    env = environment(tmp_path / "x.db", CHATKEEP_CONFIG=str(config), CHATKEEP_MODEL="from-env")
    del env["CHATKEEP_DB"]
    assert run(env, "config", "set", "title_model", "gpt-4.1-nano").code == 0
    assert run(env, "config", "set", "store", str(tmp_path / "configured.db")).code == 0
    assert run(env, "config", "set", "model", "from-file").code == 0
    assert run(env, "config", "get", "title_model").out == "gpt-4.1-nano\n"
    assert run(env, "config", "get", "model").out == "from-env\n"  # the environment is above the file
    assert run(env, "config", "get", "retention").out == "\n"
    listed = {row["key"]: (row["value"], row["source"]) for row in json.loads(run(env, "config", "list", "--json").out)}
    assert list(listed) == list(KEYS)
    assert {key: listed[key] for key in ("model", "base_url", "context", "auto_title", "title_model", "retention",
                                         "store")} == {
        "model": ("from-env", "env CHATKEEP_MODEL"), "base_url": (None, "default"), "context": ("all", "default"),
        "auto_title": (False, "default"), "title_model": ("gpt-4.1-nano", str(config)),
        "retention": (None, "default"), "store": (str(tmp_path / "configured.db"), str(config))}
    assert "auto_title\tfalse\tdefault" in run(env, "config", "list").out.splitlines()
    flagged = run(env, "config", "list", "--db", "postgresql://me:secret@db/chat").out.splitlines()[-1]
    assert flagged == "store\tpostgresql://me:***@db/chat\tflag --db"
    assert run({**env, "CHATKEEP_DB": "env.db"}, "config", "list").out.splitlines()[-1] == "store\tenv.db\tenv CHATKEEP_DB"
    assert run(env, "config", "unset", "title_model").code == 0
    assert run(env, "config", "get", "title_model").out == "gpt-4o-mini\n"
    unknown = run(env, "config", "set", "colour", "blue")
    assert (unknown.code, unknown.err) == (1, f"chatkeep: colour: unknown setting (known: {', '.join(KEYS)})\n")
    secret = run(env, "config", "set", "api_key", "sk-proj-abcdefghijklmnop")
    assert secret.code == 1 and "never kept in settings" in secret.err and "abcdefghijklmnop" not in config.read_text()


def test_the_store_comes_from_the_flag_then_the_env_then_the_file_then_the_default(tmp_path: Path,
                                                                                   config: Path) -> None:
    env = environment(tmp_path / "env.db", CHATKEEP_CONFIG=str(config))
    without_db = {k: v for k, v in env.items() if k != "CHATKEEP_DB"}
    assert run(without_db, "path").out == f"{tmp_path / 'xdg-data' / 'chatkeep' / 'chatkeep.db'}\n"
    set_value("store", str(tmp_path / "file.db"), path=config)
    assert run(without_db, "path").out == f"{tmp_path / 'file.db'}\n"
    assert run(env, "path").out == f"{tmp_path / 'env.db'}\n"
    assert run(env, "path", "--db", str(tmp_path / "flag.db")).out == f"{tmp_path / 'flag.db'}\n"
    with open_store(tmp_path / "file.db") as store:
        store.new_conversation("in-the-configured-store")
    assert run(without_db, "list").out.startswith("in-the-configured-store\t")


def test_chat_takes_its_defaults_from_the_settings_below_flags_and_env(openai_server: FakeOpenAI, tmp_path: Path,
                                                                       config: Path) -> None:
    env = environment(tmp_path / "chat.db", CHATKEEP_CONFIG=str(config), OPENAI_API_KEY="sk-test")
    set_value("base_url", openai_server.base_url, path=config)  # no OPENAI_BASE_URL: the file's server answers
    set_value("model", "model-from-file", path=config)
    openai_server.script(text("one"), text("two"), text("three"))
    assert run(env, "chat", "-m", "hi").out == "one\n"
    assert run({**env, "CHATKEEP_MODEL": "model-from-env"}, "chat", "-m", "hi").out == "two\n"
    assert run({**env, "CHATKEEP_MODEL": "model-from-env"}, "chat", "-m", "hi", "--model", "model-from-flag").code == 0
    assert [r.body["model"] for r in openai_server.requests] == ["model-from-file", "model-from-env", "model-from-flag"]
    # $OPENAI_BASE_URL is above the file: a file naming a dead server is not used.
    set_value("base_url", "http://127.0.0.1:9/v1", path=config)
    openai_server.script(text("four"))
    assert run({**env, "OPENAI_BASE_URL": openai_server.base_url}, "chat", "-m", "hi").out == "four\n"


def test_the_context_setting_is_the_chat_default(openai_server: FakeOpenAI, tmp_path: Path, config: Path) -> None:
    env = environment(tmp_path / "chat.db", openai_server.base_url, CHATKEEP_CONFIG=str(config))
    set_value("context", "trim", path=config)
    # A window too small for the whole conversation: trim sends only what fits, all would refuse.
    openai_server.script(text("first answer " * 100), text("second"))
    assert run(env, "chat", "-m", "first question " * 100, "--context-window", "5000").code == 0
    assert run(env, "chat", "-c", "-m", "next", "--context-window", "300").out == "second\n"
    sent = openai_server.requests[-1].body["messages"]
    assert len(sent) < 3 and sent[-1] == {"role": "user", "content": "next"}
    refused = run(env, "chat", "-c", "-m", "again", "--context-window", "300", "--context", "all")
    assert refused.code != 0 and len(openai_server.requests) == 2


def test_a_broken_file_stops_commands_with_one_line_and_config_can_repair_it(tmp_path: Path, config: Path) -> None:
    config.parent.mkdir(parents=True)
    config.write_text('modle = "gpt-4o"\n')
    env = environment(tmp_path / "x.db", CHATKEEP_CONFIG=str(config))
    del env["CHATKEEP_DB"]
    broken = run(env, "list")
    assert (broken.code, broken.err) == (1, f"chatkeep: {config}:1: modle: unknown setting (did you mean model? "
                                            f"known: {', '.join(KEYS)})\n")
    assert run(env, "config", "unset", "modle").code == 0
    assert run(env, "list").code == 0


def test_reading_settings_loads_no_heavy_module(config: Path) -> None:
    config.parent.mkdir(parents=True)
    config.write_text('model = "gpt-4o"\nauto_title = true\n')
    code = ("import sys; from chatkeep.settings import load_settings; load_settings(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('openai', 'rich', 'tomlkit', 'httpx', 'psycopg')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "CHATKEEP_CONFIG": str(config)})
    assert out.stdout.strip() == "[]"
