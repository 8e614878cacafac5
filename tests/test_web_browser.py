"""Looking through conversations in Chromium: the sidebar, a rendered conversation, search, branches,
organizing, export, long conversations and the keyboard. With CHATKEEP_SCREENSHOTS=1 the main views are
saved into docs/screenshots for the README."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[test]')")

from browser import Watched, WebServer, chromium, open_page, screenshot  # noqa: F401  (chromium: the module's browser)
from chatkeep import open_store
from chatkeep.store import Draft
from chatkeep.web.views import PAGE

CODE = 'def brew(grams: int) -> str:\n    return f"{grams} g of coffee"\n'


def _png() -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (120, 80), "#f0d9b5")
    ImageDraw.Draw(image).ellipse((30, 10, 90, 70), fill="#6f4e37")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    opened = open_store(tmp_path_factory.mktemp("web-browse") / "browse.db")
    _fill(opened)
    yield opened
    opened.close()


def _fill(store: Any) -> None:
    for number, (title, tags) in enumerate([("Trip to Lisbon", ["travel"]), ("Quarterly report", ["work"]),
                                            ("Sourdough starter", ["food", "home"])]):
        conversation = store.conversation(f"older-{number}", create=True, title=title)
        conversation.append({"role": "user", "content": f"Help me with the {title.lower()}."})
        conversation.append({"role": "assistant", "content": "Gladly: here is a plan in three steps."},
                            model="gpt-4o-mini")
        store.add_tags(conversation.id, tags)
    store.set_pinned("older-1", True)
    coffee = store.conversation("coffee", create=True, title="Brewing better coffee")
    coffee.append({"role": "system", "content": "You are a barista."})
    question = coffee.append({"role": "user", "content": [
        {"type": "text", "text": "What is in this cup, and how do I **brew** it with a script?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_png()}"}},
    ]})
    coffee.append({"role": "assistant", "content": "A flat white. Try an espresso machine."}, model="gpt-4o",
                  usage={"prompt_tokens": 310, "completion_tokens": 9}, latency_ms=840.0)
    answer = coffee.append(
        {"role": "assistant", "content": f"A **pour-over**. Here is a helper:\n\n```python\n{CODE}```\n\n"
                                         "| grams | water |\n|---:|---:|\n| 15 | 250 ml |\n| 30 | 500 ml |",
         "reasoning_content": "The crema is thin, so it is filtered coffee."},
        parent_id=question.id, model="gpt-4o", usage={"prompt_tokens": 310, "completion_tokens": 96},
        latency_ms=2210.0)
    coffee.set_head(answer.id)  # the second answer is the branch the conversation goes on from
    coffee.append({"role": "user", "content": "What is the weather for drinking it outside in Lisbon?"})
    coffee.append({"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_weather", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Lisbon", "unit": "celsius"}'}}]},
        model="gpt-4o", finish_reason="tool_calls")
    coffee.append({"role": "tool", "tool_call_id": "call_weather", "content": '{"temperature": 24, "sky": "clear"}'})
    coffee.append({"role": "assistant", "content": "24 °C and clear: drink it outside."}, model="gpt-4o",
                  usage={"prompt_tokens": 402, "completion_tokens": 12}, latency_ms=610.0)
    assert store.get_message(answer.id).parent_id == question.id
    long = store.create_conversation("long", title="A very long conversation")
    store.append_many(long.id, [Draft({"role": "user" if n % 2 == 0 else "assistant", "content": f"Message number {n}."})
                                for n in range(1000)])
    store.update_conversation("older-2", title="Sourdough starter")  # now the newest


@pytest.fixture(scope="module")
def web(store: Any) -> Iterator[WebServer]:
    with WebServer(store) as running:
        yield running


@pytest.fixture
def page(chromium: Any) -> Iterator[Watched]:
    watched = open_page(chromium)
    yield watched
    assert watched.errors == [] and watched.dialogs == []
    assert not [line for line in watched.console if "Content Security Policy" in line], watched.console
    watched.page.context.close()


def _titles(p: Any) -> list[str]:
    return [t.strip() for t in p.locator("#conversation-list .item-title").all_inner_texts()]


def test_the_sidebar_and_a_rendered_conversation(page: Watched, web: WebServer, store: Any) -> None:
    p = page.page
    p.goto(web.url("/"))
    assert _titles(p)[:3] == ["Quarterly report", "Sourdough starter", "A very long conversation"]
    assert p.locator("#conversation-list .pinned .item-title").all_inner_texts() == ["Quarterly report"]
    p.click("#conversation-list a:has-text('Brewing better coffee')")
    p.wait_for_url("**/c/coffee")
    assert p.get_attribute("#conversation-list a[href='/c/coffee']", "aria-current") == "page"
    branch = store.path("coffee")
    answer = p.locator(f"#m-{branch[2].id}")
    assert answer.locator(".content strong").inner_text() == "pour-over"
    assert answer.locator("pre.code span.k").first.inner_text() == "def"  # highlighted by Pygments
    assert answer.locator("table td").all_inner_texts() == ["15", "250 ml", "30", "500 ml"]
    assert "310 → 96 tokens" in answer.inner_text() and "2210 ms" in answer.inner_text()
    reasoning = answer.locator("details.reasoning")
    assert reasoning.get_attribute("open") is None
    reasoning.locator("summary").click()
    assert "crema is thin" in reasoning.inner_text()
    image = p.locator(f"#m-{branch[1].id} .attachment img")
    image.scroll_into_view_if_needed()
    p.wait_for_function("(img) => img.complete && img.naturalWidth === 120", arg=image.element_handle())
    # The tool call and its result are one folded entry; the tool message has no row of its own.
    call = p.locator(f"#m-{branch[4].id} details.tool-call")
    assert "get_weather" in call.locator("summary").inner_text() and not call.locator("pre.result").is_visible()
    call.locator("summary").click()
    assert '"city": "Lisbon"' in call.locator("pre.arguments").inner_text()
    assert '"temperature": 24' in call.locator("pre.result").inner_text()
    assert p.locator(f"#m-{branch[5].id}").is_hidden()
    p.locator("main").evaluate("(main) => { main.scrollTop = 0; }")
    screenshot(p, "conversation-light")


def test_dark_mode_by_system_and_by_choice(chromium: Any, web: WebServer) -> None:
    watched = open_page(chromium, dark=True)
    p = watched.page
    p.goto(web.url("/c/coffee"))
    background = "() => getComputedStyle(document.body).backgroundColor"
    assert p.evaluate(background) == "rgb(20, 23, 26)"
    p.locator("main").evaluate("(main) => { main.scrollTop = 0; }")
    screenshot(p, "conversation-dark")
    p.click("#theme-toggle")  # automatic → dark (kept) → light
    p.click("#theme-toggle")
    assert p.evaluate(background) == "rgb(255, 255, 255)"
    p.reload()
    assert p.evaluate(background) == "rgb(255, 255, 255)"  # the choice is kept
    assert p.get_attribute("#theme-toggle", "aria-label") == "Colour scheme: light"
    assert watched.errors == []
    p.context.close()


def test_copy_puts_the_code_on_the_clipboard(page: Watched, web: WebServer) -> None:
    p = page.page
    p.context.grant_permissions(["clipboard-read", "clipboard-write"])
    p.goto(web.url("/c/coffee"))
    p.locator(".code-block .copy").first.click()
    assert p.evaluate("() => navigator.clipboard.readText()") == CODE
    assert p.locator(".code-block .copy").first.inner_text() == "Copied"


def test_search_as_you_type_highlights_and_jumps_to_the_message(page: Watched, web: WebServer, store: Any) -> None:
    p = page.page
    p.goto(web.url("/c/older-0"))
    p.keyboard.press("/")
    assert p.evaluate("() => document.activeElement.id") == "search"
    p.keyboard.type("espresso machine")
    first = p.locator("#search-results .result").first
    first.wait_for()
    assert first.locator("mark").all_inner_texts() == ["espresso", "machine"]
    screenshot(p, "search")
    target = store.path("coffee", head_id=store.path("coffee")[1].id)[-1]  # the question: its answers are on branches
    hit = next(m for m in store.find_messages("coffee", kind="chat") if "espresso" in m.text)
    with p.expect_navigation():
        first.locator("a").click()
    assert p.url.endswith(f"/c/coffee?at={hit.id}#m-{hit.id}")
    assert p.evaluate("() => document.querySelector(':target').id") == f"m-{hit.id}"
    assert p.locator(f"#m-{hit.id}").is_visible() and p.locator(f"#m-{target.id}").is_visible()
    # The hit is on the branch the conversation does not continue from: the page says so.
    assert p.locator(".banner").is_visible()
    box, view = p.locator(f"#m-{hit.id}").bounding_box(), p.viewport_size
    assert box is not None and view is not None and 0 <= box["y"] < view["height"]


def test_the_branch_switcher_moves_between_answers(page: Watched, web: WebServer, store: Any) -> None:
    p = page.page
    p.goto(web.url("/c/coffee"))
    question = store.path("coffee")[1]
    answers = [m.id for m in store.children(question.id)]
    current = store.get_message(store.path("coffee")[2].id)
    assert current.id == answers[1]
    switcher = p.locator(f"#m-{current.id} .siblings")
    assert switcher.locator(".position").inner_text() == "2 / 2"
    with p.expect_navigation():
        switcher.locator("button[aria-label='Previous version']").click()
    assert p.locator(f"#m-{answers[0]} .content").inner_text() == "A flat white. Try an espresso machine."
    assert store.get_conversation("coffee").head_id == answers[0]
    p.locator(f"#m-{answers[0]}").scroll_into_view_if_needed()
    screenshot(p, "branches")
    with p.expect_navigation():
        p.click(f"#m-{answers[0]} .siblings button[aria-label='Next version']")
    assert store.get_conversation("coffee").head_id == store.path("coffee", head_id=None)[-1].id
    assert len(store.path("coffee")) == 7


def test_rename_tag_pin_archive_and_delete_from_the_page(page: Watched, web: WebServer, store: Any) -> None:
    conversation = store.conversation("organize-me", create=True, title="Untidy")
    conversation.append({"role": "user", "content": "Keep me tidy."})
    p = page.page
    p.goto(web.url("/c/organize-me"))
    p.click("summary:has-text('Rename')")
    p.fill("input[name=title]", "Tidy now")
    p.click("form[hx-post$='/rename'] button")
    p.wait_for_selector("h1:has-text('Tidy now')")
    p.wait_for_selector("#conversation-list .current .item-title:has-text('Tidy now')")
    p.click("summary:has-text('Tag')")
    p.fill("input[name=tag]", "Chores")
    p.click("form[hx-post$='/tags'] button")
    p.wait_for_selector(".conversation-head .tag:has-text('chores')")
    p.click(".conversation-head .tag-filter:has-text('chores')")  # a tag lists its conversations
    p.wait_for_selector("#conversation-list .list-note:has-text('Tagged')")
    assert _titles(p) == ["Tidy now"]
    p.click(".toolbar button:has-text('Pin')")
    p.wait_for_selector(".toolbar button:has-text('Unpin')")
    p.wait_for_function("() => document.querySelector('#conversation-list .conversation-item').classList.contains('current')")
    assert store.get_conversation("organize-me").pinned and store.get_conversation("organize-me").tags == ("chores",)
    p.click(".toolbar button:has-text('Archive')")
    p.wait_for_selector(".toolbar button:has-text('Unarchive')")
    p.wait_for_function("() => !document.querySelector('#conversation-list a[href=\"/c/organize-me\"]')")
    p.click(".filters button:has-text('Archive')")
    p.wait_for_selector("#conversation-list a[href='/c/organize-me']")
    p.click("summary:has-text('Delete')")
    with p.expect_navigation():
        p.click("button:has-text('Delete the conversation')")
    assert p.url == web.url("/")
    assert "organize-me" not in [r.id for r in store.list_conversations(limit=None)]


def test_export_downloads_the_conversation(page: Watched, web: WebServer) -> None:
    p = page.page
    p.goto(web.url("/c/coffee"))
    p.locator("main").evaluate("(main) => { main.scrollTop = 0; }")
    p.click("summary:has-text('Export')")
    for label, name in (("Markdown", "coffee.md"), ("HTML page", "coffee.html"), ("Messages JSON", "coffee.json")):
        with p.expect_download() as started:
            p.click(f".exports a:has-text('{label}')")
        download = started.value
        assert download.suggested_filename == name
        with open(download.path(), encoding="utf-8") as exported:
            assert "clear: drink it outside" in exported.read()


def test_a_long_conversation_opens_at_its_end_and_loads_earlier_pages_on_scroll(page: Watched, web: WebServer) -> None:
    p = page.page
    p.goto(web.url("/c/long"))
    messages = "#messages > .message"
    assert p.locator(messages).count() == PAGE
    assert p.locator("#messages > .message .content").last.inner_text() == "Message number 999."
    first_shown = p.locator(messages).first.get_attribute("id")
    p.locator("main").evaluate("(main) => { main.scrollTop = 0; }")
    p.wait_for_function(f"() => document.querySelectorAll('{messages}').length === {2 * PAGE}")
    # The reader stays where they were: the message that was first is still on screen, not pushed away.
    box = p.locator(f"#{first_shown}").bounding_box()
    assert box is not None and 0 <= box["y"] < 800
    assert p.locator(messages).count() == 2 * PAGE  # and nothing more was loaded by itself


def test_the_keyboard_reaches_everything(page: Watched, web: WebServer) -> None:
    p = page.page
    p.goto(web.url("/c/older-0"))
    p.keyboard.press("Tab")
    assert p.evaluate("() => document.activeElement.className") == "skip-link"
    order = _titles(p)
    with p.expect_navigation():
        p.keyboard.press("k")
    assert p.inner_text("#conversation-list .current .item-title") == order[order.index("Trip to Lisbon") - 1]
    with p.expect_navigation():
        p.keyboard.press("j")
    assert p.inner_text("#conversation-list .current .item-title") == "Trip to Lisbon"
    p.keyboard.press("i")
    assert p.evaluate("() => document.activeElement.id") == "prompt"
    p.keyboard.type("n")  # typing in the message box is typing, not a shortcut
    assert p.input_value("#prompt") == "n"
    with p.expect_navigation():
        p.keyboard.press("Alt+n")
    assert p.url == web.url("/new")
    # Landmarks and headings a screen reader can follow.
    assert p.locator("nav[aria-label='Conversations']").count() == 1 and p.locator("main").count() == 1
    assert p.locator("form[role=search] label").inner_text() == "Search every message"
