"""Continuing conversations from the page, in Chromium: streamed replies from the loopback model server,
cut streams, errors, Stop, regenerate and edit, each kept in the store exactly as the library keeps them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[test]')")

from browser import Watched, WebServer, chromium, open_page  # noqa: F401  (chromium: the module's browser)
from chatkeep import open_store
from fakeopenai import FakeOpenAI, drop_after, error, text


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    opened = open_store(tmp_path_factory.mktemp("web-chat") / "chat.db")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def web(store: Any, model_server: FakeOpenAI) -> Iterator[WebServer]:
    with WebServer(store, base_url=model_server.base_url) as running:
        yield running


@pytest.fixture
def page(chromium: Any) -> Iterator[Watched]:
    watched = open_page(chromium)
    yield watched
    assert watched.errors == [] and watched.dialogs == []
    watched.page.context.close()


def _send(page: Any, message: str) -> None:
    page.fill("#prompt", message)
    page.press("#prompt", "Enter")


def _turn_over(page: Any) -> None:
    page.wait_for_selector("#send:not([disabled])")
    page.wait_for_function("() => !document.querySelector('.message.streaming')")


def _conversation_id(page: Any) -> str:
    return str(page.evaluate("() => decodeURIComponent(location.pathname.slice(3))"))


def test_a_new_chat_streams_its_reply_and_keeps_both_messages(page: Watched, web: WebServer, store: Any,
                                                              model_server: FakeOpenAI) -> None:
    reply = "Hello **world**, this reply arrives a few letters at a time."
    model_server.script(text(reply, chunk_size=3, chunk_delay=0.03, model="gpt-4o-mini-2024-07-18"))
    p = page.page
    p.goto(web.url("/new"))
    _send(p, "Hi there")
    # Text shows up while the reply is still being written...
    p.wait_for_function("() => { const s = document.querySelector('.message.streaming .content');"
                        " return s && s.textContent.length > 0 && s.textContent.length < 40; }")
    _turn_over(p)
    # ...and, once saved, as rendered Markdown.
    assert p.inner_text(".message.role-assistant .content strong") == "world"
    assert p.url.startswith(web.url("/c/"))
    conversation = _conversation_id(p)
    stored = store.path(conversation)
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    assert stored[0].message == {"role": "user", "content": "Hi there"} and stored[1].message["content"] == reply
    assert stored[1].model == "gpt-4o-mini-2024-07-18" and stored[1].usage
    sent = model_server.requests[-1].body
    assert sent["stream"] is True and sent["messages"] == [{"role": "user", "content": "Hi there"}]
    assert "authorization" not in p.content().lower()
    # The sidebar lists the new conversation, titled from its first message.
    p.wait_for_selector(f'#conversation-list a[href="/c/{conversation}"]')


def test_a_turn_continues_the_conversation_it_is_sent_in(page: Watched, web: WebServer, store: Any,
                                                          model_server: FakeOpenAI) -> None:
    conversation = store.conversation("continued", create=True)
    conversation.append({"role": "user", "content": "First question"})
    conversation.append({"role": "assistant", "content": "First answer"})
    model_server.script(text("Second answer"))
    p = page.page
    p.goto(web.url("/c/continued"))
    _send(p, "Second question")
    _turn_over(p)
    assert p.locator(".message .content").all_inner_texts()[-2:] == ["Second question", "Second answer"]
    assert [m["content"] for m in model_server.requests[-1].body["messages"]] == [
        "First question", "First answer", "Second question"]
    assert [m.text for m in store.path("continued")][-1] == "Second answer"


def test_a_stream_cut_by_the_server_is_kept_as_incomplete_and_said(page: Watched, web: WebServer, store: Any,
                                                                   model_server: FakeOpenAI) -> None:
    store.conversation("cut", create=True)
    model_server.script(drop_after(4, "This reply is cut short by a dropped connection."))
    p = page.page
    p.goto(web.url("/c/cut"))
    _send(p, "Tell me a long story")
    _turn_over(p)
    assert "cannot reach the model server" in p.inner_text("#turn-error")
    assert p.is_visible("#turn-error")
    reply = store.path("cut")[-1]
    assert reply.role == "assistant" and reply.status == "incomplete" and reply.text
    assert "This reply is cut short".startswith(reply.text) and len(reply.text) < len("This reply is cut short")
    assert p.inner_text(f"#m-{reply.id} .status") == "incomplete"
    assert p.inner_text(f"#m-{reply.id} .content") == reply.text
    assert [m.role for m in store.path("cut")] == ["user", "assistant"]


def test_a_failed_call_shows_the_error_and_keeps_the_message_unanswered(page: Watched, web: WebServer, store: Any,
                                                                        model_server: FakeOpenAI) -> None:
    store.conversation("failed", create=True)
    model_server.script(*[error(500, "the model is on fire")] * 3)  # the SDK's two retries too
    p = page.page
    p.goto(web.url("/c/failed"))
    _send(p, "Are you there?")
    _turn_over(p)
    assert "the model server answered 500: the model is on fire" in p.inner_text("#turn-error")
    (prompt,) = store.path("failed")
    assert (prompt.text, prompt.status) == ("Are you there?", "error")
    assert p.inner_text(f"#m-{prompt.id} .status.unanswered").startswith("unanswered: ")
    # Sent again, it is answered (a new message: the page never sends one twice by itself).
    model_server.script(text("Yes."))
    _send(p, "Hello?")
    _turn_over(p)
    assert store.path("failed")[-1].text == "Yes."


def test_stop_keeps_what_arrived_as_incomplete(page: Watched, web: WebServer, store: Any,
                                               model_server: FakeOpenAI) -> None:
    store.conversation("stopped", create=True)
    model_server.script(text("word " * 200, chunk_size=5, chunk_delay=0.05))
    p = page.page
    p.goto(web.url("/c/stopped"))
    _send(p, "Count words")
    p.wait_for_function("() => (document.querySelector('.message.streaming .content') || {}).textContent")
    p.click("#stop")
    _turn_over(p)
    reply = store.path("stopped")[-1]
    assert reply.status == "incomplete" and 0 < len(reply.text) < len("word " * 200)
    assert p.inner_text(f"#m-{reply.id} .status") == "incomplete"


def test_regenerate_starts_a_branch_and_the_switcher_goes_back(page: Watched, web: WebServer, store: Any,
                                                               model_server: FakeOpenAI) -> None:
    conversation = store.conversation("regenerated", create=True)
    conversation.append({"role": "user", "content": "Name a colour"})
    first = conversation.append({"role": "assistant", "content": "Red"})
    model_server.script(text("Blue"))
    p = page.page
    p.goto(web.url("/c/regenerated"))
    p.click(f"#m-{first.id} button.regenerate")
    _turn_over(p)
    second = store.get_conversation("regenerated").head_id
    assert second != first.id and store.get_message(second).text == "Blue"
    assert p.inner_text(f"#m-{second} .siblings .position") == "2 / 2"
    assert p.locator(f"#m-{first.id}").count() == 0
    with p.expect_navigation():
        p.click(f"#m-{second} .siblings button[aria-label='Previous version']")
    assert store.get_conversation("regenerated").head_id == first.id
    assert p.inner_text(f"#m-{first.id} .content") == "Red"
    assert p.inner_text(f"#m-{first.id} .siblings .position") == "1 / 2"


def test_edit_sends_the_new_text_on_a_branch_of_its_own(page: Watched, web: WebServer, store: Any,
                                                        model_server: FakeOpenAI) -> None:
    conversation = store.conversation("edited", create=True)
    asked = conversation.append({"role": "user", "content": "What is 2 + 2?"})
    conversation.append({"role": "assistant", "content": "4"})
    model_server.script(text("6"))
    p = page.page
    p.goto(web.url("/c/edited"))
    p.click(f"#m-{asked.id} details.edit summary")
    p.fill(f"#edit-{asked.id}", "What is 3 + 3?")
    p.click(f"#m-{asked.id} .edit-form button")
    _turn_over(p)
    branch = store.path("edited")
    assert [m.text for m in branch] == ["What is 3 + 3?", "6"]
    assert branch[0].parent_id is None and branch[0].id != asked.id
    assert p.inner_text(f"#m-{branch[0].id} .siblings .position") == "2 / 2"
    assert model_server.requests[-1].body["messages"] == [{"role": "user", "content": "What is 3 + 3?"}]
    assert [m.text for m in store.path("edited", head_id=store.children(asked.id)[0].id)] == ["What is 2 + 2?", "4"]


def test_without_a_key_the_message_is_kept_and_the_page_says_why(page: Watched, store: Any) -> None:
    store.conversation("keyless", create=True)
    with WebServer(store) as keyless:  # no base URL and no OPENAI_API_KEY: refused before any request is made
        p = page.page
        p.goto(keyless.url("/c/keyless"))
        _send(p, "Hello?")
        _turn_over(p)
        assert "no API key: set OPENAI_API_KEY" in p.inner_text("#turn-error")
    (kept,) = store.path("keyless")
    assert (kept.text, kept.status) == ("Hello?", "error")


def test_the_key_is_used_by_the_server_and_never_reaches_the_page(page: Watched, store: Any, model_server: FakeOpenAI,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-webkey-0123456789abcdefghijklmnop"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    store.conversation("keyed", create=True)
    bodies: list[str] = []
    p = page.page
    p.on("response", lambda response: bodies.append(response.text()) if "/static/" not in response.url else None)
    with WebServer(store, base_url=model_server.base_url) as keyed:
        model_server.script(text("Fine."), *[error(401, f"Incorrect API key provided: {key}")] * 3)
        p.goto(keyed.url("/c/keyed"))
        _send(p, "First")
        _turn_over(p)
        _send(p, "Second")  # the server answers 401 and echoes the key back
        _turn_over(p)
        assert "Incorrect API key provided" in p.inner_text("#turn-error")
        p.reload()
    assert model_server.requests[-1].headers["authorization"] == f"Bearer {key}"
    assert bodies and not [body for body in bodies if key in body or key[8:] in body]
    assert key not in p.content() and key[8:] not in store.path("keyed")[-1].error
