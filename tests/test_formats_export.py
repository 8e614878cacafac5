"""Exporting conversations: the tutorial's file byte for byte, JSONL round trips, Markdown and HTML that run nothing."""

from __future__ import annotations

import io
import json
import re
import stat
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatkeep import ConversationNotFound, FormatError, MessageNotFound, open_store
from chatkeep.formats import EXPORT_FORMATS, read_conversations, write_conversations
from chatkeep.store import SQLiteStore
from strategies import messages as any_message

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[click](javascript:alert(1))",
           "[again](JaVaScRiPt\\:alert(1))", "&lt;script&gt; stays text", "<a href='javascript:alert(1)'>x</a>"]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    postgres = request.param == "postgres"
    opened = open_store(request.getfixturevalue("postgres_url") if postgres else tmp_path / "x.db")
    yield opened
    opened.close()


def exported(store: SQLiteStore, ids: Any, format: str, **options: Any) -> str:
    out = io.StringIO()
    write_conversations(store, ids, format, out, **options)
    return out.getvalue()


def hostile_conversation(store: SQLiteStore) -> str:
    conversation = store.new_conversation("evil", title="<b>title</b><script>alert('t')</script>")
    for i, text in enumerate(HOSTILE):
        conversation.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    call = {"name": "<img src=x onerror=alert(2)>", "arguments": '{"x": "</pre><script>alert(3)</script>"}'}
    conversation.append({"role": "assistant", "content": None,
                         "tool_calls": [{"id": "<script>", "type": "function", "function": call}]})
    return conversation.id


# -- the tutorial's file --------------------------------------------------------------

def test_messages_export_is_byte_identical_to_the_tutorials_json_dump(samples: Path, store: SQLiteStore,
                                                                     tmp_path: Path) -> None:
    source = samples / "plain/chatgpt-cli_history.json"
    summary = store.import_conversations(read_conversations(source))
    conversation = store.conversation(summary.conversation_ids[0])
    target = tmp_path / "conversation_history.json"
    assert write_conversations(store, conversation.id, "messages", target) == 1
    assert target.read_bytes() == source.read_bytes()  # the sample was written by json.dump(indent=2)
    tutorial = io.StringIO()
    json.dump(conversation.messages, tutorial, indent=2)
    assert exported(store, [conversation.id], "messages") == tutorial.getvalue()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_messages_export_of_a_branch_and_its_limits(samples: Path, store: SQLiteStore, tmp_path: Path) -> None:
    summary = store.import_conversations(read_conversations(samples / "chatgpt/librechat_chatgpt-tree.json"))
    story = next(m for m in store.find_messages(summary.conversation_ids[0], kind="chat")
                 if m.message["content"].startswith("Sure! Here's a short story"))
    branch = json.loads(exported(store, None, "messages", branch=story.id))
    assert [m["content"] for m in branch][-2:] == ["tell me a story", story.message["content"]]
    store.new_conversation("second").append({"role": "user", "content": "hi"})
    target = tmp_path / "out.json"
    with pytest.raises(FormatError, match="the messages format holds one conversation, and 2 were selected"):
        write_conversations(store, None, "messages", target)
    assert not target.exists()
    with pytest.raises(FormatError, match=f"branch {story.id!r} is a message of conversation"):
        write_conversations(store, ["second"], "jsonl", io.StringIO(), branch=story.id)
    with pytest.raises(MessageNotFound):
        write_conversations(store, None, "jsonl", io.StringIO(), branch="nope")
    with pytest.raises(ConversationNotFound):
        write_conversations(store, ["second", "missing"], "markdown", target)
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(FormatError, match="unknown export format 'pdf'"):
        write_conversations(store, None, "pdf", io.StringIO())
    assert EXPORT_FORMATS == ("messages", "jsonl", "markdown", "html", "openwebui")


# -- JSONL ------------------------------------------------------------------------------

