"""The loopback server's ``POST /v1/responses``, as the real openai SDK sees it."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from fakeopenai import (
    FakeOpenAI,
    drop_after,
    error,
    response_items,
    responses_usage,
    text,
    tool_calls,
)

SAMPLE = "other/responses_api/DERIVED_llm_test_responses_tool_use.decoded.json"


def test_a_plain_response_parses(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    usage = responses_usage(10, 3, cached=4)
    openai_server.script(text("Hello there!", usage=usage))
    response = openai_client.responses.create(model="gpt-4o", input="Hi", instructions="Be brief.")
    assert (response.output_text, response.status, response.model, response.instructions) == (
        "Hello there!", "completed", "gpt-4o", "Be brief.")
    assert response.usage is not None and response.usage.model_dump(exclude_unset=True) == usage
    assert openai_server.requests[0].path == "/v1/responses"


def test_streamed_events_come_in_the_real_order(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    openai_server.script(tool_calls([{"id": "call_1", "name": "f", "arguments": '{"a": 1}'}], content="Sure.",
                                    chunk_size=3))
    events = list(openai_client.responses.create(model="gpt-4o", input="Hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 2
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Sure."
    assert "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta") == '{"a": 1}'
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.usage is not None and [item.type for item in final.output] == ["message", "function_call"]


def test_the_sdks_own_stream_helper_accepts_the_events(openai_client: openai.OpenAI,
                                                       openai_server: FakeOpenAI) -> None:
    openai_server.script(text("Streamed, then whole."))
    with openai_client.responses.stream(model="gpt-4o", input="Hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Streamed, then whole."


def test_recorded_items_are_sent_back_verbatim(openai_client: openai.OpenAI, openai_server: FakeOpenAI,
                                               samples: Path) -> None:
    recorded = json.loads((samples / SAMPLE).read_text())[0]["response"]["output"]
    openai_server.script(response_items(recorded))
    response = openai_client.responses.create(model="gpt-4o", input="Multiply")
    assert [item.model_dump(mode="json", exclude_unset=True) for item in response.output] == recorded


def test_a_dropped_stream_and_an_error(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    openai_server.script(drop_after(5), error(500, "boom"))
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for event in openai_client.responses.create(model="gpt-4o", input="Hi", stream=True):
            seen.append(event.type)
    assert len(seen) == 5
    with pytest.raises(openai.InternalServerError, match="boom"):
        openai_server.client(max_retries=0).responses.create(model="gpt-4o", input="Hi")
