"""Small text helpers shared by importers and exporters."""

from __future__ import annotations

import re

__all__ = ["fence", "language_tag", "storable"]

_BACKTICKS = re.compile(r"`+")
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")


def language_tag(language: object) -> str:
    """A code fence's language, when it is a plain word; anything else is dropped."""
    if isinstance(language, str) and language != "unknown" and _LANGUAGE.fullmatch(language):
        return language
    return ""


def fence(code: str, language: str = "") -> str:
    """Wrap code in a backtick fence longer than any backtick run inside it, so nothing inside can close it."""
    longest = max((len(run) for run in _BACKTICKS.findall(code)), default=0)
    marker = "`" * max(3, longest + 1)
    return f"{marker}{language_tag(language)}\n{code}\n{marker}"


def storable(text: str) -> str:
    """Replace lone surrogates (legal in a str, not in UTF-8) so the text can be written to a file."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
