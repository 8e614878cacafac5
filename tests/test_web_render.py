"""What the page makes of stored messages, without a browser: Markdown, sanitizing, folding, attachments."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest

pytest.importorskip("nh3", reason="the web extra is not installed (pip install -e '.[test]')")

from hypothesis import given, settings
from hypothesis import strategies as st

from chatkeep.store.base import StoredMessage
from chatkeep.web.markdown import MARKDOWN_LIMIT, markdown_html
from chatkeep.web.messages import attachment_bytes, message_views, sibling_positions
from test_web_xss import PAYLOADS

_SAFE_TAGS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
              "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "span"}


class _Markup(HTMLParser):
    """Every element and attribute of a fragment, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.unsafe: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SAFE_TAGS:
            self.unsafe.append(tag)
        for name, value in attrs:
            if name.startswith("on") or name in ("style", "src", "srcdoc", "action", "formaction"):
                self.unsafe.append(f"{tag} {name}")
            if name == "href" and re.match(r"\s*[a-z][a-z0-9+.-]*:", value or "", re.I) and not re.match(
                    r"(https?|mailto):", value or "", re.I):
                self.unsafe.append(f"{tag} href={value}")


def _unsafe(fragment: str) -> list[str]:
    parser = _Markup()
    parser.feed(fragment)
    parser.close()
    return parser.unsafe


def _stored(message: dict[str, object], number: int = 0, kind: str = "chat", **fields: object) -> StoredMessage:
    return StoredMessage(f"m{number}", "c", f"m{number - 1}" if number else None, message,  # type: ignore[arg-type]
                         datetime(2026, 1, 1, tzinfo=timezone.utc), kind=kind, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_survives_rendering(payload: str) -> None:
    rendered = str(markdown_html(payload))
    assert _unsafe(rendered) == [], rendered


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>\"'`=/\\:;()[]!*_#-&{} \nabcjavsriptonlde")), max_size=80))
def test_no_text_renders_into_markup_that_runs(text: str) -> None:
    assert _unsafe(str(markdown_html(text))) == []


def test_markdown_is_rendered_and_links_open_safely() -> None:
    rendered = str(markdown_html("**bold** [site](https://example.org) ![cat](https://example.org/cat.png)\n\n"
                                 "```python\nx = 1\n```"))
    assert "<strong>bold</strong>" in rendered
    assert '<a href="https://example.org" target="_blank" rel="noopener noreferrer nofollow">site</a>' in rendered
    assert ">image: cat</a>" in rendered and "<img" not in rendered  # a remote image is a link, never loaded
    assert '<pre class="code"><code><span class="n">x</span>' in rendered


def test_a_huge_text_is_shown_plain_rather_than_rendered() -> None:
    rendered = str(markdown_html("**x** " * (MARKDOWN_LIMIT // 6 + 1)))
    assert rendered.startswith('<pre class="plain">**x**') and "<strong>" not in rendered


def test_tool_calls_fold_their_results_and_reasoning_is_kept_aside() -> None:
    views = message_views([
        _stored({"role": "user", "content": "weather?"}, 0),
        _stored({"role": "assistant", "content": None, "reasoning_content": "Look it up.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}, 1),
        _stored({"role": "tool", "tool_call_id": "call_1", "content": "-3 °C"}, 2),
        _stored({"role": "user", "content": "and now?"}, 3, status="error", error="the model server answered 500"),
    ])
    assert [v.folded for v in views] == [False, False, True, False]
    (call,) = views[1].calls
    assert (call.name, call.arguments, call.result, call.result_id) == ("get_weather", '{\n  "city": "Oslo"\n}', "-3 °C", "m2")
    assert "Look it up." in str(views[1].reasoning[0])
    assert views[3].unanswered == "unanswered: the model server answered 500"


def test_responses_items_are_shown_as_what_they_are() -> None:
    views = message_views([
        _stored({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}, 0,
                kind="response_item"),
        _stored({"type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking."}]}, 1, kind="response_item"),
        _stored({"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"}, 2, kind="response_item"),
        _stored({"type": "function_call_output", "call_id": "c1", "output": "found"}, 3, kind="response_item"),
        _stored({"type": "web_search_call", "status": "completed"}, 4, kind="response_item"),
    ], ends_branch=False)
    assert "hi" in str(views[0].parts[0].html) and "Thinking." in str(views[1].reasoning[0])
    assert views[2].calls[0].result == "found" and views[3].folded
    assert views[4].other is not None and "web_search_call" in views[4].other


def test_siblings_and_attachment_bytes() -> None:
    family = [_stored({"role": "assistant", "content": str(n)}, n) for n in range(3)]
    position = sibling_positions(family[1], family)
    assert position is not None and (position.index, position.count, position.previous_id, position.next_id) == (
        2, 3, "m0", "m2")
    assert sibling_positions(family[0], family[:1]) is None
    message = {"role": "user", "content": [{"type": "text", "text": "x"},
                                           {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                                           {"type": "image_url", "image_url": {"url": "data:image/png;base64,not base64!"}}]}
    assert attachment_bytes(message, 1) == (b"RIFF", "application/octet-stream", "attachment-2")
    assert attachment_bytes(message, 2) is None and attachment_bytes(message, 0) is None
