"""Retention: prune removes exactly what --dry-run lists, with its search entries and attachments, on both databases.

On SQLite the removed text must be gone from the files themselves (the database, its
-wal and -shm), and the file must shrink.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from chatkeep import StoreError, open_store
from chatkeep.store.bulk import ImportConversation, ImportMessage
from chatkeep.store.prune import plan_prune, prune
from clitools import environment, run

LONG_AGO = datetime.now(timezone.utc) - timedelta(days=200)
# Words that share no first letter with the other words here, so the search index keeps each in full.
OLD_WORD, SHARED_WORD, RECENT_WORD = "qoxwuvjolt", "kyzzrphint", "vawlumbreq"


def blob(marker: str) -> bytes:
    """A PNG-looking payload (big enough to be kept as an attachment) that holds ``marker`` in its bytes."""
    return b"\x89PNG\r\n\x1a\n" + marker.encode() * 4 + bytes(range(256)) * 8


def with_image(text: str, data: bytes) -> dict[str, Any]:
    return {"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()}},
    ]}


def old(conversation_id: str, *messages: dict[str, Any]) -> ImportConversation:
    return ImportConversation([ImportMessage(m, key=f"{conversation_id}-{n}", created_at=LONG_AGO)
                               for n, m in enumerate(messages)],
                              key=f"test:{conversation_id}", id=conversation_id, created_at=LONG_AGO,
                              updated_at=LONG_AGO)



def populate(store: Any) -> None:
    """Old conversations (one pinned, one tagged to keep, one sharing an attachment) and a recent one."""
    store.import_conversations([
        old("old-alone", with_image(f"{OLD_WORD} alone", blob("ALONEBYTES")),
            {"role": "assistant", "content": f"{OLD_WORD} answered " + "padding " * 400}),
        old("old-sharing", with_image(f"{SHARED_WORD} shared", blob("SHAREDBYTES"))),
        old("old-pinned", {"role": "user", "content": "pinned long ago"}),
        old("old-tagged", {"role": "user", "content": "tagged long ago"}),
    ])
    store.set_pinned("old-pinned")
    store.add_tags("old-tagged", ["keep"])
    recent = store.conversation("recent", create=True)
    recent.append(with_image(f"{RECENT_WORD} again", blob("SHAREDBYTES")))


def test_prune_removes_exactly_the_plan_and_what_only_it_used(store: Any) -> None:
    populate(store)
    attachments = store.attachment_stats()["attachments"]
    plan = plan_prune(store, timedelta(days=90), keep_tags=["Keep"], keep_pinned=True)
    assert [c.id for c in plan.conversations] == ["old-alone", "old-sharing"]
    assert (plan.messages, plan.attachments, sorted(plan.kept)) == (3, 1, ["old-pinned", "old-tagged"])
    assert store.count_conversations() == 5  # planning changes nothing

    report = prune(store, plan)
    assert report.removed == plan.conversations and report.skipped == () and report.attachments == 1
    assert sorted(r.id for r in store.list_conversations(limit=None)) == ["old-pinned", "old-tagged", "recent"]
    assert store.search(OLD_WORD) == [] and store.search(SHARED_WORD) == []
    assert [hit.message.conversation_id for hit in store.search(RECENT_WORD)] == ["recent"]
    assert store.attachment_stats()["attachments"] == attachments - 1
    # The attachment the recent conversation shares stays, and reads back whole.
    assert store.conversation("recent").messages == [with_image(f"{RECENT_WORD} again", blob("SHAREDBYTES"))]
    assert store.check_integrity() == []


def test_without_keep_rules_old_pinned_and_tagged_conversations_go_too(store: Any) -> None:
    populate(store)
    plan = plan_prune(store, timedelta(days=90))
    assert sorted(c.id for c in plan.conversations) == ["old-alone", "old-pinned", "old-sharing", "old-tagged"]
    assert prune(store, plan).removed == plan.conversations
    assert [r.id for r in store.list_conversations()] == ["recent"]


def test_a_conversation_that_changed_after_planning_is_skipped(store: Any) -> None:
    populate(store)
    plan = plan_prune(store, timedelta(days=90), keep_pinned=True, keep_tags=["keep"])
    store.conversation("old-alone").append({"role": "user", "content": "I am back"})
    store.set_pinned("old-sharing")
    report = prune(store, plan)
    assert report.removed == () and [c.id for c in report.skipped] == ["old-alone", "old-sharing"]
    assert store.count_conversations() == 5


def test_nothing_old_means_nothing_to_do(store: Any) -> None:
    store.conversation("recent", create=True).append({"role": "user", "content": "hello"})
    plan = plan_prune(store, timedelta(hours=1))
    assert plan.conversations == () and prune(store, plan).removed == ()
    with pytest.raises(StoreError, match="must be positive"):
        plan_prune(store, timedelta(0))


def files_of(db: Path) -> bytes:
    return b"".join(Path(f"{db}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm")
                    if Path(f"{db}{suffix}").exists())


def test_pruning_leaves_no_trace_in_the_sqlite_files_and_shrinks_them(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with open_store(db) as store:
        populate(store)
        store.import_conversations([old(f"bulk-{n}", {"role": "user", "content": f"{OLD_WORD} {n} " + "z" * 3000})
                                    for n in range(50)])
        for n in range(30):  # the search index merges segments as it grows: old pages on the freelist
            store.conversation("recent").append({"role": "user", "content": f"recent message {n}"})
        with sqlite3.connect(db) as other:  # as SQLite does every 1,000 pages: the rows now sit in the file itself
            assert other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        before, size = files_of(db), os.path.getsize(db)
        assert OLD_WORD.encode() in before and b"ALONEBYTES" in before  # the scan sees what is there
        report = prune(store, plan_prune(store, timedelta(days=90), keep_pinned=True, keep_tags=["keep"]))
        assert len(report.removed) == 52
        assert report.scrubbed is not None and report.scrubbed.log_cleared
        assert report.scrubbed.bytes_after < report.scrubbed.bytes_before
        after = files_of(db)
        assert OLD_WORD.encode() not in after and SHARED_WORD.encode() not in after
        assert b"ALONEBYTES" not in after and b"SHAREDBYTES" in after  # the shared one is still used
        assert RECENT_WORD.encode() in after
        assert store.check_integrity() == []
    assert os.path.getsize(db) < size // 4  # the freed pages were given back: the file shrank
    print(f"\nprune figures: the file was {size:,} bytes, {os.path.getsize(db):,} after")


# -- the command line --------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(request.getfixturevalue("postgres_url")) if request.param == "postgres" else str(tmp_path / "cli.db")


def test_the_cli_prunes_exactly_what_the_dry_run_listed(target: str, tmp_path: Path) -> None:
    with open_store(target) as store:
        populate(store)
    env = environment(Path(target)) if "://" not in target else {**environment(tmp_path / "x.db"), "CHATKEEP_DB": target}
    listed = run(env, "prune", "--older-than", "90d", "--keep-pinned", "--keep-tag", "keep", "--dry-run", "--json")
    assert listed.code == 0, listed.err
    planned = [c["id"] for c in json.loads(listed.out)["conversations"]]
    assert planned == ["old-alone", "old-sharing"]
    text = run(env, "prune", "--older-than", "90d", "--keep-pinned", "--keep-tag", "keep", "--dry-run")
    assert text.out.startswith("Would remove 2 conversations (3 messages, 1 attachments) last active before ")
    assert [line.split("\t")[0] for line in text.out.splitlines()[1:]] == planned
    refused = run(env, "prune", "--older-than", "90d", "--keep-pinned", "--keep-tag", "keep")
    assert refused.code == 1 and refused.err == "chatkeep: refusing to go on without confirmation: pass --yes\n"
    done = run(env, "prune", "--older-than", "90d", "--keep-pinned", "--keep-tag", "keep", "--yes", "--json")
    assert done.code == 0, done.err
    assert [c["id"] for c in json.loads(done.out)["removed"]] == planned
    with open_store(target) as store:
        assert sorted(r.id for r in store.list_conversations(limit=None)) == ["old-pinned", "old-tagged", "recent"]


def test_prune_with_no_span_uses_the_retention_setting(tmp_path: Path) -> None:
    db, settings = tmp_path / "chat.db", tmp_path / "settings.toml"
    with open_store(db) as store:
        populate(store)
    env = environment(db, CHATKEEP_CONFIG=str(settings))
    missing = run(env, "prune", "--yes")
    assert missing.code == 1 and missing.err.startswith("chatkeep: prune needs --older-than SPAN (such as 90d), or a "
                                                        "retention setting: chatkeep config set retention 90d")
    settings.write_text('retention = "90d"\n')
    done = run(env, "prune", "--yes")
    assert done.code == 0, done.err
    assert done.out.startswith("Removed 4 conversations (5 messages, 1 attachments)\n")
    assert f"{db}: " in done.out  # the file's size before and after
    with open_store(db) as store:
        assert [r.id for r in store.list_conversations()] == ["recent"]
    settings.write_text('retention = "1000d"\n')
    assert run(env, "prune", "--yes").out.startswith("Nothing to remove: no conversation last active before ")
    bad = run(env, "prune", "--older-than", "3 months", "--yes")
    assert bad.code == 2 and "expected a span such as 12h, 90d, 6w or 1y" in bad.err
