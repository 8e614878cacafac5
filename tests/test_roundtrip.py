"""Property: any valid message comes back from every backend exactly as it went in."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatkeep import open_store, validate_message
from strategies import messages

common = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(message=messages)
def test_every_generated_message_is_valid_and_unchanged_by_validation(message: dict[str, Any]) -> None:
    assert validate_message(message) == message


@common
@given(batch=st.lists(messages, min_size=1, max_size=5), backend=st.sampled_from(["db", "json"]))
def test_messages_round_trip_through_each_backend(batch: list[dict[str, Any]], backend: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / ("c.db" if backend == "db" else "c.json")
        conv = open_store(target).conversation("c", create=True)
        for message in batch:
            conv.append(message)
        assert open_store(target).conversation("c").messages == batch
