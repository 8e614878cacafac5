"""Responses API items as plain dicts: their text, their chat view, and the windows sent back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatkeep import validate_messages
from chatkeep.items import (
    branch_to_chat,
    chat_to_items,
    clean_window,
    is_call,
    is_call_output,
    item_role,
    pending_calls,
    response_item_text,
    response_item_to_chat,
    response_items_to_chat,
)

SAMPLE = "other/responses_api/DERIVED_llm_test_responses_round_trips_encrypted_reasoning.decoded.json"


def sample_traffic(samples: Path) -> list[dict[str, Any]]:
    return json.loads((samples / SAMPLE).read_text())  # type: ignore[no-any-return]


USER = {"role": "user", "content": "Weather in Paris?"}
CALL = {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}',
        "id": "fc_1", "status": "completed"}
OUTPUT = {"type": "function_call_output", "call_id": "call_a", "output": "Sunny, 21°C"}
ANSWER = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
          "content": [{"type": "output_text", "text": "It is sunny.", "annotations": [], "logprobs": []}]}
REASONING = {"id": "rs_1", "type": "reasoning", "encrypted_content": "gAAAA-secret",
             "summary": [{"type": "summary_text", "text": "Looking up the weather."}]}


def test_each_item_has_its_searchable_text() -> None:
    assert response_item_text(USER) == "Weather in Paris?"
    assert response_item_text(CALL) == 'get_weather\n{"city": "Paris"}'
    assert response_item_text(OUTPUT) == "Sunny, 21°C"
    assert response_item_text(ANSWER) == "It is sunny."
    assert response_item_text(REASONING) == "Looking up the weather."  # never the encrypted blob
    newer = {"type": "web_search_call", "id": "ws_1", "status": "completed",
             "action": {"type": "search", "query": "paris weather"}}
    assert response_item_text(newer) == ""  # an unknown item's nested text is not guessed at
    assert response_item_text({"type": "future_thing", "text": "kept", "id": "x_1"}) == "kept"


def test_items_read_as_chat_messages_for_show_and_export() -> None:
    assert response_item_to_chat(USER) == USER
    assert response_item_to_chat(ANSWER) == {"role": "assistant", "content": "It is sunny."}
    assert response_item_to_chat(CALL) == {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "call_a", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
    }
    assert response_item_to_chat(OUTPUT) == {"role": "tool", "tool_call_id": "call_a", "content": "Sunny, 21°C"}
    assert response_item_to_chat(REASONING) is None
    refusal = {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}
    assert response_item_to_chat(refusal) == {"role": "assistant", "content": None, "refusal": "No."}
    image = {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,AA"}]}
    assert response_item_to_chat(image) == {"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}


def test_a_run_of_items_exports_as_valid_chat_messages(samples: Path) -> None:
    second = sample_traffic(samples)[1]
    items = second["request"]["input"] + second["response"]["output"]
    messages = response_items_to_chat(items)
    assert validate_messages(messages) == messages
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    parallel = response_items_to_chat([USER, ANSWER, CALL, {**CALL, "call_id": "call_b"}, OUTPUT])
    assert [c["id"] for c in parallel[1]["tool_calls"]] == ["call_a", "call_b"]  # one model turn, one message
    assert parallel[1]["content"] == "It is sunny."


def test_a_mixed_branch_exports_as_one_chat() -> None:
    from types import SimpleNamespace as Stored

    branch = [Stored(kind="chat", message={"role": "system", "content": "Be brief."}),
              Stored(kind="response_item", message=USER), Stored(kind="response_item", message=REASONING),
              Stored(kind="response_item", message=CALL), Stored(kind="response_item", message=OUTPUT),
              Stored(kind="summary", message={"role": "system", "content": "(summary)"}),
              Stored(kind="response_item", message=ANSWER)]
    messages = branch_to_chat(branch)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert validate_messages(messages) == messages


def test_chat_messages_become_items_the_api_takes() -> None:
    assistant = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}
    assert chat_to_items({"role": "system", "content": "Be brief."}) == [{"role": "system", "content": "Be brief."}]
    assert chat_to_items(assistant) == [{"type": "function_call", "call_id": "call_a", "name": "get_weather",
                                         "arguments": "{}"}]
    assert chat_to_items({"role": "tool", "tool_call_id": "call_a", "content": "ok"}) == [
        {"type": "function_call_output", "call_id": "call_a", "output": "ok"}]


def test_calls_outputs_and_roles() -> None:
    assert (is_call(CALL), is_call_output(CALL), is_call(OUTPUT), is_call_output(OUTPUT)) == (True, False, False, True)
    assert [item_role(i) for i in (USER, CALL, OUTPUT, ANSWER, REASONING)] == [
        "user", "assistant", "tool", "assistant", "assistant"]
    assert pending_calls([USER, CALL]) == ["call_a"]
    assert pending_calls([USER, CALL, OUTPUT]) == []


def test_a_window_starting_inside_a_tool_batch_starts_after_it() -> None:
    second = {**CALL, "call_id": "call_b"}
    history = [USER, CALL, second, OUTPUT, {**OUTPUT, "call_id": "call_b"}, ANSWER]
    assert clean_window(history[-3:]) == [ANSWER]  # both outputs lost their calls
    # call_b's output has its call in the window, but cutting call_a's orphan cuts call_b too.
    assert clean_window(history[-4:]) == [ANSWER]
    assert clean_window(history) == history


# -- the window property, over arbitrary histories --------------------------------

def _turns(draw: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for turn in range(draw(st.integers(0, 6))):
        items.append({"role": "user", "content": f"question {turn}"})
        calls = [f"call_{turn}_{n}" for n in range(draw(st.integers(0, 3)))]
        if draw(st.booleans()):
            items.append({"type": "reasoning", "id": f"rs_{turn}", "encrypted_content": "x", "summary": []})
        items += [{"type": "function_call", "call_id": c, "name": "f", "arguments": "{}"} for c in calls]
        items += [{"type": "function_call_output", "call_id": c, "output": "ok"} for c in calls]
        items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]})
    return items


histories = st.composite(_turns)()


def orphans(items: list[dict[str, Any]]) -> list[str]:
    """Outputs whose call does not come before them in ``items``."""
    seen: set[str] = set()
    found = []
    for item in items:
        if is_call(item):
            seen.add(item["call_id"])
        elif is_call_output(item) and item["call_id"] not in seen:
            found.append(item["call_id"])
    return found


@given(histories, st.integers(1, 40))
def test_a_window_is_a_tail_and_never_holds_an_orphaned_output(history: list[dict[str, Any]], size: int) -> None:
    window = clean_window(history[-size:])
    assert len(window) <= size
    assert window == history[len(history) - len(window):]  # still the history's tail
    assert orphans(window) == []
    if not orphans(history[-size:]):
        assert window == history[-size:]  # nothing is cut that did not need to be


@pytest.mark.parametrize("item", [USER, CALL, OUTPUT, ANSWER, REASONING])
def test_text_never_raises_on_odd_shapes(item: dict[str, Any]) -> None:
    odd = {**item, "content": [None, 3, {"text": None}], "output": [{"type": "input_text", "text": "t"}]}
    assert isinstance(response_item_text(odd), str)
