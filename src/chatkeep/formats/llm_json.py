"""Importing ``llm logs --json``: the responses Simon Willison's ``llm`` logged, grouped by conversation.

The output is a JSON array of rows, one per prompt and reply, each naming its
``conversation_id``; how a row becomes messages is described in
:mod:`._llm_rows`. Rows of different conversations interleave (the output is
ordered by time, newest first unless ``-r``), so the whole array is read
before the first conversation is made: memory holds the rows (less their
provider payloads), not the file.

Keys: a conversation is ``llm:<conversation_id>`` (a row without one is a
conversation of its own, ``llm:response:<id>``), its messages keyed by row id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import FormatError
from ..store.bulk import ImportConversation
from ._llm_rows import row_messages
from ._source import PathLike, Report, iso_time, json_array, open_plain

__all__ = ["read_llm_json"]

#: Row keys whose values row_messages never reads: dropped on reading to keep memory down.
_HEAVY = ("prompt_json",)


def read_llm_json(path: PathLike, warnings: list[str] | None) -> Iterator[ImportConversation]:
    """Yield one conversation per ``conversation_id``, oldest first within each."""
    label = str(path)
    report = Report(label, warnings)
    groups: dict[str, list[dict[str, Any]]] = {}
    names: dict[str, tuple[Any, Any]] = {}
    with open_plain(path) as stream:
        for index, row in json_array(stream, label, "rows"):
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                report.skip(FormatError(f"rows[{index}]: expected a logged response with an id", file=label))
                continue
            for name in _HEAVY:
                row.pop(name, None)
            response_json = row.get("response_json")
            if isinstance(response_json, dict):  # only its finish_reason is read
                row["response_json"] = {"finish_reason": response_json.get("finish_reason")}
            conversation = row.get("conversation_id")
            group = conversation if isinstance(conversation, str) and conversation else f"response:{row['id']}"
            groups.setdefault(group, []).append(row)
            names.setdefault(group, (row.get("conversation_name"), row.get("conversation_model")))
    for group, rows in groups.items():
        rows.sort(key=_when)
        messages = row_messages(rows)
        name, model = names[group]
        yield ImportConversation(
            messages,
            key=f"llm:{group}",
            title=name if isinstance(name, str) and name else None,
            created_at=messages[0].created_at,
            updated_at=messages[-1].created_at,
            metadata={"imported_from": "llm", "llm": {name: value for name, value in (
                ("conversation_id", group if ":" not in group else None),
                ("model", model if isinstance(model, str) else None)) if value is not None}},
        )


def _when(row: dict[str, Any]) -> tuple[bool, float]:
    """Oldest first; rows without a readable time last, in the order they came."""
    moment = iso_time(row.get("datetime_utc"))
    return moment is None, moment.timestamp() if moment is not None else 0.0
