"""Every API fault in every mode: the caller gets a clear error and the store keeps what it promised."""

from __future__ import annotations

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


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(fault: Fault, mode: str, openai_server: FakeOpenAI, tmp_path: Path) -> None:
    server = _DeadServer() if fault.refused_port else openai_server
    openai_server.script(*fault.replies)
    conversation = open_store(tmp_path / "faults.db").new_conversation()
    chat = Driver(mode, server, conversation, client_options=dict(fault.client_options))  # type: ignore[arg-type]
    expected = fault.outcome(mode)
    if expected.raised == "reply":
        assert chat.turn("hello").reply is not None
    else:
        with pytest.raises(Exception) as caught:
            chat.turn("hello")
        assert type(caught.value).__name__ == expected.raised
    branch = conversation.history()
    assert tuple(f"{m.role}:{m.status}" for m in branch) == expected.stored
    assert branch[0].message == {"role": "user", "content": "hello"}  # the user's message is never lost
    if branch[0].status == "error":
        assert branch[0].error and branch[0].error.split(":")[0] in (expected.raised, "ResponseError")


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
