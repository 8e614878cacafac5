"""llm's logged responses (one prompt and its reply per row) as chat messages, for both its JSON and its database.

A row is what ``llm logs --json`` prints and what llm's classic ``responses``
table holds: ``system``, ``prompt`` (with ``attachments``), the
``tool_results`` sent with the prompt, then the ``response`` and the
``tool_calls`` it asked for, with ``model``, ``datetime_utc``, token counts and
``duration_ms``. A conversation's rows become one chain:

- a system message when ``system`` (after its fragments) is set and differs
  from the one before (llm repeats it on most rows);
- a ``tool`` message per tool result (an ``exception`` is its content, and is
  kept in metadata);
- a user message for a non-empty ``prompt`` (after its fragments, as llm
  joins them); image attachments with a URL (or, from the database, bytes)
  become image parts, every attachment's id, type, path and URL is kept in
  metadata (the bytes are not in the JSON);
- the assistant message: ``response``, ``tool_calls``, the model (the
  resolved one when llm knew it), usage, ``finish_reason`` from
  ``response_json``; ``reasoning``, ``duration_ms``, options and the schema
  go to metadata.

Keys: ``<row id>:system``, ``<row id>:tool:<n>``, ``<row id>:prompt``,
``<row id>:response``, so ``llm logs --json`` and the database it came from
import as the same messages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..messages import MessageDict
from ..store.bulk import ImportMessage
from ._source import as_str, iso_time

__all__ = ["row_messages"]



def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value if value is not None else {}, ensure_ascii=False)


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value


def _user_content(prompt: str, attachments: list[dict[str, Any]]) -> Any:
    images = [a for a in attachments if as_str(a.get("type")).startswith("image/") and as_str(a.get("url"))]
    if not images:
        if prompt or not attachments:
            return prompt
        names = ", ".join(as_str(a.get("path")) or as_str(a.get("url")) or as_str(a.get("id")) for a in attachments)
        return f"[attachment: {names}]"
    parts: list[dict[str, Any]] = [{"type": "text", "text": prompt}] if prompt else []
    return parts + [{"type": "image_url", "image_url": {"url": a["url"]}} for a in images]


def _joined(row: dict[str, Any], name: str) -> str:
    """The prompt or system prompt llm sent: its fragments, then the text typed, joined as llm's ``Prompt`` joins them."""
    fragments = [f.get("content") if isinstance(f, dict) else f for f in row.get(f"{name}_fragments") or []]
    pieces = [f for f in fragments if isinstance(f, str)] + [as_str(row.get(name))]
    if name == "system":  # stripped, blank ones dropped, a blank line between
        return "\n\n".join(piece.strip() for piece in pieces if piece.strip())
    return "\n".join(piece for piece in pieces[:-1]) + ("\n" if pieces[:-1] and pieces[-1] else "") + pieces[-1]


def _usage(row: dict[str, Any]) -> dict[str, Any] | None:
    prompt, completion = row.get("input_tokens"), row.get("output_tokens")
    if not isinstance(prompt, int) and not isinstance(completion, int):
        return None
    usage: dict[str, Any] = {"prompt_tokens": prompt or 0, "completion_tokens": completion or 0,
                             "total_tokens": (prompt or 0) + (completion or 0)}
    details = _json(row.get("token_details"))
    if isinstance(details, dict) and details:
        usage["details"] = details
    return usage


class _Calls:
    """The tool calls still waiting for a result, so a result without an id finds its call."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []

    def made(self, row_id: str, calls: Sequence[Any]) -> list[dict[str, Any]]:
        out = []
        for n, call in enumerate(calls):
            call = call if isinstance(call, dict) else {}
            call_id = as_str(call.get("tool_call_id")) or f"call_{row_id}_{n}"
            name = as_str(call.get("name")) or "tool"
            out.append({"id": call_id, "type": "function",
                        "function": {"name": name, "arguments": _arguments(_json(call.get("arguments")))}})
            self.pending.append((call_id, name))
        return out

    def answered(self, result: dict[str, Any]) -> str:
        wanted, name = as_str(result.get("tool_call_id")), as_str(result.get("name"))
        match = next((p for p in self.pending if p[0] == wanted), None) or next(
            (p for p in self.pending if p[1] == name), None) or (self.pending[0] if self.pending else None)
        if match is None:
            return wanted or f"call_{name or 'tool'}"
        self.pending.remove(match)
        return match[0]


def _message(body: MessageDict, key: str, parent: str | None, row: dict[str, Any], **extra: Any) -> ImportMessage:
    return ImportMessage(body, key=key, parent_key=parent, created_at=iso_time(row.get("datetime_utc")), **extra)


def row_messages(rows: Sequence[dict[str, Any]]) -> list[ImportMessage]:
    """One conversation's rows, oldest first, as a chain of messages."""
    out: list[ImportMessage] = []
    parent: str | None = None
    system = ""
    calls = _Calls()
    for row in rows:
        row_id = as_str(row.get("id")) or str(len(out))
        if _joined(row, "system") and _joined(row, "system") != system:
            system = _joined(row, "system")
            out.append(_message({"role": "system", "content": system}, f"{row_id}:system", parent, row))
            parent = out[-1].key
        for n, result in enumerate(r for r in row.get("tool_results") or [] if isinstance(r, dict)):
            kept = {name: result[name] for name in ("name", "exception", "attachments") if result.get(name)}
            body = {"role": "tool", "tool_call_id": calls.answered(result), "content": as_str(result.get("output"))}
            out.append(_message(body, f"{row_id}:tool:{n}", parent, row, metadata={"llm": kept} if kept else {}))
            parent = out[-1].key
        attachments = [a for a in row.get("attachments") or [] if isinstance(a, dict)]
        prompt = _joined(row, "prompt")
        if prompt or attachments:
            kept = {"attachments": [{k: v for k, v in a.items() if k != "url" or not str(v).startswith("data:")}
                                    for a in attachments]} if attachments else {}
            body = {"role": "user", "content": _user_content(prompt, attachments)}
            out.append(_message(body, f"{row_id}:prompt", parent, row, metadata={"llm": kept} if kept else {}))
            parent = out[-1].key
        listed = row.get("tool_calls")
        made = calls.made(row_id, listed if isinstance(listed, list) else [])  # a damaged row: no calls
        reply: dict[str, Any] = {"role": "assistant", "content": as_str(row.get("response")) or (None if made else "")}
        if made:
            reply["tool_calls"] = made
        response_json = _json(row.get("response_json"))
        finish = response_json.get("finish_reason") if isinstance(response_json, dict) else None
        kept = {name: _json(row[name]) for name in ("reasoning", "duration_ms", "options_json", "schema_json", "tools")
                if row.get(name) not in (None, "", [], {})}
        kept["id"] = row_id
        out.append(_message(reply, f"{row_id}:response", parent, row,
                            model=as_str(row.get("resolved_model")) or as_str(row.get("model")) or None,
                            usage=_usage(row), finish_reason=finish if isinstance(finish, str) else None,
                            metadata={"llm": kept}))
        parent = out[-1].key
    return out
