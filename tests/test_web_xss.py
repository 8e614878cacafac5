"""No script from stored content ever runs in the page.

Every payload below tries to run ``window.__xss = ...`` or to open a dialog,
from every place stored text reaches the page: message content (Markdown and
raw HTML), titles, tags, tool names and arguments, tool results, file names,
model names, error texts and search snippets. The pages are opened twice:
as served (the Content-Security-Policy forbids inline script), and with that
policy switched off in the browser, which proves the rendering and the
sanitizer alone stop every payload. Afterwards no flag is set, no dialog
opened, and the DOM holds no script element, event attribute or
``javascript:`` address that came from content.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[test]')")

from browser import WebServer, chromium, open_page  # noqa: F401  (chromium: the module's browser)
from chatkeep import open_store

# Each payload tries to set window.__xss (or open a dialog) its own way.
PAYLOADS = [
    "<script>window.__xss = 'script tag'</script>",
    "<img src=x onerror=\"window.__xss='img onerror'\">",
    "<svg onload=\"window.__xss='svg onload'\"><script>window.__xss='svg script'</script></svg>",
    "<svg><animate onbegin=\"window.__xss='animate'\" attributeName=x dur=1s>",
    "<iframe srcdoc=\"<script>parent.__xss='iframe'</script>\"></iframe>",
    "<a href=\"javascript:window.__xss='raw link'\">click</a>",
    "[markdown link](javascript:window.__xss='md%20link')",
    "[spaced link]( JaVaScRiPt:window.__xss='case')",
    "[entity link](&#106;avascript:window.__xss='entity')",
    "[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![image](x\" onerror=\"window.__xss='md image')",
    "![image](javascript:window.__xss='md image js')",
    "[ref link][r]\n\n[r]: javascript:window.__xss='reference'",
    "<details open ontoggle=\"window.__xss='details'\">x</details>",
    "<div style=\"background:url(javascript:window.__xss='css')\">styled</div>",
    "<math><mtext><table><mglyph><style><img src=x onerror=\"window.__xss='mxss'\">",
    "<form action=\"javascript:window.__xss='form'\"><button>go</button></form>",
    "<object data=\"javascript:window.__xss='object'\"></object>",
    "<base href=\"javascript:window.__xss='base'//\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:window.__xss='meta'\">",
    "```html\n<script>window.__xss='fenced'</script>\n```",
    "```\"><script>window.__xss='fence info'</script>\nx\n```",
    "`<script>window.__xss='code span'</script>`",
    "<scr<script>ipt>window.__xss='nested'</scr</script>ipt>",
    "\"><script>window.__xss='attribute break'</script>",
    "'; window.__xss='js string'; '",
    "{{ 7*7 }} {% raw %}window.__xss='template'{% endraw %}",
    "<style>@import 'javascript:window.__xss=1';</style>",
    "<a href=\"#\" onclick=\"window.__xss='onclick'\" class=\"regenerate\" data-url=\"/c/x/delete\">regenerate</a>",
    "<button class=\"copy\" onclick=\"alert('button')\">Copy</button><input autofocus onfocus=\"alert('focus')\">",
]
ATTACK = "\n\n".join(PAYLOADS)
SHORT = "<img src=x onerror=alert('title')><script>window.__xss='short'</script>\"'><svg onload=alert(1)>"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    opened = open_store(tmp_path_factory.mktemp("web-xss") / "xss.db")
    _plant(opened)
    yield opened
    opened.close()


def _plant(store: Any) -> None:
    conversation = store.conversation("hostile", create=True, title=SHORT)
    store.add_tags("hostile", [SHORT[:60], "<b onmouseover=alert(1)>tag</b>"])
    conversation.append({"role": "system", "content": ATTACK})
    asked = conversation.append({"role": "user", "content": [
        {"type": "text", "text": ATTACK},
        {"type": "file", "file": {"filename": SHORT, "file_data": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="}},
        {"type": "image_url", "image_url": {"url": "javascript:window.__xss='image url'"}},
        {"type": "image_url", "image_url": {"url": "https://tracker.example/pixel.png?\"><script>alert(1)</script>"}},
    ]})
    conversation.append({"role": "assistant", "content": ATTACK, "reasoning_content": ATTACK,
                         "refusal": SHORT}, model=SHORT)
    conversation.append({"role": "user", "content": "search me " + SHORT})
    conversation.append({"role": "assistant", "content": None, "tool_calls": [{
        "id": SHORT, "type": "function", "function": {"name": SHORT, "arguments": ATTACK}}]})
    conversation.append({"role": "tool", "tool_call_id": SHORT, "content": ATTACK})
    failed = conversation.append({"role": "user", "content": "unanswered " + SHORT})
    store.update_message(failed.id, status="error", error=SHORT)
    conversation.append({"role": "assistant", "content": ATTACK}, parent_id=asked.id)  # a branch: a switcher
    store.conversation(SHORT, create=True, title=None).append({"role": "user", "content": SHORT})  # hostile id


@pytest.fixture(scope="module")
def web(store: Any) -> Iterator[WebServer]:
    with WebServer(store) as running:
        yield running


# Script elements and event attributes anywhere in the page but chatkeep's own files, javascript: URLs anywhere.
_DOM_CHECK = """() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    if (el.tagName === 'SCRIPT' && !/^\\/static\\/(htmx\\.min|app|theme)\\.js\\?v=/.test(el.getAttribute('src') || '')) found.push('script');
    if (['IFRAME', 'OBJECT', 'EMBED', 'BASE', 'FORM', 'SVG', 'MATH', 'STYLE'].includes(el.tagName.toUpperCase())
        && el.closest('.content, .tool-call, .attachments, .reasoning')) found.push(el.tagName);
    for (const attr of el.attributes) {
      if (/^on/i.test(attr.name)) found.push(el.tagName + ' ' + attr.name);
      if (/^\\s*(javascript|data|vbscript):/i.test(attr.value) && ['href', 'src', 'action', 'formaction', 'data'].includes(attr.name)) found.push(el.tagName + ' ' + attr.name + '=' + attr.value);
      if (attr.name === 'style' && el.closest('.content, .tool-call')) found.push('style attribute');
    }
  }
  return found;
}"""


def _visit(watched: Any, url: str) -> None:
    page = watched.page
    page.goto(url)
    page.wait_for_load_state("networkidle")
    for details in page.locator("details").all():  # open every fold: reasoning, tool calls, menus
        details.evaluate("(d) => { d.open = true; }")
    for link in page.locator(".content a").all()[:20]:
        link.evaluate("(a) => a.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))")
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.__xss") is None, url
    assert page.evaluate(_DOM_CHECK) == [], url
    assert watched.dialogs == [], url


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["as-served", "without-csp"])
def test_no_script_from_content_runs(chromium: Any, web: WebServer, store: Any, bypass_csp: bool) -> None:
    from chatkeep.web.app import conversation_url

    watched = open_page(chromium, bypass_csp=bypass_csp)
    try:
        _visit(watched, web.url("/c/hostile"))
        page = watched.page
        # The text is shown as text: the payloads are there to read, not to run.
        assert "<script>window.__xss = 'script tag'</script>" in page.inner_text("#messages")
        assert SHORT in page.inner_text("#conversation-title")
        # Remote images are never loaded: they are links (and the policy forbids them anyway).
        assert page.locator(".attachment img").count() == 0
        branch = store.path("hostile")
        _visit(watched, web.url(f"/c/hostile?at={store.children(branch[1].id)[0].id}"))  # the other branch
        _visit(watched, web.url(conversation_url(SHORT)))
        _visit(watched, web.url("/"))
        page.fill("#search", "search me")
        page.locator("#search-results .result").first.wait_for()
        page.wait_for_timeout(200)
        assert page.evaluate("() => window.__xss") is None and page.evaluate(_DOM_CHECK) == []
        _visit(watched, web.url("/search?q=unanswered"))
        # Clicking what looks like chatkeep's own controls inside content does nothing chatkeep would do.
        _visit(watched, web.url("/c/hostile"))
        before = len(store.path("hostile"))
        for fake in page.locator(".content a:has-text('regenerate'), .content button").all():
            fake.evaluate("(el) => el.click()")
        page.wait_for_timeout(300)
        assert len(store.path("hostile")) == before and watched.dialogs == []
        assert watched.errors == []
    finally:
        watched.page.context.close()


def test_a_file_from_content_is_never_run_even_when_opened_directly(chromium: Any, web: WebServer, store: Any) -> None:
    watched = open_page(chromium)
    try:
        asked = store.path("hostile")[1]
        response = watched.page.request.get(web.url(f"/m/{asked.id}/part/1"))
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"].startswith("attachment;")
        assert "sandbox" in response.headers["content-security-policy"]
    finally:
        watched.page.context.close()
