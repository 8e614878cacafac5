"""One message of llm's message store (its ``parts``) as the API's chat messages.

=============  =================================================================
part           becomes
=============  =================================================================
text           content (parts joined; text llm stored as fragment references
               is put back together)
reasoning      ``metadata["llm"]["reasoning"]``, apart from the answer (a
               redacted one is noted, it has no text)
tool_call      an entry of the assistant's ``tool_calls`` (arguments as JSON;
               ``call_<hash>_<n>`` when llm had no id)
tool_result    a ``tool`` message each (an ``exception`` is kept in metadata)
attachment     an image part from the stored bytes or the URL in a user
               message; every attachment's id, type, path and URL in metadata
=============  =================================================================
"""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

from ..errors import FormatError
from ..messages import MessageDict
from ._source import Report, checked_message
from ._sqlite import Tables

__all__ = ["PartReader"]

Piece = tuple[MessageDict, dict[str, Any]]


class PartReader:
    """Reads messages' parts, resolving the fragments and attachments they refer to."""

    def __init__(self, connection: sqlite3.Connection, tables: Tables, parts: dict[str, list[dict[str, Any]]]) -> None:
        self._connection = connection
        self._tables = tables
        self._parts = parts
        self._fragments: dict[int, str] = {}

    def _fragment(self, fragment_id: Any) -> str:
        if fragment_id not in self._fragments:
            row = self._connection.execute("SELECT content FROM fragments WHERE id = ?", (fragment_id,)).fetchone() \
                if self._tables.has("fragments", "id", "content") else None
            self._fragments[fragment_id] = (row[0] or "") if row is not None else ""
        return self._fragments[fragment_id]

    def _text(self, part: dict[str, Any]) -> str:
        if isinstance(part.get("text"), str):
            return str(part["text"])
        payload = part["payload"]
        if isinstance(payload.get("text"), str):
            return str(payload["text"])
        pieces = payload.get("text_ref") if isinstance(payload.get("text_ref"), list) else []
        return "".join(str(p.get("literal", "")) if "literal" in p else self._fragment(p.get("fragment"))
                       for p in pieces if isinstance(p, dict))

    def _attachment(self, reference: Any) -> dict[str, Any]:
        attachment_id = reference.get("id") if isinstance(reference, dict) else None
        if attachment_id is None or not self._tables.has("attachments", "id"):
            return dict(reference) if isinstance(reference, dict) else {}
        row = self._connection.execute("SELECT id, type, path, url, content FROM attachments WHERE id = ?",
                                       (attachment_id,)).fetchone()
        if row is None:
            return {"id": attachment_id}
        kept = {name: row[name] for name in ("id", "type", "path", "url") if row[name] is not None}
        if isinstance(row["content"], bytes):
            kept["content_length"] = len(row["content"])
            kept["_bytes"] = row["content"]
        return kept

    def message(self, hash_: str, role: str, report: Report) -> list[Piece]:
        """The chat messages one stored message amounts to (several for several tool results)."""
        where = f"messages[{hash_!r}]"
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[Piece] = []
        images: list[str] = []
        kept: dict[str, Any] = {}
        for part in self._parts.get(hash_, []):
            kind, payload = part["type"], part["payload"]
            if kind == "text":
                text.append(self._text(part))
            elif kind == "reasoning":
                reasoning = self._text(part)
                kept["reasoning"] = "\n\n".join(filter(None, [kept.get("reasoning", ""), reasoning]))
                if payload.get("redacted"):
                    kept["reasoning_redacted"] = True
            elif kind == "tool_call":
                arguments = payload.get("arguments", {})
                calls.append({"id": str(payload.get("tool_call_id") or f"call_{hash_[-12:]}_{len(calls)}"),
                              "type": "function", "function": {
                                  "name": str(payload.get("name") or part.get("tool_name") or "tool"),
                                  "arguments": arguments if isinstance(arguments, str)
                                  else json.dumps(arguments, ensure_ascii=False)}})
            elif kind == "tool_result":
                extra = {name: payload[name] for name in ("name", "exception", "server_executed") if payload.get(name)}
                if payload.get("attachments"):
                    extra["attachments"] = [self._public(self._attachment(a)) for a in payload["attachments"]]
                results.append(({"role": "tool", "tool_call_id": str(payload.get("tool_call_id") or ""),
                                 "content": str(payload.get("output") or "")}, extra))
            elif kind == "attachment":
                found = self._attachment(payload.get("attachment"))
                kept.setdefault("attachments", []).append(self._public(found))
                url = self._image_url(found)
                if url:
                    images.append(url)
            else:
                kept.setdefault("parts", []).append({"type": kind, **payload})
        if role == "tool" or (results and not text and not calls):
            if not results:
                raise FormatError(f"{where}: a tool message with no tool_result part", file=report.label)
            return [(checked_message(body, where, report.label), extra) for body, extra in results]
        content: Any = "".join(text)
        names = ", ".join(str(a.get("path") or a.get("url") or a.get("id")) for a in kept.get("attachments", []))
        if images and role == "user":
            content = ([{"type": "text", "text": content}] if content else []) + [
                {"type": "image_url", "image_url": {"url": url}} for url in images]
        elif images or (not content and kept.get("attachments")):
            content = f"{content}\n[attachment: {names}]" if content else f"[attachment: {names}]"
        body: dict[str, Any] = {"role": role, "content": content if content or not calls else None}
        if calls:
            body["tool_calls"] = calls
        return [(checked_message(body, where, report.label), kept)]

    @staticmethod
    def _image_url(found: dict[str, Any]) -> str | None:
        if not str(found.get("type", "")).startswith("image/"):
            return None
        if isinstance(found.get("_bytes"), bytes):
            return f"data:{found['type']};base64,{base64.b64encode(found['_bytes']).decode('ascii')}"
        return str(found["url"]) if found.get("url") else None

    @staticmethod
    def _public(found: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in found.items() if name != "_bytes"}
