"""Conversations as documents for people: Markdown and a self-contained HTML page.

Message text is untrusted: a message may hold ``<script>`` or an
``onerror=`` attribute. In Markdown, text outside code blocks has ``&``,
``<`` and ``>`` escaped, so a renderer shows tags as text instead of passing
them through as HTML, and a ``javascript:`` or ``vbscript:`` scheme gets a
zero-width space that makes a link to it a harmless relative one. Code
blocks stay as they are (a renderer never runs what is inside one), and so
the one risk is a renderer seeing a fence where this module does not: every
multi-line text goes through :func:`markdown_text`, which splits lines where
Markdown does (CR too) and re-fences each code block at the left margin with
a fence longer than any backtick run inside, which also ends any list or
quote the text opened; every other piece is one line that starts with a
fixed word. In HTML everything from a message is escaped, and the page's
Content-Security-Policy forbids every script and outside resource anyway.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..store.base import ConversationRecord, StoredMessage, format_time
from ._text import fence, storable

__all__ = ["Exported", "html_conversation", "html_end", "html_start", "markdown_conversation"]


@dataclass(frozen=True)
class Exported:
    """One conversation to write: its record and the branch chosen (root first)."""

    record: ConversationRecord
    path: list[StoredMessage]


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_SCHEME = re.compile(r"(?i)(java|vb)(?=script\\*:)")
# Markdown ends a line at CR as well as LF: a lone CR must not hide a fence from the parser below.
_LINE_END = re.compile(r"\r\n?|\n")


def _prose(text: str) -> str:
    """Markdown text that renders as the text itself, never as HTML or a script link."""
    return _SCHEME.sub("\\1\u200b", html.escape(storable(text), quote=False))


def _one_line(text: str) -> str:
    return _prose(" ".join(text.split()))


def markdown_text(text: str) -> str:
    """A message's text as safe Markdown: prose escaped, fenced code blocks re-fenced."""
    blocks: list[str] = []
    prose: list[str] = []
    code: tuple[str, str, list[str]] | None = None  # closing-fence pattern, language, lines
    for line in _LINE_END.split(storable(text)):
        if code is None:
            opening = _FENCE.fullmatch(line)
            if opening and not (opening[1][0] == "`" and "`" in opening[2]):
                blocks.append(_prose("\n".join(prose)))
                prose = []
                marker = opening[1]
                code = (rf" {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*", opening[2].strip(), [])
            else:
                prose.append(line)
        elif re.fullmatch(code[0], line):
            blocks.append(fence("\n".join(code[2]), code[1].split(" ")[0]))
            code = None
        else:
            code[2].append(line)
    # A fence left open at the end is closed here, so it cannot swallow the next message.
    blocks.append(_prose("\n".join(prose)) if code is None else fence("\n".join(code[2]), code[1].split(" ")[0]))
    return "\n".join(block for block in blocks if block)


def _part_text(part: Any) -> tuple[str, bool]:
    """A content part as (text, whether it is the message's own text); placeholders are one line."""
    if not isinstance(part, dict):
        return "", False
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return part["text"], True
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return f"Refusal: {part['refusal']}", True
    if kind == "image_url" and isinstance(part.get("image_url"), dict):
        return f"[image: {part['image_url'].get('url', '')}]", False
    if kind == "file" and isinstance(part.get("file"), dict):
        file = part["file"]
        return f"[file: {file.get('filename') or file.get('file_id') or 'attached data'}]", False
    return f"[{kind or 'part'}]", False