def test_jsonl_round_trip_gives_back_the_fine_tuning_file(samples: Path, store: SQLiteStore, tmp_path: Path) -> None:
    source = samples / "finetune/openai-cookbook_drone_training.jsonl"
    store.import_conversations(read_conversations(source))
    target = tmp_path / "out.jsonl"
    assert write_conversations(store, None, "jsonl", target) == 103
    original = sorted(json.dumps(json.loads(line), sort_keys=True) for line in source.read_text().splitlines())
    written = sorted(json.dumps(json.loads(line), sort_keys=True) for line in target.read_text().splitlines())
    assert written == original
    again = open_store(tmp_path / "again.db")
    summary = again.import_conversations(read_conversations(target))
    assert (summary.conversations_created, summary.messages_added) == (103, 309)
    # Importing the export into the first store adds nothing: the records hash the same.
    assert store.import_conversations(read_conversations(target)).messages_added == 0
    again.close()


def test_jsonl_writes_text_as_text(store: SQLiteStore) -> None:
    store.new_conversation("c").append({"role": "user", "content": "Grüße, 世界 🌍"})
    assert exported(store, "c", "jsonl") == '{"messages": [{"role": "user", "content": "Grüße, 世界 🌍"}]}\n'


# -- Markdown and HTML ----------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def tags(page: str) -> list[tuple[str, dict[str, str]]]:
    """Every start tag a browser would see, with its attributes unescaped."""
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser.found


PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "article", "h1", "p", "section", "h2", "div", "pre"}
# No img: an exported document loads nothing, so a message's image is shown as a link to it.
MARKDOWN_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "pre", "code", "em", "strong", "a", "ul", "ol",
                 "li", "blockquote", "hr", "br", "table", "thead", "tbody", "tr", "th", "td", "s"}


def assert_inert(page: str, allowed: set[str]) -> None:
    """No tag beyond the renderer's own, no event handler, no script or data link."""
    for tag, attributes in tags(page):
        assert tag in allowed, f"<{tag}> in the output"
        assert not [name for name in attributes if name.startswith("on")], f"<{tag} {attributes}>"
        for name in ("href", "src"):
            assert not re.match(r"\s*((java|vb)script|data):", attributes.get(name, ""), re.I), f"<{tag} {attributes}>"


def render(markdown: str, *, tables: bool = False) -> str:
    """Markdown as a viewer shows it; ``tables`` adds GitHub's tables and strikethrough."""
    markdown_it = pytest.importorskip("markdown_it")
    # html=True passes raw HTML through, and every link is accepted, as in the laxest renderers.
    md = markdown_it.MarkdownIt("commonmark", {"html": True})
    if tables:
        md.enable(["table", "strikethrough"])
    md.validateLink = lambda url: True
    return str(md.render(markdown))


def assert_turns(rendered: str, messages: int) -> None:
    """One h1 (the title) and one h2 per message: no text of a message renders as either."""
    found = [tag for tag, _ in tags(rendered)]
    assert (found.count("h1"), found.count("h2")) == (1, messages), rendered


def outside_fences(document: str) -> str:
    return re.sub(r"^(`{3,})[^\n]*\n.*?\n\1$", "", document, flags=re.S | re.M)


def test_html_escapes_every_message_and_forbids_scripts(store: SQLiteStore) -> None:
    page = exported(store, hostile_conversation(store), "html")
    assert "<script" not in page and "<img" not in page and "<b>" not in page and "<a " not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&amp;lt;script&amp;gt; stays text" in page
    assert ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            in page)
    assert_inert(page, PAGE_TAGS)
    assert not [attributes for _, attributes in tags(page) if {"src", "href"} & set(attributes)]  # nothing loads
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert "<title>&lt;b&gt;title&lt;/b&gt;&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt;</title>" in page


def test_markdown_escapes_html_outside_code(store: SQLiteStore) -> None:
    document = exported(store, hostile_conversation(store), "markdown")
    prose = outside_fences(document)
    assert "<script" not in prose and "<img" not in prose and "<a " not in prose
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in prose
    assert "&lt;img src=x onerror=alert(1)&gt;" in prose
    assert "javascript:" not in prose.lower() and "javascript\\:" not in prose.lower()
    assert document.startswith("# &lt;b&gt;title&lt;/b&gt;")
    assert "## User\n\n&lt;script&gt;alert(1)&lt;/script&gt;\n" in document
    # The tool call's arguments stay as they are, inside a code block.
    assert '```json\n{"x": "</pre><script>alert(3)</script>"}\n```' in document
    assert_inert(render(document), MARKDOWN_TAGS)


