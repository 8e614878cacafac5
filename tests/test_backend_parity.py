"""SQLite and PostgreSQL give the same answers: the same conversations in both, the same calls, item for item.

Regression tests for issue 14: the model filter was ``LIKE ? || '%'`` on
SQLite (so ``_`` and ``%`` in a model name were wildcards) but a literal
prefix on PostgreSQL, and ``usage_by_model`` counted Responses API usage
(input/output tokens) on SQLite only.

Hits are compared as sets: each database orders them by its own relevance
ranking (bm25 on SQLite, ts_rank on PostgreSQL), so only the number of hits
on a page is compared, not which.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatkeep import open_store
from chatkeep.store.base import StoredMessage
from chatkeep.store.bulk import ImportConversation, ImportMessage

START = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)


def day(n: int, minute: int = 0) -> datetime:
    return START + timedelta(days=n, minutes=minute)


def chat(n: int, role: str, content: str, *, days: int, **source: Any) -> ImportMessage:
    """The ``n``th message of a conversation, one minute after the one before it."""
    return ImportMessage({"role": role, "content": content}, key=str(n), parent_key=str(n - 1) if n else None,
                         created_at=day(days, n), **source)


def item(n: int, body: dict[str, Any], *, days: int, **source: Any) -> ImportMessage:
    return ImportMessage(body, key=str(n), parent_key=str(n - 1) if n else None, created_at=day(days, n),
                         kind="response_item", **source)


def corpus() -> list[ImportConversation]:
    """Several owners and dates, models with LIKE wildcards in their names, odd usage, emoji, CJK and SQL."""
    return [
        ImportConversation([
            chat(0, "system", "You answer questions about the weather.", days=0),
            chat(1, "user", "What is the weather in Paris today? ☕", days=0),
            chat(2, "assistant", "Sunny in Paris, 21 degrees. Bring sunglasses 😎", days=0,
                 model="gpt-4o-2024-08-06", usage={"prompt_tokens": 12, "completion_tokens": 5}),
            chat(3, "user", "私は東京都に住んでいます。週末はパリに行きます。", days=0),
            chat(4, "assistant", "パリの週末は晴れです ☀️", days=0, model="gpt_4o",
                 usage={"prompt_tokens": 7, "completion_tokens": 2}),
        ], id="paris", key="test:paris", title="Weather in Paris ☀️", owner="alice", created_at=day(0)),
        ImportConversation([
            chat(0, "user", "Is 100% of budget_total spent? a_b, 50%_off and C:\\temp\\x", days=40),
            chat(1, "assistant", "Use LIKE 'a\\_b' ESCAPE '\\'; 100% sure. C++ and a=b; '; DROP TABLE messages; --",
                 days=40, model="o1%preview",
                 usage={"prompt_tokens": 4, "completion_tokens": 1, "note": "nul \x00 and \ud800 here"}),
            chat(2, "user", "And in pounds? £ or €", days=40),
            chat(3, "assistant", "About 85 £ per 100 €", days=40, model="o1-preview",
                 usage={"prompt_tokens": "9", "completion_tokens": 2.5}),
            chat(4, "assistant", "A second answer, with no model", days=40),
        ], id="budget", key="test:budget", title="100% Budget_Plan (a_b)", owner="bob", created_at=day(40)),
        ImportConversation([
            item(0, {"type": "message", "role": "user",
                     "content": [{"type": "input_text", "text": "Recommend a café in 京都, please"}]}, days=70),
            item(1, {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}]},
                 days=70, model="gpt-4.1"),
            item(2, {"type": "function_call", "call_id": "c1", "name": "find_cafe", "arguments": '{"city": "京都"}'},
                 days=70, model="gpt-4.1"),
            item(3, {"type": "function_call_output", "call_id": "c1", "output": "Café Kyoto ☕, open 8-18"}, days=70),
            item(4, {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "Try Café Kyoto ☕: great coffee in 京都"}]}, days=70, model="gpt-4.1",
                 usage={"input_tokens": 20, "output_tokens": 9, "total_tokens": 29}),
            item(5, {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "Or Café Kyoto Two"}]}, days=70, model="gpt-4.1",
                 usage={"input_tokens": 3, "output_tokens": 1, "prompt_tokens": 30}),
        ], id="kyoto", key="test:kyoto", title="Cafés in Kyoto", owner="alice", created_at=day(70)),
        ImportConversation([
            chat(0, "user", "Happy birthday 🎂🎉 from 서울", days=100),
            chat(1, "assistant", "Thank you! 🎂 Paris next year?", days=100, model="gpt-4o-mini",
                 usage={"prompt_tokens": 3, "completion_tokens": 4}),
            chat(2, "user", "a NUL\x00inside, a lone \ud800 surrogate and a bell\x07", days=100),
            ImportMessage({"role": "system", "content": "Summary: birthday wishes from Paris"}, key="s",
                          kind="summary", created_at=day(100, 9)),
        ], id="party", key="test:party", title=None, owner=None, created_at=day(100), head_key="2"),
    ]


QUERIES = [
    "paris", "PARIS", "pari*", '"in paris"', "paris -sunny", "NOT paris", "weather paris ☕", "☕", "☕️", "😎", "🎂",
    "☀", "東京", "住んで", "パリ", "週末", "京都", "café", "cafe", "coffee", "서울", "100%", "budget_total",
    "a_b", "50%_off", "c++", "a=b", "£", "€", "drop table", "temp", "'; --", "thinking", "find_cafe", "summary",
    "answer", "kyoto -two", "inside", "nul", "surrogate bell", "nothing-here", "-paris", "", " ".join(f"w{n} paris" for n in range(100)),
]

FILTERS: list[dict[str, Any]] = [
    {}, {"role": "user"}, {"role": "assistant"}, {"role": "tool"}, {"role": "system"},
    {"model": "gpt"}, {"model": "gpt-4o"}, {"model": "gpt_"}, {"model": "gpt_4o"}, {"model": "o1%"},
    {"model": "o1"}, {"model": "%"}, {"model": "_"}, {"model": ""}, {"model": "GPT"},
    {"owner": "alice"}, {"owner": "bob"}, {"owner": "nobody"},
    {"conversation_id": "paris"}, {"conversation_id": "kyoto"}, {"conversation_id": "nowhere"},
    {"since": day(40)}, {"until": day(40)}, {"since": day(0, 2), "until": day(0, 4)},
    {"since": day(70).astimezone(timezone(timedelta(hours=-5)))},
    {"role": "assistant", "model": "gpt", "owner": "alice", "since": day(0), "until": day(80)},
]


@pytest.fixture
def stores(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    sqlite, postgres = open_store(tmp_path / "parity.db"), open_store(postgres_url)
    for store in (sqlite, postgres):
        store.import_conversations(corpus())
    yield sqlite, postgres
    sqlite.close()
    postgres.close()


class Labels:
    """Names each message by what the two stores share (its conversation and time), not its generated id."""

    def __init__(self, store: Any) -> None:
        self.names: dict[str, str] = {}
        for record in store.list_conversations(limit=None):
            for kind in ("chat", "summary", "response_item"):
                found = store.find_messages(record.id, kind=kind) if kind != "chat" else store.path(record.id)
                for message in found:
                    self.names[message.id] = f"{record.id}@{message.created_at.isoformat()}"

    def message(self, message: StoredMessage) -> dict[str, Any]:
        return {
            "name": self.names[message.id], "parent": message.parent_id and self.names.get(message.parent_id, "?"),
            "conversation": message.conversation_id, "kind": message.kind, "role": message.role,
            "created_at": message.created_at, "status": message.status, "model": message.model,
            "usage": json.dumps(message.usage), "finish_reason": message.finish_reason,
            "metadata": message.metadata, "body": json.dumps(message.message),
        }


def hits(store: Any, labels: Labels, query: str, **filters: Any) -> list[dict[str, Any]]:
    found = [{**labels.message(hit.message), "title": hit.conversation_title, "snippet": hit.snippet()}
             for hit in store.search(query, limit=100, **filters)]
    return sorted(found, key=lambda hit: hit["name"])


def conversations(store: Any, labels: Labels, **options: Any) -> list[dict[str, Any]]:
    return [{"id": r.id, "title": r.title, "owner": r.owner, "created_at": r.created_at, "updated_at": r.updated_at,
             "metadata": r.metadata, "head": r.head_id and labels.names[r.head_id]}
            for r in store.list_conversations(**options)]


def test_both_databases_answer_alike(stores: tuple[Any, Any]) -> None:
    sqlite, postgres = stores
    on_sqlite, on_postgres = Labels(sqlite), Labels(postgres)
    assert sorted(on_sqlite.names.values()) == sorted(on_postgres.names.values())
    searched = 0
    for query in QUERIES:
        for filters in FILTERS:
            expected = hits(sqlite, on_sqlite, query, **filters)
            assert hits(postgres, on_postgres, query, **filters) == expected, (query, filters)
            searched += bool(expected)
    assert searched > 100  # the corpus answers most searches: the comparisons compare something
    for query in ("paris", "☕", "京都", "a_b"):
        for limit, offset in ((1, 0), (2, 1), (3, 5), (100, 2)):
            pages = [len(store.search(query, limit=limit, offset=offset)) for store in stores]
            assert pages[0] == pages[1], (query, limit, offset)

    for options in ({}, {"limit": 2}, {"limit": 2, "offset": 1}, {"owner": "alice"}, {"owner": "nobody"},
                    {"title_contains": "paris"}, {"title_contains": "PARIS"}, {"title_contains": "%"},
                    {"title_contains": "_"}, {"title_contains": "a_b"}, {"title_contains": "100%"},
                    {"title_contains": "☀"}, {"title_contains": "caf"}):
        assert conversations(postgres, on_postgres, **options) == conversations(sqlite, on_sqlite, **options), options
    assert postgres.count_conversations() == sqlite.count_conversations() == 4
    assert postgres.count_messages() == sqlite.count_messages() == 20
    for conversation_id in ("paris", "budget", "kyoto", "party"):
        assert postgres.count_messages(conversation_id) == sqlite.count_messages(conversation_id)
        assert ([on_postgres.message(m) for m in postgres.path(conversation_id)]
                == [on_sqlite.message(m) for m in sqlite.path(conversation_id)])
        for kind in ("summary", "response_item"):
            assert ([on_postgres.message(m) for m in postgres.find_messages(conversation_id, kind=kind)]
                    == [on_sqlite.message(m) for m in sqlite.find_messages(conversation_id, kind=kind)])
        assert postgres.usage_by_model(conversation_id) == sqlite.usage_by_model(conversation_id)

    usage = sqlite.usage_by_model()
    assert postgres.usage_by_model() == usage
    assert list(postgres.usage_by_model()) == list(usage)  # the same order too
    assert usage == {
        "gpt-4.1": {"replies": 2, "prompt_tokens": 50, "completion_tokens": 10},  # the Responses API's own names
        "gpt-4o-2024-08-06": {"replies": 1, "prompt_tokens": 12, "completion_tokens": 5},
        "gpt-4o-mini": {"replies": 1, "prompt_tokens": 3, "completion_tokens": 4},
        "gpt_4o": {"replies": 1, "prompt_tokens": 7, "completion_tokens": 2},
        "o1%preview": {"replies": 1, "prompt_tokens": 4, "completion_tokens": 1},  # beside NUL and a lone surrogate
        "o1-preview": {"replies": 1, "prompt_tokens": 0, "completion_tokens": 2},  # "9" is no number
        "unknown": {"replies": 1, "prompt_tokens": 0, "completion_tokens": 0},
    }


def models(store: Any, prefix: str) -> list[str | None]:
    """The models of the replies a few searches find with the model filter ``prefix``."""
    return sorted({hit.message.model for query in ("paris", "パリ", "like", "€", "kyoto")
                   for hit in store.search(query, model=prefix)})


def test_the_model_filter_is_a_literal_prefix(stores: tuple[Any, Any]) -> None:
    for store in stores:
        assert models(store, "gpt_") == ["gpt_4o"]
        assert models(store, "gpt-") == ["gpt-4.1", "gpt-4o-2024-08-06", "gpt-4o-mini"]
        assert models(store, "o1%") == ["o1%preview"]
        assert models(store, "%") == models(store, "_") == models(store, "GPT") == []


WORDS = ["Paris", "paris", "☕", "☕️", "東京都", "京都", "住んでいます", "咖啡", "서울에서", "café", "CAFE",
         "C++", "a=b", "100%", "a_b", "€", "🎉", "e-mail", "ＦＵＬＬ", "Straße", "strasse", "naïve", "x²", "--", "rain"]
MODELS = [None, "gpt-4o", "gpt_4o", "o1%x", "o1"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    messages=st.lists(st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join),
                                st.sampled_from(MODELS)), min_size=1, max_size=6),
    query=st.lists(st.sampled_from(WORDS + ["-rain", "caf*", '"東京"', "NOT paris", "☕ 京", "京都*"]),
                   min_size=1, max_size=3).map(" ".join),
    model=st.sampled_from([None, "gpt", "gpt_", "o1%", "%", "_"]),
)
def test_any_words_and_models_are_matched_alike(
    postgres_url: str, messages: list[tuple[str, str | None]], query: str, model: str | None
) -> None:
    answers = []
    for target in (":memory:", postgres_url):
        with open_store(target) as store:
            conv = store.new_conversation()
            for content, name in messages:
                conv.append({"role": "assistant", "content": content}, model=name)
            found = store.search(query, conversation_id=conv.id, model=model, limit=100)
            answers.append(sorted((hit.message.message["content"], hit.message.model or "", hit.snippet())
                                  for hit in found))
    assert answers[0] == answers[1]
