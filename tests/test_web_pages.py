"""``chatkeep serve`` over HTTP: the pages and actions on SQLite and PostgreSQL, and the guard in front of them.

These drive the real application (uvicorn on a loopback port) with a plain
HTTP client; tests/test_web_browser.py and friends drive it in Chromium.
"""

from __future__ import annotations

import base64
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[test]')")

from browser import WebServer
from chatkeep import open_store
from chatkeep.web.views import PAGE
from clitools import environment

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    target = request.getfixturevalue("postgres_url") if request.param == "postgres" else tmp_path / "web.db"
    opened = open_store(target)
    yield opened
    opened.close()


@pytest.fixture
def server(store: Any) -> Iterator[WebServer]:
    with WebServer(store) as running:
        yield running


@pytest.fixture
def filled(store: Any) -> dict[str, str]:
    """Three conversations: one with two answers to a question (two branches), one pinned, one archived."""
    alpha = store.conversation("alpha", create=True, title="Alpha plans")
    alpha.append({"role": "system", "content": "Be brief."})
    question = alpha.append({"role": "user", "content": "How do I brew coffee?"})
    first = alpha.append({"role": "assistant", "content": "Use a **French press**."}, model="gpt-4o",
                         usage={"prompt_tokens": 12, "completion_tokens": 5}, latency_ms=321.0)
    second = alpha.append({"role": "assistant", "content": "Try a pour-over."}, parent_id=question.id,
                          expect_head=question.id)  # the head stays on the first answer: a branch
    store.add_tags("alpha", ["work"])
    beta = store.conversation("beta", create=True, title="Beta pinned")
    beta.append({"role": "user", "content": "Tea, please."})
    store.set_pinned("beta", True)
    gamma = store.conversation("gamma", create=True, title="Gamma archived")
    gamma.append({"role": "user", "content": "Old news."})
    store.set_archived("gamma", True)
    store.conversation("delta", create=True, title="Delta newest").append({"role": "user", "content": "Newest."})
    return {"question": question.id, "first": first.id, "second": second.id}


def _titles(html: str) -> list[str]:
    return re.findall(r'<span class="item-title">(.*?)</span>', html)


def test_the_sidebar_lists_pinned_first_then_newest_and_keeps_the_archive_apart(server: WebServer, filled: Any) -> None:
    with server.http() as http:
        page = http.get("/")
        assert page.status_code == 200
        assert _titles(page.text) == ["Beta pinned", "Delta newest", "Alpha plans"]
        archive = http.get("/sidebar", params={"archived": "1"})
        assert _titles(archive.text) == ["Gamma archived"]
        tagged = http.get("/sidebar", params={"tag": "work"})
        assert _titles(tagged.text) == ["Alpha plans"]


def test_the_sidebar_pages_through_many_conversations(server: WebServer, store: Any) -> None:
    for number in range(120):
        store.create_conversation(f"c{number:03d}", title=f"Conversation {number:03d}")
    with server.http() as http:
        first = http.get("/")
        shown = _titles(first.text)
        assert shown[:2] == ["Conversation 119", "Conversation 118"] and len(shown) == 50
        assert 'hx-get="/sidebar?offset=50"' in first.text
        seen = list(shown)
        offset: str | None = "50"
        while offset is not None:
            more = http.get("/sidebar", params={"offset": offset})
            seen += _titles(more.text)
            found = re.search(r"offset=(\d+)", more.text)
            offset = found.group(1) if found else None
        assert seen == [f"Conversation {n:03d}" for n in range(119, -1, -1)]


def test_a_conversation_shows_its_branch_with_usage_and_a_switcher(server: WebServer, filled: dict[str, str]) -> None:
    with server.http() as http:
        page = http.get("/c/alpha").text
    assert "<strong>French press</strong>" in page and "pour-over" not in page
    assert "12 → 5 tokens" in page and "321 ms" in page and ">gpt-4o<" in page
    switcher = re.search(rf'id="m-{filled["first"]}".*?<span class="position">(.*?)</span>', page, re.S)
    assert switcher is not None and switcher.group(1) == "1 / 2"
    assert f'hx-post="/m/{filled["second"]}/switch"' in page