def test_rendered_markdown_keeps_code_as_code_and_runs_nothing(store: SQLiteStore) -> None:
    conversation = store.new_conversation("code")
    conversation.append({"role": "user", "content": "Why does\n```html\n<script>alert(1)</script>\n```\nfail?"})
    conversation.append({"role": "assistant",
                         "content": "Try:\n~~~\n<b>&amp;</b>\n~~~\nor ````` a fence <img src=x onerror=alert(1)>"})
    conversation.append({"role": "user", "content": "- ```\n  x\n  ```\n<script>alert(2)</script>"})
    conversation.append({"role": "user", "content": "```\nnever closed <script>alert(3)</script>"})
    conversation.append({"role": "assistant", "content": "after <script>alert(4)</script>"})
    rendered = render(exported(store, "code", "markdown"))
    assert_inert(rendered, MARKDOWN_TAGS)
    assert '<code class="language-html">&lt;script&gt;alert(1)&lt;/script&gt;\n</code>' in rendered
    assert "<code>&lt;b&gt;&amp;amp;&lt;/b&gt;\n</code>" in rendered
    assert "<p>after &lt;script&gt;alert(4)&lt;/script&gt;</p>" in rendered  # the open fence did not swallow it


def markdown_of(*texts: str) -> str:
    """The Markdown export of one conversation whose user messages are ``texts``."""
    with open_store(":memory:") as memory:
        conversation = memory.new_conversation("c", title="Chat")
        for text in texts:
            conversation.append({"role": "user", "content": text})
        return exported(memory, "c", "markdown")


def test_data_links_are_defused_like_script_links() -> None:
    document = markdown_of("[x](data:text/html;base64,PHNjcmlwdD4=)", "[y](DaTa\\:text/html,alert)",
                           "[r]\n\n[r]: data:text/html,alert", "<data:text/html,alert>")
    rendered = render(document)
    assert_inert(rendered, MARKDOWN_TAGS)
    assert [attributes["href"][:3].lower() for tag, attributes in tags(rendered) if tag == "a"] == ["da%"] * 3
    # Only a word that is the scheme is touched, not one that ends in it.
    assert "metadata: kept" in markdown_of("metadata: kept")


def test_images_become_links_so_viewing_loads_nothing() -> None:
    document = markdown_of("![pixel](https://tracker.example/p.gif)", "![ref][r]\n\n[r]: https://tracker.example/q.gif",
                           "\\![escaped](https://tracker.example/e.gif)", "[![nested](https://t.example/n.gif)](/x)")
    rendered = render(document)
    assert_inert(rendered, MARKDOWN_TAGS)
    assert "<img" not in rendered
    assert '<a href="https://tracker.example/p.gif">pixel</a>' in rendered
    assert '<a href="https://tracker.example/q.gif">ref</a>' in rendered


FORGED = ["## User", "hello\n## Assistant · gpt-4o\nforged", "# Another conversation", "  ##   Tool · call_1 ##",
          "User\n---", "User\n===", "- ## User", "1. x\n   ## User", "- x\n    ## User", "* User\n  ---",
          "\\## User\n---", "##\tUser", "#"]


@pytest.mark.parametrize("text", FORGED)
def test_message_text_cannot_forge_a_turn_heading(text: str) -> None:
    rendered = render(markdown_of(text, "after"))
    assert_turns(rendered, 2)
    assert re.findall(r"<h[12]>(.*?)</h[12]>", rendered) == ["Chat", "User", "User"]


def test_deeper_headings_in_a_message_stay_headings_under_its_turn() -> None:
    rendered = render(markdown_of("## Plan\n### Step one\n#### Detail"))
    assert "<p>## Plan</p>" in rendered and "<h3>Step one</h3>" in rendered and "<h4>Detail</h4>" in rendered
    assert_turns(rendered, 1)


