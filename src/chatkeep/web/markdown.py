"""Message text to safe HTML: Markdown rendered by markdown-it-py, code by Pygments, all of it sanitized by nh3.

Stored text is whatever a model, an import or a user wrote, so it is treated
as hostile. Two walls stand between it and the page: markdown-it renders
with raw HTML switched off (``<script>`` becomes text) and refuses
``javascript:`` and ``data:`` links, and nh3 (the Ammonia sanitizer) then keeps
only an allow-list of tags, attributes, classes and URL schemes, whatever the
renderer let through. Images in Markdown become links: an ``<img>`` pointing
outside the machine would be a tracking pixel (the page's
Content-Security-Policy refuses to load it anyway).
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

from markupsafe import Markup

__all__ = ["MARKDOWN_LIMIT", "markdown_html", "plain_html"]

#: Longer texts are shown as plain text: rendering megabytes of Markdown would stall the page.
MARKDOWN_LIMIT = 200_000
#: Longer code blocks are shown without colours.
HIGHLIGHT_LIMIT = 50_000

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "span",
}
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _classes() -> dict[str, set[str]]:
    """The class names Pygments writes (short names such as ``k``, ``s1``), the only ones content may carry."""
    from pygments.token import STANDARD_TYPES

    return {"span": {name for name in STANDARD_TYPES.values() if name}, "pre": {"code"}}


def _highlight(code: str, lang: str, _attrs: Any) -> str:
    """A fenced block in Pygments' colours, or ``""`` to let markdown-it escape it as it is."""
    if not lang or len(code) > HIGHLIGHT_LIMIT:
        return ""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(lang.split()[0], stripnl=False)
    except ClassNotFound:
        return ""
    return f'<pre class="code"><code>{highlight(code, lexer, HtmlFormatter(nowrap=True))}</code></pre>\n'


def _image_as_link(self: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    token = tokens[index]
    source = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or source
    return f'<a href="{html.escape(source, quote=True)}">{html.escape("image: " + alt)}</a>'


@lru_cache(maxsize=1)
def _renderer() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    # Fenced code without a known language still gets the class the copy button and styles look for.
    default_fence = md.renderer.rules["fence"]  # type: ignore[attr-defined]

    def fence(tokens: Any, index: int, options: Any, env: Any) -> str:
        rendered = str(default_fence(tokens, index, options, env))
        return rendered if rendered.startswith('<pre class="code">') else rendered.replace("<pre>", '<pre class="code">', 1)

    md.add_render_rule("fence", lambda self, tokens, index, options, env: fence(tokens, index, options, env))
    md.add_render_rule("code_block", lambda self, tokens, index, options, env: fence(tokens, index, options, env))
    return md


def sanitize(fragment: str) -> Markup:
    """Keep only the allow-listed tags, attributes, classes and URL schemes of an HTML fragment."""
    import nh3

    cleaned = nh3.clean(
        fragment, tags=_TAGS, attributes=_ATTRIBUTES, allowed_classes=_classes(), url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow", clean_content_tags={"script", "style"},
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return Markup(cleaned)  # noqa: S704 - sanitized by nh3 just above


def markdown_html(text: str) -> Markup:
    """``text`` rendered as Markdown and sanitized; a text too long to render is shown plain."""
    if len(text) > MARKDOWN_LIMIT:
        return plain_html(text)
    return sanitize(_renderer().render(text))


def plain_html(text: str) -> Markup:
    """``text`` shown exactly as it is, in a block that keeps its lines."""
    return Markup('<pre class="plain">{}</pre>').format(text)
