"""OpenAI's Conversations API both ways: the loopback server's endpoints, pull, push, ResponsesChat on a
server conversation, the replay when a stored response is gone, and the CLI.

The server is tests/fakeconversations.py behind the real openai SDK; its shapes are checked against the
documented examples in ../shared/samples/other/conversations_api/. Store tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.conversations import ConversationItemList

from chatkeep import AsyncResponsesChat, ChatkeepError, Conversation, ResponsesChat, open_store
from chatkeep.client.responses import ResponsesReply
from chatkeep.remote import ServerConversationNotFound, pull, push, server_link
from chatkeep.remote.push import batches
from chatkeep.store import SQLiteStore
from clitools import environment, run
from fakeopenai import FakeOpenAI, error, response_items, text, tool_calls

DOCS = "other/conversations_api"
MODES = ["send", "stream", "async-send", "async-stream"]
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Weighing it."}],
             "encrypted_content": "gAAAAB-secret-reasoning"}
IMAGE = {"type": "message", "id": "msg_img", "status": "completed", "role": "user",
         "content": [{"type": "input_text", "text": "What is this?"},
                     {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}]}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    postgres = request.param == "postgres"
    opened = open_store(request.getfixturevalue("postgres_url") if postgres else tmp_path / "chats.db")
    yield opened
    opened.close()


@pytest.fixture
def client(openai_server: FakeOpenAI) -> openai.OpenAI:
    return openai_server.client(max_retries=0)


def message(role: str, words: str, item_id: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "id": item_id, "status": "completed", "role": role,
            "content": [{"type": kind, "text": words}]}


def chat_items(count: int) -> list[dict[str, Any]]:
    return [message("user" if n % 2 == 0 else "assistant", f"line {n}", f"msg_{n:04d}") for n in range(count)]


def requests(server: FakeOpenAI, method: str, suffix: str) -> list[Any]:
    return [r for r in server.requests if r.method == method and r.path.split("?")[0].endswith(suffix)]


def with_ids(page: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """A page with its generated ids replaced, in order, by ``ids``."""
    swap = {item["id"]: new for item, new in zip(page["data"], ids)}
    return {**page, "data": [{**item, "id": swap[item["id"]]} for item in page["data"]],
            "first_id": swap[page["first_id"]], "last_id": swap[page["last_id"]]}


# -- the loopback server ---------------------------------------------------------------------------------------


def test_adding_items_answers_as_the_documented_example(client: openai.OpenAI, samples: Path) -> None:
    documented = json.loads((samples / DOCS / "DERIVED_openai-openapi_createConversationItems_response.json").read_text())
    conversation = client.conversations.create()
    sent = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello!"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "How are you?"}]}]
    raw = client.conversations.items.with_raw_response.create(conversation.id, items=sent)
    assert with_ids(raw.http_response.json(), ["msg_abc", "msg_def"]) == documented
    assert ConversationItemList.model_validate(documented).data[1].id == "msg_def"  # the SDK's own type reads it


def test_listing_items_answers_as_the_documented_example(client: openai.OpenAI, samples: Path) -> None:
    documented = json.loads((samples / DOCS / "DERIVED_openai-openapi_listConversationItems_response.json").read_text())
    conversation = client.conversations.create(items=[{"role": "user", "content": "Hello!"}])  # the easy form
    raw = client.conversations.items.with_raw_response.list(conversation.id)
    assert with_ids(raw.http_response.json(), ["msg_abc"]) == documented


def test_items_page_by_after_limit_and_order(openai_server: FakeOpenAI, client: openai.OpenAI) -> None:
    conversation_id = openai_server.conversations.seed(chat_items(45))
    first = client.conversations.items.list(conversation_id, order="asc", limit=20)
    assert (len(first.data), first.data[0].id, first.last_id, first.has_more) == (20, "msg_0000", "msg_0019", True)
    last = client.conversations.items.list(conversation_id, order="asc", limit=20, after="msg_0039")
    assert ([i.id for i in last.data], last.first_id, last.has_more) == (
        [f"msg_{n:04d}" for n in range(40, 45)], "msg_0040", False)
    newest = client.conversations.items.list(conversation_id, limit=2)  # desc unless asked
    assert [i.id for i in newest.data] == ["msg_0044", "msg_0043"]
    assert [i.id for i in client.conversations.items.list(conversation_id, order="asc", limit=7)] == [
        f"msg_{n:04d}" for n in range(45)]  # the SDK follows has_more/last_id
    with pytest.raises(openai.BadRequestError, match="limit"):
        client.conversations.items.list(conversation_id, limit=101)


def test_twenty_items_a_request_at_most(client: openai.OpenAI) -> None:
    items = [{"role": "user", "content": f"n{n}"} for n in range(21)]
    with pytest.raises(openai.BadRequestError) as refused:
        client.conversations.create(items=items)
    assert refused.value.code == "array_above_max_length" and refused.value.param == "items"
    conversation = client.conversations.create(items=items[:20])
    with pytest.raises(openai.BadRequestError, match="maximum length 20"):
        client.conversations.items.create(conversation.id, items=items)
    with pytest.raises(openai.BadRequestError, match="empty array"):
        client.conversations.items.create(conversation.id, items=[])
    assert len(list(client.conversations.items.list(conversation.id, limit=100))) == 20


def test_retrieve_update_delete_and_404s(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(items=[{"role": "user", "content": "Hi"}], metadata={"topic": "demo"})
    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "demo"}
    assert client.conversations.update(conversation.id, metadata={"topic": "other"}).metadata == {"topic": "other"}
    item = client.conversations.items.list(conversation.id).data[0]
    assert client.conversations.items.retrieve(item.id, conversation_id=conversation.id).id == item.id
    assert client.conversations.items.delete(item.id, conversation_id=conversation.id).id == conversation.id
    with pytest.raises(openai.NotFoundError) as missing:
        client.conversations.items.retrieve(item.id, conversation_id=conversation.id)
    assert missing.value.body == {"message": f"Item with id '{item.id}' not found.", "type": "invalid_request_error",
                                  "param": None, "code": None}
    deleted = client.conversations.delete(conversation.id)
    assert (deleted.deleted, deleted.object) == (True, "conversation.deleted")
    with pytest.raises(openai.NotFoundError, match="Conversation with id"):
        client.conversations.retrieve(conversation.id)
    with pytest.raises(openai.BadRequestError, match="16"):
        client.conversations.create(metadata={f"k{n}": "v" for n in range(17)})


def test_image_urls_and_encrypted_reasoning_come_only_when_included(openai_server: FakeOpenAI,
                                                                    client: openai.OpenAI) -> None:
    conversation_id = openai_server.conversations.seed([IMAGE, REASONING])
    plain = client.conversations.items.list(conversation_id, order="asc").data
    assert plain[0].content[1].image_url is None and plain[1].encrypted_content is None  # type: ignore[union-attr]
    include: Any = ["message.input_image.image_url", "reasoning.encrypted_content"]
    full = client.conversations.items.list(conversation_id, order="asc", include=include).data
    assert full[0].content[1].image_url == IMAGE["content"][1]["image_url"]  # type: ignore[union-attr]
    assert full[1].encrypted_content == REASONING["encrypted_content"]  # type: ignore[union-attr]
    one = client.conversations.items.retrieve("rs_1", conversation_id=conversation_id, include=include)
    assert one.encrypted_content == REASONING["encrypted_content"]  # type: ignore[union-attr]


def test_a_response_on_a_conversation_adds_its_input_and_output(openai_server: FakeOpenAI,
                                                                client: openai.OpenAI) -> None:
    conversation = client.conversations.create(items=[{"role": "system", "content": "Be brief."}])
    openai_server.script(tool_calls([{"id": "call_1", "name": "clock", "arguments": "{}"}], content="Checking."))
    response = client.responses.create(model="gpt-4o", input="Time?", conversation=conversation.id)
    assert response.conversation is not None and response.conversation.id == conversation.id
    kept = openai_server.conversations.items_of(conversation.id)
    assert [(i["type"], i.get("role")) for i in kept] == [
        ("message", "system"), ("message", "user"), ("message", "assistant"), ("function_call", None)]
    assert [i["id"] for i in kept[2:]] == [o.id for o in response.output]
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="gpt-4o", input="Hi", conversation="conv_nope")
    assert unknown.value.param == "conversation"
    with pytest.raises(openai.BadRequestError, match="Mutually exclusive"):
        client.responses.create(model="gpt-4o", input="Hi", conversation=conversation.id,
                                previous_response_id=response.id)
    with pytest.raises(openai.BadRequestError, match="Duplicate item"):
        client.responses.create(model="gpt-4o", input=[kept[1]], conversation=conversation.id)  # type: ignore[list-item]


def test_an_unknown_or_expired_previous_response_is_a_404(openai_server: FakeOpenAI, client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-4o", input="Hi")
    client.responses.create(model="gpt-4o", input="Again", previous_response_id=first.id)
    unstored = client.responses.create(model="gpt-4o", input="Hi", store=False)
    openai_server.conversations.expire(first.id)
    for gone in (first.id, unstored.id, "resp_never"):
        with pytest.raises(openai.NotFoundError) as refused:
            client.responses.create(model="gpt-4o", input="Again", previous_response_id=gone)
        assert (refused.value.code, refused.value.param) == ("previous_response_not_found", "previous_response_id")


# -- pull: chatkeep import conv_... -----------------------------------------------------------------------------


def test_pull_reads_every_page_oldest_first_with_images_and_reasoning(openai_server: FakeOpenAI, client: openai.OpenAI,
                                                                     store: SQLiteStore) -> None:
    items = [IMAGE, REASONING, *chat_items(230),
             {"type": "function_call", "id": "fc_1", "status": "completed", "call_id": "call_1", "name": "clock",
              "arguments": "{}"},
             {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "12:00"},
             {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}}]
    server_id = openai_server.conversations.seed(items, metadata={"title": "Planning"})
    result = pull(store, client, server_id)
    assert (result.created, result.added, result.known) == (True, 235, 0)
    kept = store.path(result.conversation_id)
    assert [m.message for m in kept] == items  # as the server holds them: image URL and encrypted reasoning too
    assert {m.kind for m in kept} == {"response_item"}
    assert kept[-2].metadata["openai"] == {"conversation_id": server_id, "item_id": "fco_1"}
    record = store.get_conversation(result.conversation_id)
    assert record.title == "Planning" and server_link(record) is not None
    assert server_link(record).conversation_id == server_id  # type: ignore[union-attr]
    lists = requests(openai_server, "GET", "/items")
    assert len(lists) == 3 and all("order=asc" in r.path and "include%5B%5D=reasoning.encrypted_content" in r.path
                                   and "include%5B%5D=message.input_image.image_url" in r.path for r in lists)
    assert "after=msg_0097" in lists[1].path


def test_pulling_again_adds_only_what_the_server_gained(openai_server: FakeOpenAI, client: openai.OpenAI,
                                                        store: SQLiteStore) -> None:
    server_id = openai_server.conversations.seed(chat_items(4))
    first = pull(store, client, server_id)
    again = pull(store, client, server_id)
    assert (again.created, again.added, again.known, again.conversation_id) == (False, 0, 4, first.conversation_id)
    openai_server.script(text("More."))
    client.responses.create(model="gpt-4o", input="Go on", conversation=server_id)
    later = pull(store, client, server_id)
    assert (later.added, later.known, later.branched) == (2, 4, False)
    assert [m.text for m in store.path(first.conversation_id)][-3:] == ["line 3", "Go on", "More."]
    assert store.count_conversations() == 1 and store.count_messages() == 6


def test_items_the_server_gained_wait_on_a_branch_when_turns_were_added_here(
        openai_server: FakeOpenAI, client: openai.OpenAI, store: SQLiteStore) -> None:
    server_id = openai_server.conversations.seed(chat_items(2))
    local = pull(store, client, server_id).conversation_id
    store.conversation(local).append({"role": "user", "content": "Only here"})
    client.conversations.items.create(server_id, items=[{"role": "user", "content": "Only there"}])
    result = pull(store, client, server_id)
    assert result.branched and result.added == 1
    assert [m.text for m in store.path(local)] == ["line 0", "line 1", "Only here"]
    tips = [b.tip.text for b in Conversation(store, local).branches()]
    assert sorted(tips) == ["Only here", "Only there"]


def test_pull_takes_the_documented_examples(openai_server: FakeOpenAI, client: openai.OpenAI, store: SQLiteStore,
                                            samples: Path) -> None:
    for name in ("DERIVED_openai-openapi_listConversationItems_response.json",
                 "DERIVED_openai-openapi_createConversationItems_response.json"):
        documented = json.loads((samples / DOCS / name).read_text())
        server_id = openai_server.conversations.seed(documented["data"])
        result = pull(store, client, server_id)
        assert [m.message for m in store.path(result.conversation_id)] == documented["data"]
        assert [m.text for m in store.path(result.conversation_id)] == [
            item["content"][0]["text"] for item in documented["data"]]


def test_pulling_a_missing_conversation_stores_nothing(client: openai.OpenAI, store: SQLiteStore) -> None:
    with pytest.raises(ServerConversationNotFound, match="conv_gone"):
        pull(store, client, "conv_gone")
    assert store.count_conversations() == 0


# -- push: chatkeep push ID -------------------------------------------------------------------------------------


def chat_conversation(store: SQLiteStore, turns: int) -> Conversation:
    """A Chat Completions conversation: a system prompt, a tool call answered, then ``turns`` user/assistant pairs."""
    conversation = store.new_conversation(title="Support")
    conversation.append({"role": "system", "content": "Be brief."})
    conversation.append({"role": "user", "content": "Time?"})
    conversation.append({"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "clock", "arguments": "{}"}},
        {"id": "call_b", "type": "function", "function": {"name": "zone", "arguments": "{}"}}]})
    conversation.append({"role": "tool", "tool_call_id": "call_a", "content": "12:00"})
    conversation.append({"role": "tool", "tool_call_id": "call_b", "content": "UTC"})
    for n in range(turns):
        conversation.append({"role": "user", "content": f"question {n}"})
        conversation.append({"role": "assistant", "content": f"answer {n}"})
    return conversation


def test_push_creates_a_server_conversation_twenty_items_a_request(openai_server: FakeOpenAI, client: openai.OpenAI,
                                                                   store: SQLiteStore) -> None:
    conversation = chat_conversation(store, 20)  # 45 messages, 47 items
    result = push(store, client, conversation.id)
    assert (result.created, result.messages, result.items) == (True, 45, 47)
    created = requests(openai_server, "POST", "/conversations")
    added = requests(openai_server, "POST", "/items")
    assert len(created) == 1
    assert created[0].body["metadata"] == {"chatkeep_id": conversation.id, "title": "Support"}
    assert len(created[0].body["items"]) == 20 and [len(r.body["items"]) for r in added] == [20, 7]
    on_server = openai_server.conversations.items_of(result.server_id)
    assert [(i["type"], i.get("role"), i.get("call_id")) for i in on_server[:7]] == [
        ("message", "system", None), ("message", "user", None), ("message", "assistant", None),
        ("function_call", None, "call_a"), ("function_call", None, "call_b"),
        ("function_call_output", None, "call_a"), ("function_call_output", None, "call_b")]
    assert on_server[-1]["content"] == [{"type": "output_text", "text": "answer 19", "annotations": [], "logprobs": []}]
    link = server_link(store.get_conversation(conversation.id))
    assert link is not None and (link.conversation_id, link.synced_item) == (result.server_id, on_server[-1]["id"])
    assert link.synced_message == conversation.head.id  # type: ignore[union-attr]


def test_pushing_again_sends_only_what_is_new(openai_server: FakeOpenAI, client: openai.OpenAI,
                                              store: SQLiteStore) -> None:
    conversation = chat_conversation(store, 1)
    first = push(store, client, conversation.id)
    sent = len(openai_server.requests)
    again = push(store, client, conversation.id)
    assert (again.created, again.items, again.requests, len(openai_server.requests)) == (False, 0, 0, sent)
    conversation.append({"role": "user", "content": "One more"})
    conversation.append({"role": "assistant", "content": "Sure"})
    later = push(store, client, conversation.id)
    assert (later.server_id, later.messages, later.items, later.requests) == (first.server_id, 2, 2, 1)
    assert [i["content"][0]["text"] for i in openai_server.conversations.items_of(first.server_id)[-3:]] == [
        "answer 0", "One more", "Sure"]


def test_a_push_cut_off_midway_goes_on_where_it_stopped(openai_server: FakeOpenAI, client: openai.OpenAI,
                                                        store: SQLiteStore) -> None:
    conversation = chat_conversation(store, 30)  # 65 messages: create + 3 item requests
    openai_server.conversations.fail_after(2)  # create and one batch, then a 500
    with pytest.raises(openai.InternalServerError):
        push(store, client, conversation.id)
    result = push(store, client, conversation.id)
    assert not result.created and result.requests == 2
    on_server = openai_server.conversations.items_of(result.server_id)
    assert len(on_server) == 67  # every item once
    assert [i["content"][0]["text"] for i in on_server if i.get("role") == "user"][-1] == "question 29"


def test_push_after_pull_and_pull_after_push_move_nothing(openai_server: FakeOpenAI, client: openai.OpenAI,
                                                          store: SQLiteStore) -> None:
    server_id = openai_server.conversations.seed(chat_items(5))
    pulled = pull(store, client, server_id)
    assert push(store, client, pulled.conversation_id).requests == 0
    conversation = chat_conversation(store, 2)
    pushed = push(store, client, conversation.id)
    again = pull(store, client, pushed.server_id)
    assert (again.conversation_id, again.created, again.added) == (conversation.id, False, 0)
    client.conversations.items.create(pushed.server_id, items=[{"role": "user", "content": "From elsewhere"}])
    later = pull(store, client, pushed.server_id)
    assert later.added == 1 and conversation.head is not None and conversation.head.text == "From elsewhere"
    assert store.count_conversations() == 2


def test_turns_pushed_onto_a_pulled_conversation_are_not_pulled_back(openai_server: FakeOpenAI,
                                                                      client: openai.OpenAI,
                                                                      store: SQLiteStore) -> None:
    server_id = openai_server.conversations.seed(chat_items(2), metadata={"topic": "x"})
    local = pull(store, client, server_id).conversation_id
    conversation = store.conversation(local)
    conversation.append({"role": "user", "content": "Asked here"})
    pushed = push(store, client, local)
    assert (pushed.server_id, pushed.items, pushed.requests) == (server_id, 1, 3)  # named there, then the item
    assert client.conversations.retrieve(server_id).metadata == {"topic": "x", "chatkeep_id": local}
    client.conversations.items.create(server_id, items=[{"role": "assistant", "content": "Answered there"}])
    later = pull(store, client, server_id)
    assert (later.conversation_id, later.added, later.branched) == (local, 1, False)
    assert [m.text for m in conversation.history()] == ["line 0", "line 1", "Asked here", "Answered there"]
    conversation.append({"role": "user", "content": "Once more"})
    assert push(store, client, local).requests == 1  # named once is enough


def test_a_message_the_responses_api_cannot_hold_stops_the_push_before_anything_is_sent(
        openai_server: FakeOpenAI, client: openai.OpenAI, store: SQLiteStore) -> None:
    conversation = chat_conversation(store, 12)
    conversation.append({"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]})
    with pytest.raises(ChatkeepError, match="'input_audio' content part.*nothing was pushed"):
        push(store, client, conversation.id)
    assert openai_server.requests == [] and server_link(store.get_conversation(conversation.id)) is None


def test_a_fork_or_another_branch_is_not_pushed_onto_the_server_conversation(
        openai_server: FakeOpenAI, client: openai.OpenAI, store: SQLiteStore) -> None:
    conversation = chat_conversation(store, 2)
    pushed = push(store, client, conversation.id)
    fork = store.fork(conversation.id)
    assert push(store, client, fork.id).server_id != pushed.server_id  # the fork's copied link is not its own
    first_question = next(m for m in conversation.history() if m.text == "question 0")
    conversation.edit(first_question.id, {"role": "user", "content": "question 0, asked again"})
    with pytest.raises(ChatkeepError, match="left what .* holds"):
        push(store, client, conversation.id)
    fresh = push(store, client, conversation.id, new=True)
    assert fresh.created and fresh.server_id != pushed.server_id


def test_batches_end_between_messages_and_split_only_a_message_too_large() -> None:
    units = [("a", [{"n": n} for n in range(15)]), ("b", [{"n": n} for n in range(6)]),
             ("c", [{"n": n} for n in range(45)]), ("d", []), ("e", [{"n": 0}])]
    made = [(len(b.items), b.through) for b in batches(units)]
    # c's 45 items go in three parts; it counts as sent only with its last part, which d and e join.
    assert made == [(15, "a"), (6, "b"), (20, "b"), (20, "b"), (6, "e")]


# -- ResponsesChat on a server conversation -----------------------------------------------------------------------


def turn(mode: str, server: FakeOpenAI, conversation: Conversation, message: Any, /, **options: Any) -> ResponsesReply:
    """One Responses turn in ``mode`` (send, stream, async-send, async-stream)."""
    if mode.startswith("async"):
        async def run_async() -> ResponsesReply | None:
            async with server.async_client(max_retries=0) as async_client:
                chat = AsyncResponsesChat(conversation, async_client, model="gpt-4o", **options)
                if mode == "async-send":
                    return await chat.send(message)
                async with chat.stream(message) as stream:
                    async for _ in stream:
                        pass
                return stream.reply
        reply = asyncio.run(run_async())
    else:
        chat = ResponsesChat(conversation, server.client(max_retries=0), model="gpt-4o", **options)
        if mode == "send":
            reply = chat.send(message)
        else:
            with chat.stream(message) as stream:
                for _ in stream:
                    pass
            reply = stream.reply
    assert reply is not None
    return reply


@pytest.mark.parametrize("mode", MODES)
def test_a_chat_on_a_server_conversation_sends_only_what_it_lacks_and_keeps_every_item(
        mode: str, openai_server: FakeOpenAI, client: openai.OpenAI, store: SQLiteStore) -> None:
    conversation = chat_conversation(store, 1)
    server_id = push(store, client, conversation.id).server_id
    openai_server.script(response_items([REASONING, message("assistant", "Noon.", "msg_out1")]), text("Still noon."))
    turn(mode, openai_server, conversation, "And now?", conversation=server_id)
    conversation.append({"role": "user", "content": "A note kept here first"})
    turn(mode, openai_server, conversation, "Again?", conversation={"id": server_id})
    sent = [r.body for r in requests(openai_server, "POST", "/responses")]
    assert [b["input"] for b in sent] == [
        [{"role": "user", "content": "And now?"}],
        [{"role": "user", "content": "A note kept here first"}, {"role": "user", "content": "Again?"}]]
    assert all("previous_response_id" not in b for b in sent)
    on_server = openai_server.conversations.items_of(server_id)
    kept = conversation.history()
    assert len(on_server) == 9 + 3 + 3  # the push's items, then each turn's input and output, once
    assert [m.text for m in kept[-6:]] == ["And now?", "Weighing it.", "Noon.", "A note kept here first", "Again?",
                                           "Still noon."]
    assert kept[-5].metadata["openai"] == {"conversation_id": server_id, "item_id": "rs_1"}
    assert pull(store, client, server_id).added == 0  # everything the server holds is here


@pytest.mark.parametrize("mode", MODES)
def test_a_chat_links_a_conversation_to_the_server_conversation_it_runs_on(
        mode: str, openai_server: FakeOpenAI, client: openai.OpenAI, store: SQLiteStore) -> None:
    server_id = client.conversations.create(items=[{"role": "system", "content": "Be brief."}]).id
    conversation = store.new_conversation()
    turn(mode, openai_server, conversation, "Hi", conversation=server_id)
    link = server_link(store.get_conversation(conversation.id))
    assert link is not None and link.conversation_id == server_id
    assert pull(store, client, server_id).conversation_id == conversation.id  # found by its items' key
    conversation.append({"role": "user", "content": "Later, here"})
    result = push(store, client, conversation.id)
    assert (result.server_id, result.items) == (server_id, 1)
    assert store.count_conversations() == 1


def test_a_failed_turn_on_a_server_conversation_is_sent_with_the_next(openai_server: FakeOpenAI,
                                                                       client: openai.OpenAI,
                                                                       store: SQLiteStore) -> None:
    server_id = client.conversations.create().id
    conversation = store.new_conversation()
    openai_server.script(error(500), text("Both seen."))
    with pytest.raises(openai.InternalServerError):
        turn("send", openai_server, conversation, "First", conversation=server_id)
    turn("send", openai_server, conversation, "Second", conversation=server_id)
    assert requests(openai_server, "POST", "/responses")[-1].body["input"] == [
        {"role": "user", "content": "First"}, {"role": "user", "content": "Second"}]
    assert [i["content"][0]["text"] for i in openai_server.conversations.items_of(server_id)] == [
        "First", "Second", "Both seen."]


# -- a stored response that expired or is missing ----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_an_expired_previous_response_replays_the_local_history(mode: str, openai_server: FakeOpenAI,
                                                                 store: SQLiteStore) -> None:
    conversation = store.new_conversation()
    openai_server.script(text("One."), text("Two."))
    first = turn(mode, openai_server, conversation, "First", store_on_server=True)
    openai_server.conversations.expire()  # 30 days later
    second = turn(mode, openai_server, conversation, "Second", store_on_server=True)
    chained, replayed = [r.body for r in requests(openai_server, "POST", "/responses")][1:]
    assert chained["previous_response_id"] == first.response_id  # answered 404 by the server, not by a script
    assert "previous_response_id" not in replayed and [i.get("role") for i in replayed["input"]] == [
        "user", "assistant", "user"]
    assert str(second) == "Two." and [m.status for m in conversation.history()] == ["complete"] * 4
    assert second.items[-1].metadata["response_id"] == second.response_id


def test_a_response_another_server_made_is_replayed_too(store: SQLiteStore) -> None:
    conversation = store.new_conversation()
    with FakeOpenAI() as elsewhere:
        turn("send", elsewhere, conversation, "First", store_on_server=True)
    with FakeOpenAI() as here:
        here.script(text("Answered here."))
        reply = turn("send", here, conversation, "Second", store_on_server=True)
        assert len(requests(here, "POST", "/responses")) == 2
    assert str(reply) == "Answered here." and len(conversation.history()) == 4


# -- the CLI ------------------------------------------------------------------------------------------------------


def test_cli_imports_a_server_conversation_and_pushes_a_local_one(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    server_id = openai_server.conversations.seed(chat_items(3))
    env = environment(tmp_path / "cli.db", openai_server.base_url)
    imported = run(env, "import", server_id)
    assert imported.code == 0, imported.err
    local = store_ids(tmp_path / "cli.db")[0]
    assert imported.out == f"Imported {server_id} as {local}: 3 items.\n"
    assert run(env, "import", server_id).out == f"Nothing new in {server_id}: its 3 items are already in {local}.\n"
    assert run(env, "push", local).out == f"Nothing new to push: {server_id} already holds {local}'s current branch.\n"
    assert run(env, "chat", "--cid", "notes", "--no-stream", "-m", "Hello").code == 0
    pushed = run(env, "push", "notes")
    assert pushed.code == 0, pushed.err
    server_ids = [c for c in openai_server.conversations.conversations if c != server_id]
    assert pushed.out == f"Pushed notes to {server_ids[0]} (new): 2 messages as 2 items.\n"


def store_ids(path: Path) -> list[str]:
    with open_store(path) as opened:
        return [r.id for r in opened.list_conversations()]


def test_cli_errors_are_one_line(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    env = environment(tmp_path / "cli.db", openai_server.base_url)
    missing = run(env, "import", "conv_missing")
    assert (missing.code, missing.out) == (1, "")
    assert missing.err == ("chatkeep: the server has no conversation 'conv_missing' (deleted, or made with another "
                           "project's key)\n")
    offline = run(env, "import", "conv_abc", "--base-url", "http://127.0.0.1:9/v1")
    assert offline.code == 3 and offline.err.startswith("chatkeep: cannot reach the model server at http://127.0.0.1:9")
    assert offline.err.count("\n") == 1
    assert run(env, "import", "conv_abc", "--format", "jsonl").code == 2
    no_file = run(env, "import", str(tmp_path / "nothing.json"))
    assert no_file.code == 2 and "does not exist" in no_file.err
    unknown = run(env, "push", "no-such")
    assert (unknown.code, unknown.err) == (1, "chatkeep: no conversation with id 'no-such'\n")
    keyless = run(environment(tmp_path / "cli.db"), "import", "conv_abc")
    assert (keyless.code, keyless.err) == (1, "chatkeep: no API key: set OPENAI_API_KEY (or --base-url for a server "
                                              "that needs none)\n")


# -- another client of the same API: the Agents SDK's OpenAIConversationsSession ----------------------------------


def test_the_agents_sdks_conversation_session_runs_on_the_server_and_pulls_whole(
        openai_server: FakeOpenAI, client: openai.OpenAI, store: SQLiteStore) -> None:
    agents = pytest.importorskip("agents")
    from agents import Agent, OpenAIConversationsSession, Runner, function_tool
    from agents.models.openai_responses import OpenAIResponsesModel

    agents.set_tracing_disabled(True)  # nothing goes to OpenAI's servers

    @function_tool
    def clock() -> str:
        """The time."""
        return "12:00"

    openai_server.script(tool_calls([{"id": "call_c", "name": "clock", "arguments": "{}"}]), text("It is noon."),
                         text("Still noon."))

    async def run_agent() -> tuple[str, list[Any]]:
        async with openai_server.async_client(max_retries=0) as async_client:
            session = OpenAIConversationsSession(openai_client=async_client)
            agent = Agent(name="Clock", tools=[clock], model=OpenAIResponsesModel(model="gpt-4o",
                                                                                   openai_client=async_client))
            await Runner.run(agent, "Time?", session=session)
            await Runner.run(agent, "And now?", session=session)
            return session.session_id, await session.get_items()

    server_id, session_items = asyncio.run(run_agent())
    result = pull(store, client, server_id)
    kept = [m.message for m in store.path(result.conversation_id)]
    assert [i["type"] for i in kept] == ["message", "function_call", "function_call_output", "message", "message",
                                         "message"]
    assert [(i.get("id"), i.get("call_id")) for i in kept] == [(i.get("id"), i.get("call_id")) for i in session_items]
    assert [m.text for m in store.path(result.conversation_id)] == [
        "Time?", "clock\n{}", "12:00", "It is noon.", "And now?", "Still noon."]