def _calls(message: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The message's tool calls (and legacy function call) as (name, id, arguments)."""
    found = []
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            body = call.get("function") or call.get("custom") or {}
            if isinstance(body, dict):
                found.append((str(body.get("name", "")), str(call.get("id", "")),
                              str(body.get("arguments", body.get("input", "")))))
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        found.append((str(legacy.get("name", "")), "", str(legacy.get("arguments", ""))))
    return found


def _heading(stored: StoredMessage) -> str:
    role = stored.role.capitalize() or "Message"
    details = [str(stored.message[key]) for key in ("name", "tool_call_id") if isinstance(stored.message.get(key), str)]
    details += [stored.model] if stored.model else []
    details += [stored.status] if stored.status != "complete" else []
    return " · ".join([role, *details])


def _markdown_message(stored: StoredMessage) -> str:
    message = stored.message
    pieces: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        pieces.append(markdown_text(content))
    elif isinstance(content, list):
        for part in content:
            text, own = _part_text(part)
            pieces.append(markdown_text(text) if own else _one_line(text))
    if isinstance(message.get("refusal"), str):
        pieces.append(markdown_text(f"Refusal: {message['refusal']}"))
    for name, call_id, arguments in _calls(message):
        pieces.append(_one_line(f"Tool call {name}" + (f" ({call_id})" if call_id else "")) + ":\n\n"
                      + fence(storable(arguments), "json"))
    if isinstance(message.get("audio"), dict):
        pieces.append("[audio reply]")
    body = "\n\n".join(piece for piece in pieces if piece)
    return f"## {_one_line(_heading(stored))}\n\n{body}\n" if body else f"## {_one_line(_heading(stored))}\n"


def _summary(item: Exported) -> str:
    record = item.record
    return f"Conversation {record.id} · created {format_time(record.created_at)[:19]}Z · {len(item.path)} messages"


def markdown_conversation(item: Exported) -> str:
    """One conversation as a Markdown document: its title, then each message under its role."""
    title = item.record.title or "Untitled conversation"
    parts = [f"# {_one_line(title)}\n", f"{_one_line(_summary(item))}\n"]
    parts += [_markdown_message(stored) for stored in item.path]
    return "\n".join(parts)


_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 50rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
article { margin-bottom: 3rem; }
.meta { color: #666; font-size: .9rem; }
.message { border-left: 4px solid #ccc; margin: 1rem 0; padding: .25rem 1rem; }
.message h2 { font-size: 1rem; margin: .25rem 0; }
.user { border-color: #4a7bd0; } .assistant { border-color: #3a9a5b; }
.system, .developer { border-color: #999; background: #f7f7f7; } .tool, .function { border-color: #c08a2d; }
.text, pre { white-space: pre-wrap; overflow-wrap: anywhere; }
pre { background: #f4f4f4; padding: .5rem; font: 14px/1.4 ui-monospace, monospace; }
"""


def _escape(text: str) -> str:
    return html.escape(storable(text), quote=True)


def html_start(title: str) -> str:
    """The page's head: charset, a policy that forbids scripts and outside resources, inline CSS."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
    )


def html_end() -> str:
    return "</body>\n</html>\n"


def _html_message(stored: StoredMessage) -> str:
    message = stored.message
    texts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        texts += [_part_text(part)[0] for part in content]
    if isinstance(message.get("refusal"), str):
        texts.append(f"Refusal: {message['refusal']}")
    body = [f'<div class="text">{_escape(text)}</div>' for text in texts if text]
    body += [f"<pre>{_escape(name)}({_escape(arguments)})" + (f" [{_escape(call_id)}]" if call_id else "") + "</pre>"
             for name, call_id, arguments in _calls(message)]
    role = re.sub(r"[^a-z]", "", stored.role)
    return (f'<section class="message {role}">\n<h2>{_escape(_heading(stored))}</h2>\n'
            + "\n".join(body) + "\n</section>\n")


def html_conversation(item: Exported) -> str:
    """One conversation as an ``<article>``: title, a line of facts, then each message."""
    title = item.record.title or "Untitled conversation"
    messages: Iterable[str] = (_html_message(stored) for stored in item.path)
    return (f'<article id="{_escape("conversation-" + item.record.id)}">\n<h1>{_escape(title)}</h1>\n'
            f'<p class="meta">{_escape(_summary(item))}</p>\n' + "".join(messages) + "</article>\n")
