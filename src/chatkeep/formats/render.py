"""Conversations as documents for people: Markdown and a self-contained HTML page.

Message text is untrusted: a message may hold ``<script>``, an ``onerror=``
attribute, a tracking image or a line that looks like the next turn. In
Markdown, prose has ``&``, ``<`` and ``>`` escaped, so a renderer shows tags
as text instead of passing them through as HTML; a ``javascript:``,
``vbscript:`` or ``data:`` scheme gets a zero-width space that makes a link
to it a harmless relative one, and so does ``![`` (an image becomes a link to
it: viewing the export loads nothing). A line that would open a level 1 or 2
heading, the levels this module writes for the title and for each turn, has
its ``#`` or its ``===``/``---`` underline escaped; deeper headings stay, under
the turn's.

Code is never HTML to a renderer, so code keeps its text exactly. The risk
is a renderer and this module disagreeing on where code starts or ends: text
kept as written would be prose to the renderer. Every multi-line text goes through :func:`markdown_text`, which splits
lines where Markdown does (CR too) and re-fences each fenced or indented code
block at the left margin with a fence longer than any backtick run inside,
which also ends any list the text opened. A code span stays as written only
when any CommonMark renderer must pair the same backticks (every other
backtick is escaped) and nothing can cut the span open: not a table cell's
``|``, nor a link or autolink begun before it. Every other piece is one line
that starts with a fixed word. In HTML everything from a message is escaped,
and the page's Content-Security-Policy forbids every script and outside
resource anyway.

Attachments (images, audio, files a message carries inline) go where the
export's :class:`~.export_attachments.Placement` puts them: links to files
beside the document, data URLs, or a placeholder naming each. Only this
module writes an image or a link for them, from names it makes itself; an
image given by a remote URL stays text, so viewing an export loads nothing
from elsewhere. The page's policy lets images and sound come from the page's
own files or from data URLs, as the placement needs, and from nowhere else.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..store.base import ConversationRecord, StoredMessage, format_time
from ._text import fence, storable
from .export_attachments import Attachment, Placeholders, Placement, attachment_of, attachments_of

__all__ = ["Exported", "html_conversation", "html_end", "html_start", "markdown_conversation"]


@dataclass(frozen=True)
class Exported:
    """One conversation to write: its record and the branch chosen (root first)."""

    record: ConversationRecord
    path: list[StoredMessage]


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
# Code (javascript:, vbscript:) or a whole document (data:) behind a link; "data" only as a scheme, not in "metadata".
_SCHEME = re.compile(r"(?i)((?:java|vb)(?=script\\*:)|(?<![a-z0-9+.-])da(?=ta\\*:))")
_IMAGE = re.compile(r"!(?=\[)")
_BACKTICKS = re.compile(r"`+")
# A line that would open a level 1 or 2 heading (the levels of the title and of each turn), in a list item too.
_HEADING = re.compile(r"\A((?:[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t])*[ \t]*)(?=#{1,2}(?:[ \t]|$))")
_UNDERLINE = re.compile(r"\A([ \t]*)(?==+[ \t]*$|-+[ \t]*$)")
# Where a link's destination or title starts: one may run on into a code span and end inside it.
_LINK_START = re.compile(r"\]\(|\]:")
# An extended autolink (GFM) runs on to the next space or "<", through a backtick into a span.
_AUTOLINK = re.compile(r"(?i)www\.|://")
_SPACE = re.compile(r"\s")
# Markdown ends a line at CR as well as LF: a lone CR must not hide a fence from the parser below.
_LINE_END = re.compile(r"\r\n?|\n")


def _escaped(text: str, index: int) -> bool:
    """Whether the character at ``index`` follows an odd number of backslashes (a Markdown escape)."""
    before = index
    while before and text[before - 1] == "\\":
        before -= 1
    return (index - before) % 2 == 1


def _escape_backticks(text: str) -> str:
    """Backslash every backtick that could open or close a code span, so none pairs with another."""
    def escaped(run: re.Match[str]) -> str:
        first = "`" if _escaped(text, run.start()) else "\\`"
        return first + "\\`" * (len(run[0]) - 1)
    return _BACKTICKS.sub(escaped, text)


def _prose(text: str) -> str:
    """Markdown text that renders as the text itself, never as HTML, an image, a script link or code."""
    text = html.escape(text, quote=False)
    text = _SCHEME.sub("\\1\u200b", text) if ":" in text else text
    text = _IMAGE.sub("!\u200b", text) if "![" in text else text
    return _escape_backticks(text) if "`" in text else text


def _code_spans(line: str) -> Iterator[tuple[int, int, int]]:
    """The line's code spans as CommonMark pairs them: (start, end, width of the backtick runs)."""
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(line)]
    index = 0
    while index < len(runs):
        start, end = runs[index]
        start += _escaped(line, start)  # a backslash escapes the run's first backtick only
        width = end - start
        closer = next((k for k in range(index + 1, len(runs)) if runs[k][1] - runs[k][0] == width), None)
        if width and closer is not None:
            yield start, runs[closer][1], width
            index = closer + 1
        else:
            index += 1


