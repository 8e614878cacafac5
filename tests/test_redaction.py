"""Redaction: the detectors, redacting a store (SQLite and PostgreSQL alike), and redacting at write time.

On SQLite the redacted text must be gone from the files themselves (the database, its
-wal and -shm), not only from the rows.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from chatkeep import Unsupported, open_store
from chatkeep.redact import DETECTORS, Redactor, redact
from chatkeep.store.redaction import redact_store
from clitools import environment, run
from fakeopenai import FakeOpenAI, text

EMAIL, PHONE, CARD = "zoe.quill@example.org", "+1 415-555-0132", "4111 1111 1111 1111"
IBAN, OPENAI_KEY = "DE89 3704 0044 0532 0130 00", "sk-proj-" + "Zq9" * 14
ANTHROPIC_KEY, FILE_NAME = "sk-ant-api03-" + "Yx8" * 12, "payslip (zoe.quill@example.org).pdf"
SECRETS = [EMAIL, PHONE, CARD, IBAN, OPENAI_KEY, ANTHROPIC_KEY]
OTHER_EMAIL = "walt.ember@example.net"


# -- the detectors -------------------------------------------------------------------

@pytest.mark.parametrize(("detector", "found"), [
    ("openai_key", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"),
    ("openai_key", "sk-" + "a1B2c3D4e5" * 4 + "abcdefgh"),
    ("anthropic_key", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345-_x"),
    ("google_key", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("aws_key", "AKIAIOSFODNN7EXAMPLE"),
    ("github_token", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"),
    ("slack_token", "xoxb-1234567890-abcdefghij"),
    ("stripe_key", "sk_live_abcdefghijklmnop1234"),
    ("email", "bob.smith+news@mail.example.co.uk"),
    ("phone", "(415) 555-0132"),
    ("phone", "+44 20 7946 0958"),
    ("card", "4111 1111 1111 1111"),
    ("card", "5500-0000-0000-0004"),
    ("card", "378282246310005"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB82WEST12345698765432"),
])
def test_each_detector_finds_its_kind(detector: str, found: str) -> None:
    redacted, counts = Redactor().redact(f"before {found} after")
    assert (redacted, dict(counts)) == (f"before [redacted:{detector}] after", {detector: 1})


@pytest.mark.parametrize("ordinary", [
    "card 4111 1111 1111 1112 fails the Luhn check",
    "order 1234-5678-9012-3456 is no card",
    "IBAN DE89 3704 0044 0532 0130 01 fails mod-97",
    "sk-learn and scikit-learn are libraries",
    "version 1.2.3 released on 2024-01-15 at 10:30, build 20240115103000",
    "pi is 3.14159265358979 and e is 2.71828",
    "write to me at the office",
])
def test_ordinary_text_is_left_alone(ordinary: str) -> None:
    assert Redactor().redact(ordinary) == (ordinary, {})


def test_an_iban_followed_by_a_word_is_cut_where_it_checks_out() -> None:
    assert Redactor().redact(f"pay {IBAN} BY friday")[0] == "pay [redacted:iban] BY friday"


def test_patterns_of_your_own_and_a_choice_of_detectors() -> None:
    redactor = Redactor(["email"], patterns=[r"Project \w+"])
    assert redactor.names == ["email", "/Project \\w+/"]
    assert redactor.redact(f"Project Falcon: mail {EMAIL} or call {PHONE}")[0] == (
        f"[redacted]: mail [redacted:email] or call {PHONE}")
    with pytest.raises(ValueError, match="unknown detector 'ssn'"):
        Redactor(["ssn"])
    with pytest.raises(ValueError, match="is not a valid regular expression"):
        Redactor(patterns=["(unclosed"])
    assert set(DETECTORS) >= {"openai_key", "anthropic_key", "google_key", "aws_key", "github_token", "slack_token",
                              "stripe_key", "email", "phone", "card", "iban"}


def test_log_lines_mask_every_providers_keys_too() -> None:
    line = redact("rejected AKIAIOSFODNN7EXAMPLE and ghp_abcdefghijklmnopqrstuvwxyz0123456789 and sk-test-12345678")
    assert line == "rejected AKIA*** and ghp_*** and sk-test***"


# -- a store ---------------------------------------------------------------------------

def attachment(marker: str) -> str:
    return base64.b64encode(b"%PDF-1.4 " + marker.encode() * 60 + bytes(range(256)) * 6).decode()


def leaky_conversation(store: Any, conversation_id: str = "leaky") -> None:
    store.create_conversation(conversation_id, title=f"Call {PHONE}")
    conversation = store.conversation(conversation_id)
    conversation.append({"role": "user", "content": [
        {"type": "text", "text": f"My email is {EMAIL} and my card is {CARD}."},
        {"type": "file", "file": {"filename": FILE_NAME,
                                  "file_data": "data:application/pdf;base64," + attachment("PAYSLIP")}},
    ]})
    conversation.append({"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "pay", "arguments": json.dumps({"iban": IBAN, "api_key": OPENAI_KEY})}}]})
    conversation.append({"role": "tool", "tool_call_id": "call_1", "content": f"paid; receipt sent to {EMAIL}"})
    conversation.append({"role": "assistant", "content": f"Done. Keep {ANTHROPIC_KEY} safe."})



def test_a_dry_run_counts_per_detector_and_place_and_changes_nothing(store: Any) -> None:
    leaky_conversation(store)
    before = store.conversation("leaky").messages
    report = redact_store(store, Redactor(), conversation_id="leaky", dry_run=True)
    assert report.counts == {"anthropic_key": 1, "card": 1, "email": 3, "iban": 1, "openai_key": 1, "phone": 1}
    places = {(h.place, h.detector) for h in report.hits}
    assert places == {("content", "email"), ("content", "card"), ("file name", "email"), ("tool arguments", "iban"),
                      ("tool arguments", "openai_key"), ("content", "anthropic_key"), ("title", "phone")}
    assert (report.messages, report.titles, report.dry_run, report.scrubbed) == (4, 1, True, None)
    assert store.conversation("leaky").messages == before


def test_redacting_a_conversation_replaces_every_match_and_keeps_what_the_messages_need(store: Any) -> None:
    leaky_conversation(store)
    store.conversation("other", create=True).append({"role": "user", "content": f"write to {OTHER_EMAIL}"})
    report = redact_store(store, Redactor(), conversation_id="leaky")
    assert report.total == 8 and not report.dry_run
    user, call, result, reply = store.conversation("leaky").messages
    assert user["content"][0]["text"] == "My email is [redacted:email] and my card is [redacted:card]."
    assert user["content"][1]["file"] == {"filename": "payslip ([redacted:email]).pdf",
                                          "file_data": "data:application/pdf;base64," + attachment("PAYSLIP")}
    assert json.loads(call["tool_calls"][0]["function"]["arguments"]) == {
        "iban": "[redacted:iban]", "api_key": "[redacted:openai_key]"}
    assert call["tool_calls"][0]["function"]["name"] == "pay" and call["tool_calls"][0]["id"] == "call_1"
    assert result == {"role": "tool", "tool_call_id": "call_1", "content": "paid; receipt sent to [redacted:email]"}
    assert reply["content"] == "Done. Keep [redacted:anthropic_key] safe."
    assert store.get_conversation("leaky").title == "Call [redacted:phone]"
    assert store.search("quill") == [] and store.search("4111") == [] and store.search("Zq9Zq9") == []
    assert len(store.search("redacted", conversation_id="leaky")) == 4
    assert [h.message.conversation_id for h in store.search("ember")] == ["other"]  # another conversation: untouched
    assert redact_store(store, Redactor(), conversation_id="leaky", dry_run=True).hits == ()
    redact_store(store, Redactor())  # --all
    assert store.conversation("other").messages == [{"role": "user", "content": "write to [redacted:email]"}]
    assert store.check_integrity() == []


_TIMES_AND_IDS = re.compile(rb"\d{4}-\d\d-\d\dt\d\d:\d\d:\d\d\.\d{6}z|(?<![0-9a-z])[0-9a-hjkmnp-tv-z]{26}(?![0-9a-z])")


def files_of(db: Path) -> bytes:
    return b"".join(Path(f"{db}{suffix}").read_bytes() for suffix in ("", "-wal", "-shm")
                    if Path(f"{db}{suffix}").exists())


def test_redaction_leaves_no_trace_in_the_sqlite_files(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with open_store(db) as store:
        leaky_conversation(store)
        for n in range(40):  # enough writes that the search index has merged segments
            store.conversation("leaky").append({"role": "user", "content": f"filler message number {n}"})
        with sqlite3.connect(db) as other:  # as SQLite does every 1,000 pages: the rows now sit in the file itself
            other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        needles = [s.encode() for s in (EMAIL, "zoe.quill", "quill", OPENAI_KEY, "zq9zq9zq9", ANTHROPIC_KEY, CARD,
                                        "4111", IBAN, "370400440532013000", "7946", "0132")]
        assert all(needle.lower() in files_of(db).lower() for needle in needles[:4])  # the scan sees what is there
        report = redact_store(store, Redactor())
        assert report.scrubbed is not None and report.scrubbed.log_cleared
        # Times and ids hold digits by chance (a time's microseconds 794609 hold 7946): they are taken out first.
        data = _TIMES_AND_IDS.sub(b"", files_of(db).lower())
        assert [n for n in needles if n.lower() in data] == []
        assert b"PAYSLIPPAYSLIP" in files_of(db)  # the attachment's bytes are not text: they stay
        assert store.check_integrity() == []


def test_redact_on_write_keeps_matches_from_ever_being_stored(store: Any) -> None:
    store.redactor = Redactor()
    conversation = store.conversation("careful", create=True)
    stored = conversation.append({"role": "user", "content": f"reach me at {EMAIL}"})
    assert stored.message == {"role": "user", "content": "reach me at [redacted:email]"}
    conversation.append({"role": "assistant", "content": "noted"}, status="error", error=f"echoed {OPENAI_KEY}")
    [first, second] = store.path("careful")
    assert first.message["content"] == "reach me at [redacted:email]" and second.error == "echoed [redacted:openai_key]"
    assert store.search("quill") == []
    store.redactor = None
    assert conversation.append({"role": "user", "content": EMAIL}).message["content"] == EMAIL


def test_the_json_file_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Unsupported, match="redact works on SQLite and PostgreSQL stores"):
        redact_store(open_store(tmp_path / "history.json"), Redactor())


# -- the command line --------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgres"])
def cli_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "postgres":
        return {**environment(tmp_path / "unused.db"), "CHATKEEP_DB": str(request.getfixturevalue("postgres_url"))}
    return environment(tmp_path / "cli.db")


def test_the_cli_shows_a_dry_run_then_redacts(cli_env: dict[str, str]) -> None:
    with open_store(cli_env["CHATKEEP_DB"]) as store:
        leaky_conversation(store)
    dry = run(cli_env, "redact", "leaky", "--dry-run")
    assert dry.code == 0, dry.err
    lines = dry.out.splitlines()
    assert lines[0] == "Would redact 8 matches in 4 messages and 1 titles"
    assert lines[1:7] == ["anthropic_key\t1", "card\t1", "email\t3", "iban\t1", "openai_key\t1", "phone\t1"]
    assert "leaky\t-\ttitle\tphone\t1" in lines
    refused = run(cli_env, "redact", "leaky")
    assert refused.code == 1 and refused.err == "chatkeep: refusing to go on without confirmation: pass --yes\n"
    done = run(cli_env, "redact", "--all", "--yes", "--pattern", r"Keep \S+", "--json")
    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert report["counts"] == {"/Keep \\S+/": 1, "card": 1, "email": 3, "iban": 1, "openai_key": 1, "phone": 1}
    with open_store(cli_env["CHATKEEP_DB"]) as store:
        assert store.conversation("leaky").messages[-1]["content"] == "Done. [redacted] safe."
    assert run(cli_env, "redact", "--all", "--dry-run").out == "Nothing to redact: no detector matched\n"
    usage = run(cli_env, "redact")
    assert usage.code == 2 and "name one conversation ID, or pass --all" in usage.err
    unknown = run(cli_env, "redact", "--all", "--only", "ssn")
    assert unknown.code == 2 and "unknown detector 'ssn'" in unknown.err


def test_the_redact_on_write_setting_applies_to_chat(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    db, settings = tmp_path / "chat.db", tmp_path / "settings.toml"
    settings.write_text("redact_on_write = true\n")
    openai_server.script(text(f"I will mail {OTHER_EMAIL}"))
    env = environment(db, openai_server.base_url, CHATKEEP_CONFIG=str(settings))
    result = run(env, "chat", "-m", f"my address is {EMAIL}")
    assert result.code == 0, result.err
    # The model was sent the redacted message: what a turn sends is what is stored.
    assert openai_server.requests[0].body["messages"] == [{"role": "user", "content": "my address is [redacted:email]"}]
    with open_store(db) as store:
        [record] = store.list_conversations()
        assert store.conversation(record.id).messages == [
            {"role": "user", "content": "my address is [redacted:email]"},
            {"role": "assistant", "content": "I will mail [redacted:email]"},
        ]
    assert EMAIL.encode() not in files_of(db) and OTHER_EMAIL.encode() not in files_of(db)
    listed = run(env, "config", "list")
    assert "redact_on_write" in listed.out
