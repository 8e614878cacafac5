"""Token limits on any model: the loopback server plays an open model whose tokenizer is not tiktoken's.

Its tokens are two characters each, plus a few per message, and it refuses a
request longer than its window exactly as llama.cpp, vLLM or OpenAI do
(``SimulatedModel`` in tests/fakeopenai.py). chatkeep counts with o200k_base,
which undercounts this model by about half, and must still never get stuck.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatdriver import MODES, Driver
from chatkeep import Chat, ContextBudgetError, ResponsesChat, Summarize, TokenCounter, TrimToBudget, open_store
from chatkeep.store import SQLiteStore
from chatkeep.store.calibrations import Calibration, margin, observe
from clitools import environment, run
from fakeopenai import FakeOpenAI, SimulatedModel, echo, text

MODEL = "llama-3.2-1b-instruct"  # not OpenAI's: counted with o200k_base, then calibrated


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return open_store(tmp_path / "calibrated.db")


def words(n: int, seed: int) -> str:
    return " ".join(f"word{(seed * 31 + i) % 97}" for i in range(n))


@pytest.mark.parametrize("style", ["llamacpp", "vllm", "openai"])
@pytest.mark.parametrize("policy", ["trim", "summarize"])
def test_a_hundred_turns_on_a_small_window_never_stick(style: str, policy: str, store: SQLiteStore) -> None:
    model = SimulatedModel(window=2048, style=style)
    with FakeOpenAI(model=model, default=echo()) as server:
        context = TrimToBudget() if policy == "trim" else Summarize(max_summary_tokens=200)
        chat = Chat(store.new_conversation(), server.client(max_retries=0), model=MODEL, context=context,
                    max_tokens=150)
        for turn in range(100):
            reply = chat.send(f"turn {turn}: {words(60, turn)}")
            assert reply.status == "complete"
        # At most one request was refused and retried; every turn was answered.
        assert model.overflows <= 1, model.overflows
        calibration = store.calibration(chat.server, MODEL)
        assert calibration.samples >= 99 and calibration.worst > 1.5  # the model counts about twice as many
        if style != "openai":  # those servers state their window, so chatkeep knows it without being told
            assert chat._window(MODEL) == 2048


def test_a_refused_request_is_planned_again_once_and_says_so(store: SQLiteStore) -> None:
    model = SimulatedModel(window=1024, style="llamacpp")
    with FakeOpenAI(model=model, default=echo()) as server:
        conversation = store.new_conversation()
        for n in range(30):
            conversation.append({"role": "user" if n % 2 == 0 else "assistant", "content": words(40, n)})
        chat = Chat(conversation, server.client(max_retries=0), model=MODEL, context=TrimToBudget(),
                    context_window=4096)  # wrong: the server runs a 1,024-token window
        reply = chat.send("What now?")
        assert reply.status == "complete" and model.overflows == 1
        overflow = reply.message.metadata["context"]["overflow"]
        assert overflow["limit"] == 1024 and overflow["retried"] is True and overflow["prompt"] > 1024
        assert store.calibration(chat.server, MODEL).window == 1024


def test_keep_all_refuses_with_the_servers_limit_and_keeps_the_prompt(store: SQLiteStore) -> None:
    model = SimulatedModel(window=512, style="vllm")
    with FakeOpenAI(model=model) as server:
        conversation = store.new_conversation()
        conversation.append({"role": "user", "content": words(400, 1)})
        conversation.append({"role": "assistant", "content": words(100, 2)})
        chat = Chat(conversation, server.client(max_retries=0), model=MODEL, context_window=8192)
        with pytest.raises(ContextBudgetError, match="context window for .* is 512 tokens"):
            chat.send("And?")
        prompt = conversation.head
        assert prompt is not None and prompt.message["content"] == "And?" and prompt.status == "error"


@pytest.mark.parametrize("mode", MODES)
def test_overflow_handling_is_the_same_in_every_mode(mode: str, store: SQLiteStore) -> None:
    model = SimulatedModel(window=700, style="openai")
    with FakeOpenAI(model=model, default=text("Fine.")) as server:
        conversation = store.new_conversation()
        for n in range(20):
            conversation.append({"role": "user" if n % 2 == 0 else "assistant", "content": words(40, n)})
        chat = Driver(mode, server, conversation, model=MODEL, context=TrimToBudget(), context_window=8192)
        outcome = chat.turn("Go on")
        assert outcome.reply is not None and outcome.reply.status == "complete" and model.overflows == 1


def test_responses_chat_sends_fewer_items_after_an_overflow(store: SQLiteStore) -> None:
    model = SimulatedModel(window=600, style="llamacpp")
    with FakeOpenAI(model=model, default=text("Fine.")) as server:
        conversation = store.new_conversation()
        for n in range(20):
            conversation.append({"role": "user" if n % 2 == 0 else "assistant", "content": words(40, n)},
                                kind="response_item")
        # The simulated model reads chat requests; a Responses request of the same items fails the same way.
        server.script(_too_long_for_responses(model, 20))
        reply = ResponsesChat(conversation, server.client(max_retries=0), model=MODEL).send("Go on")
        assert reply.status == "complete"
        second = server.requests[-1].body["input"]
        assert len(second) < 21 and reply.items[-1].metadata["overflow"]["retried"] is True


def _too_long_for_responses(model: SimulatedModel, items: int) -> Any:
    from fakeopenai import error

    return error(400, f"This model's maximum context length is {model.window} tokens. However, your messages "
                      f"resulted in {model.window * 2} tokens. Please reduce the length of the messages.",
                 code="context_length_exceeded")


def test_the_window_is_read_from_the_server_when_the_model_is_unknown(store: SQLiteStore) -> None:
    for style in ("llamacpp", "vllm"):
        with FakeOpenAI(model=SimulatedModel(window=3000, style=style)) as server:
            chat = Chat(store.new_conversation(), server.client(max_retries=0), model="my-own-model",
                        context=TrimToBudget())
            chat.send("hi")
            assert chat._window("my-own-model") == 3000


def test_the_servers_own_tokenizer_can_count(store: SQLiteStore) -> None:
    model = SimulatedModel(window=4096)
    with FakeOpenAI(model=model, default=text("ok")) as server:
        chat = Chat(store.new_conversation(), server.client(max_retries=0), model=MODEL, encoding="server",
                    context=TrimToBudget())
        chat.send("count me")
        assert any(r.path.endswith("/tokenize") for r in server.requests)
        assert chat._token_counter().text("abcdef") == model.text_tokens("abcdef") == 3


def test_a_hugging_face_tokenizer_json_counts_exactly(tmp_path: Path, store: SQLiteStore) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    tokenizer = tokenizers.Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(["the cat sat on the mat", "a dog ran"],
                                  trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    counter = TokenCounter(str(path))
    assert counter.text("the cat sat") == 3 and counter.text("the cat, sat!") == 5
    assert counter.name.startswith("hf:")
    with FakeOpenAI(default=text("ok")) as server:
        conversation = store.new_conversation()
        Chat(conversation, server.client(max_retries=0), model=MODEL, encoding=str(path)).send("the cat sat")
        prompt = conversation.history()[0]
        assert prompt.token_counts == {counter.name: counter.message({"role": "user", "content": "the cat sat"})}
    with pytest.raises(Exception, match="cannot be read as a Hugging Face tokenizer"):
        (tmp_path / "broken.json").write_text("{}")
        TokenCounter(str(tmp_path / "broken.json"))


def test_openai_models_need_no_calibration(store: SQLiteStore) -> None:
    with FakeOpenAI(default=text("ok")) as server:
        chat = Chat(store.new_conversation(), server.client(max_retries=0), model="gpt-4o", context=TrimToBudget())
        chat.send("hi")
        assert chat._exact("gpt-4o") and not chat._exact(MODEL)
        assert store.calibration(chat.server, "gpt-4o").samples == 0  # nothing recorded: counts are exact


def test_the_margin_narrows_as_evidence_grows() -> None:
    calibration = Calibration("http://x", "m")
    assert calibration.factor == 1.0
    for _ in range(100):
        calibration = observe(calibration, 100, 150)
    assert calibration.samples == 100 and calibration.worst == pytest.approx(1.5)
    assert margin(1) == pytest.approx(0.10) and margin(100) == pytest.approx(0.01)
    assert calibration.factor == pytest.approx(1.5 * 1.01)


def test_the_calibration_outlives_the_process_and_shows_in_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    with FakeOpenAI(model=SimulatedModel(window=4096), default=text("ok")) as server:
        env = environment(db, server.base_url)
        for n in range(3):
            assert run(env, "chat", "--model", MODEL, "--context", "trim", "-m", f"hello {n}").code == 0
    store = open_store(db)
    server_id = f"http://127.0.0.1:{server.base_url.split(':')[2].split('/')[0]}/v1"
    assert store.calibration(server_id, MODEL).samples == 3
    assert json.loads(run(environment(db), "stats", "--json").out)["messages"] == 6