def _autolinked(line: str) -> list[tuple[int, int]]:
    """Stretches of the line an extended autolink may cover: from a ``www.`` or ``://`` to the next space."""
    stretches: list[tuple[int, int]] = []
    found = _AUTOLINK.search(line)
    while found:
        space = _SPACE.search(line, found.end())
        stretches.append((found.end(), space.start() if space else len(line)))
        found = _AUTOLINK.search(line, stretches[-1][1])
    return stretches


def _kept_spans(line: str, linked: bool) -> Iterator[tuple[int, int]]:
    """Where the line's code spans are that go out as written: those every renderer must see as code.

    A table row is cut at each ``|`` before code spans are found, and a link's
    destination or title (begun before the span, on this line or an earlier
    one of the paragraph: ``linked``) or an autolink running into a span could
    end inside it and leave the rest as raw text: such spans are escaped as
    prose instead.
    """
    if "`" not in line:
        return
    link = _LINK_START.search(line)
    linked_from = 0 if linked else link.end() if link else len(line) + 1
    autolinked, reached = _autolinked(line), 0
    for start, end, width in _code_spans(line):
        content = line[start + width:end - width]
        while reached < len(autolinked) and autolinked[reached][1] < start:
            reached += 1
        cut = "|" in content or (reached < len(autolinked) and autolinked[reached][0] <= start)
        if not cut and (start < linked_from or not set("()\"'") & set(content)):
            yield start, end


def _inline(lines: list[str]) -> str:
    """Lines of prose as Markdown: kept code spans as written (code is never HTML), the rest escaped.

    Every backtick outside the kept spans is escaped, so a renderer pairs
    exactly the runs paired here, however its paragraphs run.
    """
    out: list[str] = []
    prose: list[str] = []  # escaped in one go: a pass per stretch between code spans, not per line
    linked = False
    for number, line in enumerate(lines):
        done = 0
        prose.append("\n" if number else "")
        for start, end in _kept_spans(line, linked):
            prose.append(line[done:start])
            out += [_prose("".join(prose)), line[start:end]]
            prose, done = [], end
        prose.append(line[done:])
        linked = linked or "](" in line or "]:" in line
    out.append(_prose("".join(prose)))
    return "".join(out)


def _one_line(text: str) -> str:
    return _inline([" ".join(storable(text).split())])


def _prose_lines(lines: list[str]) -> str:
    """Lines of prose, none of which may become a heading of a turn's level or the conversation's."""
    safe: list[str] = []
    after_blank = True
    for line in lines:
        first = line.lstrip(" \t")[:1]
        if first in ("=", "-") and not after_blank and _UNDERLINE.match(line):  # would make the line above a heading
            line = _UNDERLINE.sub(r"\1\\", line, count=1)
        elif first and first in "#-*+0123456789":
            line = _HEADING.sub(r"\1\\", line, count=1)
        safe.append(line)
        after_blank = not first
    return _inline(safe)


def _dedent(line: str) -> str | None:
    """The line without four columns of indentation (tabs stop every four), or None when it has fewer."""
    column = 0
    for index, char in enumerate(line):
        if column >= 4:
            return line[index:]
        if char not in " \t":
            return None
        column += 1 if char == " " else 4 - column % 4
    return "" if column >= 4 else None


def _indented_code(lines: list[str]) -> str:
    """An indented code block as a fence at the left margin: code wherever it stands, where a list may claim an indent."""
    end = len(lines)
    while not lines[end - 1].strip(" \t"):  # the block's trailing blank lines are not part of it
        end -= 1
    return fence("\n".join(lines[:end]))


def _prose_block(lines: list[str]) -> str:
    """Text between fences: indented code blocks re-fenced (kept as written), the rest as prose."""
    blocks: list[str] = []
    prose: list[str] = []
    code: list[str] = []
    for line in lines:
        blank = not line.strip(" \t")
        if code and (blank or _dedent(line) is not None):
            code.append(_dedent(line) or "")
            continue
        if code:
            blocks.append(_indented_code(code))
            code = []
        indented = _dedent(line)
        # Indented code starts after a blank line (or a fence), never inside a paragraph.
        if indented is not None and not blank and (not prose or not prose[-1].strip(" \t")):
            blocks.append(_prose_lines(prose))
            prose, code = [], [indented]
        else:
            prose.append(line)
    blocks.append(_indented_code(code) if code else _prose_lines(prose))
    return "\n".join(block for block in blocks if block)


def markdown_text(text: str) -> str:
    """A message's text as safe Markdown: prose escaped, code spans and code blocks kept, blocks re-fenced."""
    blocks: list[str] = []
    prose: list[str] = []
    code: tuple[str, str, list[str]] | None = None  # closing-fence pattern, language, lines
    for line in _LINE_END.split(storable(text)):
        if code is None:
            opening = _FENCE.fullmatch(line)
            if opening and not (opening[1][0] == "`" and "`" in opening[2]):
                blocks.append(_prose_block(prose))
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
    blocks.append(_prose_block(prose) if code is None else fence("\n".join(code[2]), code[1].split(" ")[0]))
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