def test_switching_branches_moves_the_head(server: WebServer, store: Any, filled: dict[str, str]) -> None:
    with server.http() as http:
        done = http.post(f"/m/{filled['second']}/switch", headers={"X-CSRF-Token": server.csrf})
        assert done.status_code == 204 and done.headers["HX-Redirect"].startswith(f"/c/alpha?at={filled['second']}")
        assert store.get_conversation("alpha").head_id == filled["second"]
        assert "pour-over" in http.get("/c/alpha").text


def test_search_highlights_matches_and_links_to_the_message(server: WebServer, filled: dict[str, str]) -> None:
    with server.http() as http:
        found = http.get("/search", params={"q": "coffee"}, headers={"HX-Request": "true"}).text
        assert "<mark>coffee</mark>" in found and "1 message found" in found
        assert f'href="/c/alpha?at={filled["question"]}#m-{filled["question"]}"' in found
        assert "0 messages found" in http.get("/search", params={"q": '"unbalanced (quote -'},
                                              headers={"HX-Request": "true"}).text
        whole = http.get("/search", params={"q": "coffee"}).text  # a whole page without htmx (no script needed)
        assert whole.startswith("<!DOCTYPE html>") and "<mark>coffee</mark>" in whole


def test_a_message_on_another_branch_opens_on_its_branch(server: WebServer, store: Any,
                                                         filled: dict[str, str]) -> None:
    with server.http() as http:
        page = http.get("/c/alpha", params={"at": filled["second"]}).text
    assert "pour-over" in page and "French press" not in page
    assert "Continue from this branch" in page and 'id="composer"' not in page
    assert store.get_conversation("alpha").head_id == filled["first"]  # looking moves nothing


def test_rename_tag_pin_archive_and_delete(server: WebServer, store: Any, filled: Any) -> None:
    with server.http(headers={"X-CSRF-Token": server.csrf}) as http:
        renamed = http.post("/c/alpha/rename", data={"title": "  Coffee   notes "})
        assert renamed.status_code == 200 and renamed.headers["HX-Trigger"] == "conversations-changed"
        assert '<h1 id="conversation-title">Coffee notes</h1>' in renamed.text
        assert http.post("/c/alpha/tags", data={"tag": "Brewing, Home"}).status_code == 200
        untagged = http.post("/c/alpha/untag", data={"tag": "work"})
        assert ">brewing" in untagged.text and ">work" not in untagged.text
        http.post("/c/alpha/pin", data={"on": "1"})
        http.post("/c/beta/archive", data={"on": "1"})
        record = store.get_conversation("alpha")
        assert (record.title, record.tags, record.pinned) == ("Coffee notes", ("brewing", "home"), True)
        assert store.get_conversation("beta").archived
        empty = http.post("/c/alpha/rename", data={"title": "  "})
        assert empty.status_code == 400 and "title" in empty.text
        deleted = http.post("/c/alpha/delete")
        assert deleted.status_code == 204 and deleted.headers["HX-Redirect"] == "/"
        assert http.get("/c/alpha").status_code == 404
    assert [r.id for r in store.list_conversations()].count("alpha") == 0


def test_fork_at_a_message(server: WebServer, store: Any, filled: dict[str, str]) -> None:
    with server.http(headers={"X-CSRF-Token": server.csrf}) as http:
        forked = http.post(f"/m/{filled['question']}/fork")
    new_id = forked.headers["HX-Redirect"].removeprefix("/c/")
    assert [m.message["content"] for m in store.path(new_id)] == ["Be brief.", "How do I brew coffee?"]


