"""After a full run with a recognizable fake API key, no file chatkeep wrote holds it,
and every file chatkeep made is 0600 and every directory 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from clitools import environment, run
from fakeopenai import FakeOpenAI, error, text

# Not OpenAI's sk- shape (a Groq-style key): chatkeep must remove the key it was given, whatever it looks like.
CANARY = "gsk_CHATKEEPCANARY0123456789abcdef"
AZURE_STYLE = "0123456789abcdef0123456789abcdef"


def test_a_full_run_writes_no_key_and_only_private_files(
    tmp_path: Path, isolated_environment: Path, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openai import AsyncOpenAI, OpenAI

    from chatkeep import AsyncChat, Chat, open_store

    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    store = open_store()  # the default location, under the test's own data dir
    chat = Chat(store.new_conversation(title="canary"), OpenAI(base_url=openai_server.base_url), model="gpt-4o")
    chat.send("hello")
    for _ in chat.stream("stream please"):
        pass
    openai_server.script(error(401, f"Incorrect API key provided: {CANARY}"))
    with pytest.raises(Exception):
        chat.send("again")

    import asyncio

    async def async_turn() -> None:
        async with AsyncOpenAI(base_url=openai_server.base_url) as client:
            await AsyncChat(store.new_conversation(), client).send("async hello")

    asyncio.run(async_turn())

    env = environment(Path(store.file), openai_server.base_url, OPENAI_API_KEY=CANARY)
    env.pop("CHATKEEP_DB")
    env["XDG_DATA_HOME"] = str(isolated_environment)
    openai_server.script(text("from the CLI"))
    assert run(env, "chat", "-m", "cli hello").code == 0
    openai_server.script(error(401, f"Incorrect API key provided: {CANARY}"))
    failed = run(env, "chat", "-m", "cli again")
    assert failed.code == 3 and CANARY not in failed.err
    store.close()

    written = [p for p in isolated_environment.rglob("*")]
    assert any(p.name == "chatkeep.db" for p in written)
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, path
        else:
            assert mode == 0o600, path
            data = path.read_bytes()
            assert CANARY.encode() not in data and b"CHATKEEPCANARY" not in data, path
    assert not [name for name in os.environ if CANARY in os.environ[name] and not name.startswith("OPENAI")]


def test_a_key_given_to_the_client_is_never_stored_whatever_its_shape(
    tmp_path: Path, openai_server: FakeOpenAI
) -> None:
    from openai import OpenAI

    from chatkeep import Chat, open_store

    store = open_store(tmp_path / "azure.db")
    conversation = store.new_conversation()
    chat = Chat(conversation, OpenAI(base_url=openai_server.base_url, api_key=AZURE_STYLE, max_retries=0))
    openai_server.script(error(401, f"Access denied due to invalid subscription key {AZURE_STYLE}."))
    with pytest.raises(Exception):
        chat.send("hello")
    [prompt] = conversation.history()
    assert prompt.status == "error" and "invalid subscription key ***" in (prompt.error or "")
    store.close()
    assert AZURE_STYLE.encode() not in (tmp_path / "azure.db").read_bytes()
