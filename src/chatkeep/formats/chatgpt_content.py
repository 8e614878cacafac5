"""How one message of a ChatGPT export becomes an OpenAI chat message.

ChatGPT's own tools (browsing, code interpreter, plugins) talk through messages
whose author is ``tool`` and which carry no ``tool_call_id``; the assistant's
side of the exchange is a message with a ``recipient`` (``browser``,
``python``, a plugin). The API accepts a ``tool`` message only as the answer
to an assistant ``tool_calls`` entry with the same id, and a call without its
answer blocks the conversation; ChatGPT's exchanges are not one call, one
answer (a browsing ``mclick`` returns several quotes, an interrupted run none).
So both sides become assistant messages under a label line: ``[to python]``
above the fenced code, ``[python output]`` above its result. The conversation
stays sendable as it is, the model reads the exchange as part of its own turn
(as ChatGPT shows it), user messages stay what the person typed, and the
original author, recipient and content type are kept in the message metadata.

=========================  ====================================================
content_type               becomes
=========================  ====================================================
text                       the parts joined by newlines, in the author's role
multimodal_text            text parts as text; an image or audio pointer as a
                           placeholder ``[image: file-service://...]`` (no URL is
                           invented); an audio transcription as its text
code                       a fenced code block (language from ``language``, or
                           ``python`` for the code interpreter)
execution_output           ``[python output]`` and the output, fenced
tether_browsing_display    ``[browser result]`` and the result text
tether_quote               ``[browser quote]``, the title, URL and quoted text
system_error               ``[browser error]``, the error's name and text
user_editable_context,     a system message: the user's custom instructions,
model_editable_context     or what the model remembers about the user
thoughts                   ``[thoughts]`` and the reasoning summaries
reasoning_recap            left out ("Thought for 5 seconds" is UI chrome)
anything else              ``[<content_type>]`` and whatever text it carries
=========================  ====================================================

Empty system messages (ChatGPT's hidden root prompt) are left out; their
children attach to the nearest message that is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._source import as_dict, as_str
from ._text import fence

__all__ = ["Mapped", "map_message"]


@dataclass(frozen=True)
class Mapped:
    """The role and text chosen for one ChatGPT message."""

    role: str
    text: str




def _joined(*texts: str, sep: str = "\n") -> str:
    return sep.join(text for text in texts if text)


def _part_text(part: Any) -> str:
    """A multimodal part as text: its own text, or a placeholder naming the asset."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    kind = as_str(part.get("content_type"))
    pointer = as_str(part.get("asset_pointer"))
    if pointer:
        label = "image" if "image" in kind else "audio" if "audio" in kind else "video" if "video" in kind else "file"
        return f"[{label}: {pointer}]"
    if as_str(part.get("text")):
        return as_str(part.get("text"))
    return f"[{kind}]" if kind else ""


def _parts(content: dict[str, Any]) -> str:
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return _joined(*(_part_text(part) for part in parts))


def _thoughts(content: dict[str, Any]) -> str:
    thoughts = content.get("thoughts")
    items = thoughts if isinstance(thoughts, list) else []
    return _joined(*(_joined(as_str(as_dict(t).get("summary")), as_str(as_dict(t).get("content"))) for t in items), sep="\n\n")


def _custom_instructions(message: dict[str, Any]) -> str:
    """The 2023 form of custom instructions: a system message whose metadata holds them."""
    data = as_dict(as_dict(message.get("metadata")).get("user_context_message_data"))
    return _joined(as_str(data.get("about_user_message")), as_str(data.get("about_model_message")), sep="\n\n")


def _body(kind: str, content: dict[str, Any], recipient: str) -> str | None:
    """The text of one content type; ``None`` when the type is left out."""
    if kind in ("text", "multimodal_text"):
        return _parts(content)
    if kind == "code":
        language = content.get("language")
        if not isinstance(language, str) or language == "unknown":
            language = "python" if recipient == "python" else ""
        return fence(as_str(content.get("text")), language)
    if kind == "execution_output":
        return fence(as_str(content.get("text")))
    if kind == "tether_browsing_display":
        return _joined(as_str(content.get("result")), as_str(content.get("summary")), sep="\n\n")
    if kind == "tether_quote":
        header = _joined(as_str(content.get("title")), as_str(content.get("url")))
        return _joined(header, as_str(content.get("text")), sep="\n\n")
    if kind == "system_error":
        name = as_str(content.get("name"))
        return f"{name}: {as_str(content.get('text'))}" if name else as_str(content.get("text"))
    if kind == "user_editable_context":
        return _joined(as_str(content.get("user_profile")), as_str(content.get("user_instructions")), sep="\n\n")
    if kind == "model_editable_context":
        return as_str(content.get("model_set_context"))
    if kind == "thoughts":
        return _thoughts(content)
    if kind == "reasoning_recap":
        return None
    found = _parts(content) or next(
        (as_str(content.get(key)) for key in ("text", "result", "content") if as_str(content.get(key))), ""
    )
    return f"[{kind}]\n{found}" if found else None


def _tool_label(kind: str, name: str) -> str:
    suffix = {"execution_output": "output", "system_error": "error", "tether_quote": "quote"}.get(kind, "result")
    return f"[{name} {suffix}]"


def map_message(message: dict[str, Any]) -> Mapped | None:
    """Choose the role and text for a ChatGPT message, or ``None`` to leave it out."""
    author = as_dict(message.get("author"))
    author_role, author_name = as_str(author.get("role")), as_str(author.get("name"))
    content = as_dict(message.get("content"))
    kind = as_str(content.get("content_type")) or "text"
    recipient = as_str(message.get("recipient"))
    body = _body(kind, content, recipient)
    if body is None:
        return None
    if kind in ("user_editable_context", "model_editable_context"):
        return Mapped("system", body) if body.strip() else None
    if author_role == "system":
        body = body or _custom_instructions(message)
        return Mapped("system", body) if body.strip() else None
    if author_role == "user":
        return Mapped("user", body)
    if author_role == "assistant":
        if kind == "thoughts":
            return Mapped("assistant", f"[thoughts]\n{body}")
        if recipient and recipient != "all":
            return Mapped("assistant", f"[to {recipient}]\n{body}")
        return Mapped("assistant", body)
    if author_role == "tool":
        return Mapped("assistant", f"{_tool_label(kind, author_name or 'tool')}\n{body}")
    return Mapped("assistant", f"[{author_role or 'unknown author'}]\n{body}")