@pytest.mark.parametrize("chosen", ["markdown", "html", "messages", "jsonl", "openwebui"])
def test_export_in_every_format(server: WebServer, filled: Any, chosen: str) -> None:
    with server.http() as http:
        exported = http.get("/c/alpha/export", params={"format": chosen})
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith('attachment; filename="alpha.')
    assert "sandbox" in exported.headers["content-security-policy"]
    assert "French press" in exported.text


def test_a_long_conversation_is_read_a_page_at_a_time(server: WebServer, store: Any) -> None:
    from chatkeep.store import Draft

    conversation = store.conversation("long", create=True)
    total = PAGE * 3 + 7
    store.append_many("long", [Draft({"role": "user" if n % 2 == 0 else "assistant", "content": f"message {n}"})
                               for n in range(total)])
    shown: list[int] = []
    with server.http() as http:
        page = http.get("/c/long").text
        shown = [int(n) for n in re.findall(r"<p>message (\d+)</p>", page)]
        assert shown == list(range(total - PAGE, total))
        before = re.search(r'hx-get="/m/(\w+)/before"', page)
        while before is not None:
            earlier = http.get(f"/m/{before.group(1)}/before").text
            shown = [int(n) for n in re.findall(r"<p>message (\d+)</p>", earlier)] + shown
            before = re.search(r'hx-get="/m/(\w+)/before"', earlier)
    assert shown == list(range(total)) and len(conversation) == total


def test_a_message_in_the_middle_opens_with_pages_on_both_sides(server: WebServer, store: Any) -> None:
    from chatkeep.store import Draft

    stored = store.append_many(store.create_conversation("middle").id,
                               [Draft({"role": "user", "content": f"message {n}"}) for n in range(200)])
    with server.http() as http:
        page = http.get("/c/middle", params={"at": stored[100].id}).text
        shown = [int(n) for n in re.findall(r"<p>message (\d+)</p>", page)]
        assert 100 in shown and len(shown) == PAGE and shown[0] > 0 and shown[-1] < 199
        later = re.search(r'hx-get="(/m/\w+/after\?tip=\w+)"', page)
        assert later is not None
        following = [int(n) for n in re.findall(r"<p>message (\d+)</p>", http.get(later.group(1)).text)]
        assert following[0] == shown[-1] + 1