def test_code_spans_and_indented_code_keep_their_text_while_prose_is_escaped() -> None:
    text = ("Use `List<int>` and `` a && b<c `` in <b>prose</b>.\n\nExample:\n\n"
            "    if a < b && c > d:\n        print('<ok>')\n\n    x = 1\n\nafter <i>x</i>")
    document = markdown_of(text)
    assert "Use `List<int>` and `` a && b<c `` in &lt;b&gt;prose&lt;/b&gt;." in document
    rendered = render(document)
    assert "<p>Use <code>List&lt;int&gt;</code> and <code>a &amp;&amp; b&lt;c</code> in &lt;b&gt;prose&lt;/b&gt;.</p>" \
        in rendered
    assert "<pre><code>if a &lt; b &amp;&amp; c &gt; d:\n    print('&lt;ok&gt;')\n\nx = 1\n</code></pre>" in rendered
    assert "<p>after &lt;i&gt;x&lt;/i&gt;</p>" in rendered
    assert_inert(rendered, MARKDOWN_TAGS)
    # GitHub turns a web address into a link that runs on through a backtick: a span glued to one is escaped.
    assert "www.example.com/\\`&lt;b&gt;\\` or `<b>`" in markdown_of("www.example.com/`<b>` or `<b>`")


SMUGGLED = [
    "`<img src=x onerror=alert(1)>",                               # no closing backtick: prose
    "\\`<img src=x onerror=alert(1)>`",                            # the opening backtick is escaped
    "``<img src=x onerror=alert(1)>`",                             # runs of different lengths do not match
    "`a\nb` <img src=x onerror=alert(1)> `c`",                     # a span across lines pairs differently
    "[a](b`) <img src=x onerror=alert(1)> `c`",                    # the link's destination eats the backtick
    '[a](b "x\n`y") <img src=x onerror=alert(1)> `z`',             # so does a title over two lines
    "| `<img src=x onerror=alert(1)>|` |\n|---|---|",              # a table cell ends at the pipe
    "- x\n\n    <img src=x onerror=alert(1)>",                     # indented, yet a list's paragraph
]


@pytest.mark.parametrize("text", SMUGGLED)
def test_backticks_cannot_smuggle_html_out_of_a_code_span(text: str) -> None:
    document = markdown_of(text)
    for tables in (False, True):
        rendered = render(document, tables=tables)
        assert_inert(rendered, MARKDOWN_TAGS)
        assert "<img" not in rendered


markdown_pieces = st.sampled_from([
    "<script>", "</script>", "<img src=x onerror=alert(1)>", "```", "~~~", "````", "`", "\n", "\r", "\r\n", "    ",
    "> ", "- ", "1. ", "[a](", ")", "javascript:", "JAVASCRIPT\\:", "&", "&#60;", "<!--", "-->", "<", ">", "\\",
    "<a href=", "x", " ", "\"", "'", "![i](", "<svg onload=alert(1)>", "[r]: /u \"", "[r]", "<javascript:alert(1)>",
    "```html", "~~~ `x`", "\n\n", "---", "===", "|", "*", "## User", "# ", "#", "![p](https://t.example/p.gif)",
    "data:text/html,", "DaTa\\:", "](", "`<img src=x onerror=alert(1)>`", "``", "List<int>", "|---|", "\t",
])
# Lines that open, close and nest blocks, ended by every line ending Markdown knows.
markdown_lines = st.tuples(st.sampled_from(["", " ", "   ", "    ", "> ", "- ", "  ", "1. ", "[r]: /u \"", "## ", "- ## "]),
                           st.sampled_from(["", "```", "~~~", "````", "```html", "``` `"]),
                           st.lists(markdown_pieces, max_size=4).map("".join)).map("".join)
markdown_texts = st.lists(st.tuples(markdown_lines, st.sampled_from(["\n", "\r", "\r\n", "\n\n"])), max_size=8).map(
    lambda lines: "".join(line + end for line, end in lines))
conversation_ids = markdown_texts.map(lambda text: "x" + "".join(c for c in text if c >= " ").strip())