_LEFT_OUT = "left out of this export"


def _markdown_attachment(attachment: Attachment, place: Placement) -> str:
    """A link to the attachment (an image where it is one), or a placeholder; the label is safe as it is."""
    href = place.place(attachment)
    if href is None:
        return _one_line(f"[{attachment.label}; {_LEFT_OUT}]")
    shown = attachment.kind == "image" and attachment.shown
    return f"{'!' if shown else ''}[{attachment.label}]({href})"


def _markdown_message(stored: StoredMessage, place: Placement) -> str:
    message = stored.message
    pieces: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        pieces.append(markdown_text(content))
    elif isinstance(content, list):
        for part in content:
            attachment = attachment_of(part)
            if attachment is not None:
                pieces.append(_markdown_attachment(attachment, place))
                continue
            text, own = _part_text(part)
            pieces.append(markdown_text(text) if own else _one_line(text))
    pieces += [_markdown_attachment(attachment, place) for attachment in attachments_of(message)]
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


def markdown_conversation(item: Exported, place: Placement | None = None) -> str:
    """One conversation as a Markdown document: its title, then each message under its role.

    ``place`` says where attachments go (default: placeholders naming them).
    """
    place = place if place is not None else Placeholders()
    title = item.record.display_title
    parts = [f"# {_one_line(title)}\n", f"{_one_line(_summary(item))}\n"]
    parts += [_markdown_message(stored, place) for stored in item.path]
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
.attachment { margin: .5rem 0; color: #555; font-size: .9rem; } .attachment img { max-width: 100%; height: auto; }
"""
# What the page may load besides its inline style, by where its attachments are: nothing at all without them.
_MEDIA_SOURCES = {"files": "; img-src 'self' file:; media-src 'self' file:", "inline": "; img-src data:; media-src data:"}


def _escape(text: str) -> str:
    return html.escape(storable(text), quote=True)


def html_start(title: str, attachments: str = "placeholders") -> str:
    """The page's head: charset, a policy that forbids scripts and outside resources, inline CSS.

    ``attachments`` is the placement's mode: with ``files`` the page may show
    images and sound from files beside it, with ``inline`` from data URLs.
    """
    policy = "default-src 'none'; style-src 'unsafe-inline'" + _MEDIA_SOURCES.get(attachments, "")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
    )


def html_end() -> str:
    return "</body>\n</html>\n"


def _html_attachment(attachment: Attachment, place: Placement) -> str:
    """A picture, a player or a link for the attachment, or a placeholder naming it."""
    href = place.place(attachment)
    label = _escape(attachment.label)
    if href is None:
        return f'<p class="attachment">[{label}; {_LEFT_OUT}]</p>'
    source = _escape(href)
    if attachment.shown and attachment.kind == "image":
        return f'<figure class="attachment"><img src="{source}" alt="{label}"><figcaption>{label}</figcaption></figure>'
    if attachment.shown and attachment.kind == "audio":
        return (f'<figure class="attachment"><audio controls src="{source}"></audio>'
                f"<figcaption>{label}</figcaption></figure>")
    return f'<p class="attachment"><a href="{source}" download="{_escape(attachment.file_name)}">{label}</a></p>'


def _html_message(stored: StoredMessage, place: Placement) -> str:
    message = stored.message
    body: list[str] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        body.append(f'<div class="text">{_escape(content)}</div>')
    elif isinstance(content, list):
        for part in content:
            attachment = attachment_of(part)
            if attachment is not None:
                body.append(_html_attachment(attachment, place))
            elif text := _part_text(part)[0]:
                body.append(f'<div class="text">{_escape(text)}</div>')
    body += [_html_attachment(attachment, place) for attachment in attachments_of(message)]
    if isinstance(message.get("refusal"), str):
        body.append(f'<div class="text">{_escape("Refusal: " + message["refusal"])}</div>')
    body += [f"<pre>{_escape(name)}({_escape(arguments)})" + (f" [{_escape(call_id)}]" if call_id else "") + "</pre>"
             for name, call_id, arguments in _calls(message)]
    role = re.sub(r"[^a-z]", "", stored.role)
    return (f'<section class="message {role}">\n<h2>{_escape(_heading(stored))}</h2>\n'
            + "\n".join(body) + "\n</section>\n")


def html_conversation(item: Exported, place: Placement | None = None) -> str:
    """One conversation as an ``<article>``: title, a line of facts, then each message.

    ``place`` says where attachments go (default: placeholders naming them).
    """
    place = place if place is not None else Placeholders()
    title = item.record.display_title
    messages: Iterable[str] = (_html_message(stored, place) for stored in item.path)
    return (f'<article id="{_escape("conversation-" + item.record.id)}">\n<h1>{_escape(title)}</h1>\n'
            f'<p class="meta">{_escape(_summary(item))}</p>\n' + "".join(messages) + "</article>\n")