def test_attachments_are_shown_inline_only_when_they_are_safe(server: WebServer, store: Any) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 2000).decode()
    page = base64.b64encode(b"<html><script>alert(1)</script></html>").decode()
    conversation = store.conversation("files", create=True)
    stored = conversation.append({"role": "user", "content": [
        {"type": "text", "text": "Look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "file", "file": {"filename": "x.html", "file_data": f"data:text/html;base64,{page}"}},
    ]})
    with server.http() as http:
        html = http.get("/c/files").text
        assert f'<img src="/m/{stored.id}/part/1"' in html and f'href="/m/{stored.id}/part/2" download' in html
        image = http.get(f"/m/{stored.id}/part/1")
        assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
        assert "sandbox" in image.headers["content-security-policy"]
        download = http.get(f"/m/{stored.id}/part/2")
        assert download.headers["content-type"] == "application/octet-stream"
        assert download.headers["content-disposition"] == 'attachment; filename="x.html"'
        assert http.get(f"/m/{stored.id}/part/7").status_code == 404


# -- the guard (it is the same for every store) ---------------------------------------------------------


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[WebServer]:
    store = open_store(tmp_path / "guard.db")
    store.conversation("alpha", create=True, title="Alpha").append({"role": "user", "content": "hello"})
    with WebServer(store) as running:
        yield running
    store.close()


def test_a_foreign_host_is_refused_on_every_request(sqlite_server: WebServer) -> None:
    with sqlite_server.http() as http:
        for method, path in (("GET", "/"), ("GET", "/c/alpha"), ("GET", "/static/app.js"), ("POST", "/c/alpha/rename")):
            refused = http.request(method, path, headers={"Host": f"rebound.example:{sqlite_server.port}",
                                                          "X-CSRF-Token": sqlite_server.csrf})
            assert refused.status_code == 421, path
            assert "Host" in refused.text
        assert http.get("/", headers={"Host": f"localhost:{sqlite_server.port}"}).status_code == 200


def test_a_change_without_the_csrf_token_is_refused(sqlite_server: WebServer) -> None:
    store = sqlite_server.store
    with sqlite_server.http() as http:
        assert http.post("/c/alpha/rename", data={"title": "x"}).status_code == 403
        assert http.post("/c/alpha/rename", data={"title": "x"}, headers={"X-CSRF-Token": "guess"}).status_code == 403
        assert http.post("/c/alpha/delete").status_code == 403
        assert http.post("/c/alpha/send", data={"text": "hi"}).status_code == 403
        foreign = http.post("/c/alpha/rename", data={"title": "x"},
                            headers={"X-CSRF-Token": sqlite_server.csrf, "Origin": "http://evil.example"})
        assert foreign.status_code == 403 and "Origin" in foreign.text
        assert store.get_conversation("alpha").title == "Alpha"
        same = http.post("/c/alpha/rename", data={"title": "Renamed"},
                         headers={"X-CSRF-Token": sqlite_server.csrf, "Origin": sqlite_server.base})
        assert same.status_code == 200 and store.get_conversation("alpha").title == "Renamed"


def test_every_answer_forbids_outside_resources_and_framing(sqlite_server: WebServer) -> None:
    with sqlite_server.http() as http:
        for path in ("/", "/c/alpha", "/sidebar", "/search?q=hello", "/static/app.css", "/c/missing"):
            answer = http.get(path)
            policy = answer.headers["content-security-policy"]
            assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert answer.headers["x-content-type-options"] == "nosniff", path
        assert http.get("/c/missing").status_code == 404


def test_beyond_loopback_the_printed_token_is_required(tmp_path: Path) -> None:
    store = open_store(tmp_path / "token.db")
    with WebServer(store, token="s3cret-token") as running, running.http() as http:
        assert http.get("/").status_code == 403
        assert http.get("/", params={"token": "wrong"}).status_code == 403
        entered = http.get("/c/x", params={"token": "s3cret-token", "q": "1"})
        assert entered.status_code == 303 and entered.headers["location"] == "/c/x?q=1"
        assert "HttpOnly" in entered.headers["set-cookie"] and "SameSite=Strict" in entered.headers["set-cookie"]
        assert http.get("/").status_code == 200  # the cookie carries the token from now on
    store.close()


def _serve(db: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-m", "chatkeep", "serve", "--port", "0", "--db", str(db), *args],
                               env=environment(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline()


def test_the_serve_command_binds_loopback_and_prints_its_address(tmp_path: Path) -> None:
    import httpx

    db = tmp_path / "served.db"
    open_store(db).conversation("alpha", create=True, title="Served").append({"role": "user", "content": "hi"})
    process, line = _serve(db)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url is not None, line
        assert "Served" in httpx.get(url.group() + "c/alpha", timeout=30).text
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "Traceback" not in err


def test_serving_beyond_loopback_prints_a_token_that_is_required(tmp_path: Path) -> None:
    import httpx

    db = tmp_path / "served.db"
    open_store(db).close()
    process, line = _serve(db, "--host", "0.0.0.0", "--allow-host", "127.0.0.1")
    try:
        found = re.search(r":(\d+)/\?token=([\w-]+)", line)
        assert found is not None, line
        port, token = found.groups()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.get("/").status_code == 403
            assert http.get("/", params={"token": token}, follow_redirects=True).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert "keep it to yourself" in err


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    done = subprocess.run([sys.executable, "-m", "chatkeep", "serve", "--port", str(taken.getsockname()[1]),
                           "--db", str(tmp_path / "busy.db")], env=environment(tmp_path / "busy.db"),
                          capture_output=True, text=True, timeout=60)
    taken.close()
    assert done.returncode == 1 and done.stderr.startswith("chatkeep: cannot listen on 127.0.0.1:")
    assert "Traceback" not in done.stderr


def test_other_commands_never_import_the_web_modules(tmp_path: Path) -> None:
    db = tmp_path / "quiet.db"
    open_store(db).conversation("a", create=True).append({"role": "user", "content": "hi"})
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom chatkeep.cli.app import cli as main\n"
        f"for args in (['list'], ['show', 'a'], ['search', 'hi'], ['--help'], ['serve', '--help']):\n"
        f"    assert CliRunner().invoke(main, [*args, '--db', {str(db)!r}] if args[-1] != '--help' else args).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'jinja2', 'nh3', 'markdown_it')"
        " or m.startswith('chatkeep.web')))"
    )
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
    assert time.monotonic() - started < 60


def test_the_tutorials_json_file_is_shown_too(tmp_path: Path) -> None:
    import json

    history = tmp_path / "conversation_history.json"
    history.write_text(json.dumps([{"role": "user", "content": "Hello **file**"},
                                   {"role": "assistant", "content": "Hi!"}], indent=2))
    store = open_store(history)
    with WebServer(store) as running, running.http() as http:
        home = http.get("/").text
        assert _titles(home) == ["Hello **file**"]  # a title is plain text, made from the first message
        page = http.get("/c/conversation_history").text
        assert "<strong>file</strong>" in page and "Hi!" in page
        assert "/tags" not in page and "Archive" not in page  # the file keeps no tags, pins or archive
        refused = http.post("/c/conversation_history/rename", data={"title": "x"},
                            headers={"X-CSRF-Token": running.csrf})
        assert refused.status_code == 409 and "keeps no title" in refused.text  # said, in one line
    store.close()


def _events(answer: Any) -> list[tuple[str, Any]]:
    import json

    found = []
    for block in answer.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_turns_over_server_sent_events(store: Any, openai_server: Any) -> None:
    from fakeopenai import drop_after, text

    store.conversation("talk", create=True)
    openai_server.script(text("Hello there", chunk_size=4), drop_after(2), text("Edited answer"))
    with WebServer(store, base_url=openai_server.base_url) as running, \
            running.http(headers={"X-CSRF-Token": running.csrf}) as http:
        sent = _events(http.post("/c/talk/send", data={"text": "Hi", "model": "gpt-4o"}))
        kinds = [kind for kind, _ in sent]
        assert kinds[0] == "prompt" and kinds.count("delta") == 3 and kinds[-2:] == ["turn", "end"]
        assert "".join(data for kind, data in sent if kind == "delta") == "Hello there"
        prompt, reply = store.path("talk")
        assert (prompt.text, reply.text, reply.status) == ("Hi", "Hello there", "complete")
        assert f'id="m-{prompt.id}"' in sent[-2][1]["html"] and f'id="m-{reply.id}"' in sent[-2][1]["html"]
        cut = _events(http.post("/c/talk/send", data={"text": "More"}))
        assert [kind for kind, _ in cut][-3:] == ["turn", "error", "end"]
        assert "cannot reach the model server" in cut[-2][1]["message"]
        asked, kept = store.path("talk")[2:]
        assert asked.text == "More" and kept.status == "incomplete"
        assert kept.text and "This reply is cut short".startswith(kept.text)
        edited = _events(http.post(f"/m/{prompt.id}/edit", data={"text": "Hello?"}))
        assert edited[0][0] == "prompt" and edited[0][1]["anchor"] is None
        assert [m.text for m in store.path("talk")] == ["Hello?", "Edited answer"]
        assert openai_server.requests[-1].body["model"] == "gpt-4o-mini"  # the server's default for this page
        empty = http.post("/c/talk/send", data={"text": "  "})
        assert empty.status_code == 400 and empty.text == "the message is empty"