@settings(max_examples=150, deadline=None)
@given(conversation_id=conversation_ids, title=markdown_texts, texts=st.lists(markdown_texts, min_size=6, max_size=6))
def test_no_message_text_renders_as_html(conversation_id: str, title: str, texts: list[str]) -> None:
    with open_store(":memory:") as memory:
        conversation = memory.new_conversation(conversation_id, title=title)
        conversation.append({"role": "user", "content": texts[0]})
        conversation.append({"role": "assistant", "content": texts[1], "refusal": texts[2]})
        conversation.append({"role": "user", "content": [{"type": "text", "text": texts[3]},
                                                         {"type": "image_url", "image_url": {"url": texts[4]}}]})
        conversation.append({"role": "assistant", "tool_calls": [
            {"id": texts[4], "type": "function", "function": {"name": texts[5], "arguments": texts[3]}}]})
        conversation.append({"role": "tool", "tool_call_id": texts[4], "content": texts[0] + texts[1]})
        document = exported(memory, conversation_id, "markdown")
        for tables in (False, True):
            rendered = render(document, tables=tables)
            assert_inert(rendered, MARKDOWN_TAGS)  # no script, no data: link, no image at all
            assert_turns(rendered, 5)
        assert_inert(exported(memory, conversation_id, "html"), PAGE_TAGS)


def test_markdown_and_html_show_parts_tool_calls_and_status(store: SQLiteStore) -> None:
    conversation = store.new_conversation("parts", title="Parts")
    conversation.append({"role": "user", "content": [{"type": "text", "text": "Look"},
                                                     {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]})
    conversation.append({"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}]},
        model="gpt-4o")
    conversation.append({"role": "tool", "tool_call_id": "call_1", "content": "42"})
    conversation.append({"role": "assistant", "content": "It is 42"}, status="incomplete")
    document = exported(store, "parts", "markdown")
    assert document.startswith("# Parts\n\nConversation parts · created ")
    assert "## User\n\nLook\n\n[image: https://x/a.png]\n" in document
    assert "## Assistant · gpt-4o\n\nTool call lookup (call_1):\n\n```json\n{\"q\": 1}\n```\n" in document
    assert "## Tool · call_1\n\n42\n" in document and "## Assistant · incomplete\n\nIt is 42\n" in document
    page = exported(store, "parts", "html")
    assert "<pre>lookup({&quot;q&quot;: 1}) [call_1]</pre>" in page and "<title>Parts</title>" in page


def test_exporting_everything_reads_the_store_in_pages(store: SQLiteStore, tmp_path: Path) -> None:
    for i in range(230):  # more than two pages of 100
        store.new_conversation(f"c{i:03}", title=f"Chat {i}").append({"role": "user", "content": f"message {i}"})
    target = tmp_path / "all.md"
    assert write_conversations(store, None, "markdown", target) == 230
    document = target.read_text()
    assert sorted(re.findall(r"^# Chat (\d+)$", document, re.M), key=int) == [str(i) for i in range(230)]
    assert document.count("\n---\n") == 229
    page = exported(store, None, "html")
    assert page.count("<article") == 230 and "<title>chatkeep export</title>" in page


# -- round trips, for any valid messages -----------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_message, min_size=1, max_size=6))
def test_any_messages_round_trip_through_the_messages_and_jsonl_formats(
        tmp_path_factory: pytest.TempPathFactory, messages: list[dict[str, Any]]) -> None:
    folder = tmp_path_factory.mktemp("roundtrip")
    with open_store(":memory:") as source:
        conversation = source.new_conversation("c")
        for message in messages:
            conversation.append(message)
        for format in ("messages", "jsonl"):
            target = folder / f"export.{format}"
            write_conversations(source, "c", format, target)
            if format == "messages":
                assert target.read_text() == json.dumps(messages, indent=2)
            with open_store(":memory:") as copy:
                summary = copy.import_conversations(read_conversations(target, format))
                assert copy.conversation(summary.conversation_ids[0]).messages == messages


def test_responses_items_export_as_the_chat_messages_they_amount_to(store: SQLiteStore) -> None:
    conv = store.new_conversation("agent")
    for item in [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}', "id": "fc_1"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "message", "role": "assistant", "id": "msg_1",
         "content": [{"type": "output_text", "text": "It is <b>sunny</b>.", "annotations": []}]},
    ]:
        conv.append(item, kind="response_item")
    messages = json.loads(exported(store, ["agent"], "messages"))
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "weather"
    assert "It is &lt;b&gt;sunny&lt;/b&gt;." in exported(store, ["agent"], "html")
    assert "sunny" in exported(store, ["agent"], "markdown")
