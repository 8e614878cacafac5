"""``chatkeep serve`` in a real browser: a 10,000-message conversation opened, and a 100,000-conversation sidebar.

Builds one SQLite store (WAL, synchronous=NORMAL) holding 100,000 two-message
conversations and one conversation of 10,000 messages (Markdown paragraphs, a
fenced Python block in every tenth), serves it with the application
``chatkeep serve`` runs (uvicorn on loopback, in this process), and times it
in headless Chromium (Debian's, driven by Playwright) by the browser's own
clock: from the start of navigation to the first frame drawn after the load
event (the stylesheet, the scripts and the layout included).

Rows, each the median of several runs, the paged and whole pages alternating:

- open the 10,000-message conversation as ``chatkeep serve`` shows it (its
  last page of messages; earlier ones load as the reader scrolls up);
- the baseline, in the same run: the same page with paging turned off, every
  message of the branch rendered (Markdown, highlighting and sanitizing
  included), as a page without paging would;
- ``chatkeep show`` of the same conversation, piped (a second reference: the
  whole branch in a terminal, Python's start-up included);
- one earlier page, fetched by the page as the reader scrolls up;
- the home page of the 100,000-conversation store (its sidebar: pinned
  first, then the newest), and the sidebar's next page.

Run: .venv/bin/python benchmarks/web_open.py [--messages 10000] [--conversations 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser import WebServer  # noqa: E402  (the tests' loopback server for the application)
from chatkeep import open_store  # noqa: E402
from chatkeep.store import Draft  # noqa: E402
from chatkeep.store.bulk import ImportConversation, ImportMessage  # noqa: E402
from chatkeep.web import views  # noqa: E402

CHROMIUM = os.environ.get("CHATKEEP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Navigation start to the first frame after the load event, in milliseconds, by the page's own clock.
DRAWN = """() => new Promise((done) => {
  const finish = () => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())));
  if (document.readyState === 'complete') finish(); else addEventListener('load', finish);
})"""
FETCH = """async (url) => { const t = performance.now(); const r = await fetch(url); await r.text();
  return performance.now() - t; }"""


def message_text(number: int) -> str:
    text = (f"Answer {number}: a paragraph with **bold** and `code`, then a list:\n\n- one point\n- another point\n\n"
            "Some more prose to make the message as long as a real reply usually is, about two lines on screen.")
    if number % 10 == 0:
        text += "\n\n```python\ndef step(n: int) -> int:\n    return n * 2  # doubled\n```"
    return text


def build(folder: Path, messages: int, conversations: int) -> tuple[Any, str]:
    store = open_store(folder / "web.db")
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    batch: list[ImportConversation] = []
    for number in range(conversations):
        moment = start + timedelta(minutes=number)
        batch.append(ImportConversation(
            [ImportMessage({"role": "user", "content": f"Question {number} about topic {number % 97}"}, key="q"),
             ImportMessage({"role": "assistant", "content": f"Reply {number}"}, key="a", parent_key="q")],
            key=f"bench:{number}", title=f"Conversation {number}", created_at=moment, updated_at=moment))
        if len(batch) == 5_000:
            store.import_conversations(batch)
            batch = []
    if batch:
        store.import_conversations(batch)
    long = store.create_conversation("long", title="Ten thousand messages")
    for first in range(0, messages, 1_000):
        store.append_many(long.id, [Draft({"role": "user" if n % 2 == 0 else "assistant", "content": message_text(n)})
                                    for n in range(first, min(messages, first + 1_000))])
    return store, long.id


def open_time(browser: Any, url: str, expect: int | None = None) -> float:
    """Open ``url`` in a new tab (no earlier page to unload) and return when it was drawn; the tab is closed."""
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        page.goto(url, wait_until="commit")
        drawn = float(page.evaluate(DRAWN))
        if expect is not None:
            shown = page.locator("#messages > .message").count()
            assert shown == expect, (url, shown, expect)
        return drawn
    finally:
        page.close()


def show_time(db: Path, conversation_id: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHATKEEP_"))}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "chatkeep", "show", conversation_id, "--db", str(db)], env=env,
                   stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        store, long_id = build(Path(tmp), args.messages, args.conversations)
        print(f"built {args.conversations:,} conversations and one of {args.messages:,} messages "
              f"in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rows: dict[str, list[float]] = {k: [] for k in ("paged", "whole", "show", "earlier", "home", "next")}
        paged_size = views.PAGE
        with WebServer(store) as web, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            url = web.url(f"/c/{long_id}")
            open_time(browser, url)  # the browser's own start, untimed
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(url)
            first = page.locator("#messages > .message").first.get_attribute("data-id")
            for run in range(args.runs):
                for kind in (("whole", "paged") if run % 2 == 0 else ("paged", "whole")):
                    views.PAGE = paged_size if kind == "paged" else args.messages * 2
                    rows[kind].append(open_time(browser, url, paged_size if kind == "paged" else args.messages))
                views.PAGE = paged_size
                rows["earlier"].append(float(page.evaluate(FETCH, f"/m/{first}/before")))
                rows["show"].append(show_time(Path(tmp) / "web.db", long_id))
                rows["home"].append(open_time(browser, web.url("/")))
                rows["next"].append(float(page.evaluate(FETCH, "/sidebar?offset=50")))
            browser.close()
        store.close()
    median = {k: statistics.median(v) for k, v in rows.items()}
    print(f"Median of {args.runs} runs; {args.conversations:,} conversations in the store; SQLite with WAL and "
          f"synchronous=NORMAL; Chromium {_version()} headless; the page shows {paged_size} messages at first.\n")
    print("| what | median (ms) | against chatkeep serve's page |")
    print("|---|---|---|")
    print(f"| open the {args.messages:,}-message conversation: chatkeep serve | {median['paged']:.0f} | 1.0x |")
    print(f"| the same page without paging (every message rendered) | {median['whole']:.0f} | "
          f"{median['whole'] / median['paged']:.1f}x |")
    print(f"| `chatkeep show` of the conversation, piped | {median['show']:.0f} | {median['show'] / median['paged']:.1f}x |")
    print(f"| load the {paged_size} messages before, scrolling up | {median['earlier']:.0f} | |")
    print(f"| open the home page ({args.conversations:,} conversations in the sidebar) | {median['home']:.0f} | |")
    print(f"| load the sidebar's next page | {median['next']:.0f} | |")


def _version() -> str:
    done = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.split()[1] if done.stdout.split()[1:] else "?"


if __name__ == "__main__":
    main()
