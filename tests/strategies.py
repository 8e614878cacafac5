"""Hypothesis strategies for valid OpenAI chat messages."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Any text Python can hold, lone surrogates and NUL included: storage must keep it all.
text = st.text(max_size=40)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
# Keys chatkeep does not know, which must come back unchanged.
extras = st.dictionaries(st.sampled_from(["x_trace", "metadata_", "annotations", "zz"]), json_values, max_size=2)

text_part = st.builds(lambda t: {"type": "text", "text": t}, text)
image_part = st.builds(
    lambda url, detail: {"type": "image_url", "image_url": {"url": url, **detail}},
    text, st.sampled_from([{}, {"detail": "low"}, {"detail": "auto"}]),
)
audio_part = st.builds(lambda d: {"type": "input_audio", "input_audio": {"data": d, "format": "wav"}}, text)
file_part = st.builds(lambda f: {"type": "file", "file": {"file_id": "file-" + f}}, ids)
refusal_part = st.builds(lambda t: {"type": "refusal", "refusal": t}, text)


def _with(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {**extra, **base}


def _message(role: str, content: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda c, e: _with({"role": role, "content": c}, e), content, extras)


tool_call = st.builds(
    lambda i, name, args: {"id": "call_" + i, "type": "function", "function": {"name": name, "arguments": args}},
    ids, ids, text,
)
assistant = st.builds(
    lambda content, calls, e: _with(
        {"role": "assistant", "content": content, **({"tool_calls": calls} if calls else {})}, e
    ),
    st.none() | text | st.lists(text_part | refusal_part, min_size=1, max_size=3),
    st.lists(tool_call, min_size=1, max_size=3),
    extras,
)

messages = st.one_of(
    _message("system", text | st.lists(text_part, max_size=3)),
    _message("developer", text),
    _message("user", text | st.lists(text_part | image_part | audio_part | file_part, max_size=4)),
    assistant,
    st.builds(lambda c, i, e: _with({"role": "tool", "content": c, "tool_call_id": "call_" + i}, e), text, ids, extras),
    st.builds(lambda c, n, e: _with({"role": "function", "content": c, "name": n}, e), text | st.none(), ids, extras),
)
