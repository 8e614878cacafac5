"""The pages, fragments and actions, each one library call (or a few) and a template.

Reads run in a worker thread (the stores are blocking). Actions answer htmx:
a fragment to swap in, and ``HX-Trigger: conversations-changed`` so the
sidebar reloads, or ``HX-Redirect`` when the page must change. A chatkeep
error becomes a 4xx answer carrying its one line, which the page shows.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl, quote

from ..errors import ChatkeepError, ConversationNotFound, MessageNotFound, StoreError
from .app import WebApp, conversation_url
from .messages import INLINE_TYPES, attachment_bytes
from .security import ATTACHMENT_CSP
from .turns import Action, TurnJob
from .views import (
    conversation_window,
    earlier_window,
    later_window,
    organizable,
    search_results,
    sidebar_page,
    snippet_pieces,
)

__all__ = ["routes"]

#: The largest form a page may post (a long pasted message).
MAX_FORM_BYTES = 8 * 1024 * 1024
_EXPORTS = {"markdown": ("Markdown", ".md"), "html": ("HTML page", ".html"), "messages": ("Messages JSON", ".json"),
            "jsonl": ("Fine-tuning JSONL", ".jsonl"), "openwebui": ("Open WebUI JSON", ".openwebui.json")}


async def _form(request: Any) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ChatkeepError(f"the form is larger than {MAX_FORM_BYTES:,} bytes")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _file_name(text: str) -> str:
    """A download's file name: letters, digits, dots, dashes and underscores only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "conversation"


class Pages:
    """The request handlers over one :class:`WebApp`."""

    def __init__(self, web: WebApp) -> None:
        self.web = web
        self.store = web.store

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(function, *args)

    # -- pages -------------------------------------------------------------------------

    def _sidebar(self, current: str | None) -> dict[str, Any]:
        items, next_offset = sidebar_page(self.store)
        return {"items": items, "next_offset": next_offset, "current_id": current, "archived": False, "tag": None,
                "organizable": organizable(self.store), "sidebar_query": _sidebar_query(current, False, None)}

    def _home_page(self) -> str:
        return self.web.render("home.html", **self._sidebar(None), model=self.web.config.model,
                               models=self.web.config.models, query="")

    async def home(self, request: Any) -> Any:
        from starlette.responses import HTMLResponse

        return HTMLResponse(await self._run(self._home_page))

    def _conversation_page(self, conversation_id: str, at: str | None) -> str:
        store = self.store
        record = store.get_conversation(conversation_id)
        window = conversation_window(store, record, at=at)
        on_head = window.tip == record.head_id
        return self.web.render(
            "conversation.html", **self._sidebar(record.id), record=record, window=window,
            count=store.count_messages(record.id), on_head=on_head, can_continue=on_head and window.later is None,
            model=record.metadata.get("model") or self.web.config.model, models=self.web.config.models,
            exports=_EXPORTS, query="",
        )

    async def conversation(self, request: Any) -> Any:
        from starlette.responses import HTMLResponse

        at = request.query_params.get("at") or None
        return HTMLResponse(await self._run(self._conversation_page, request.path_params["cid"], at))

    # -- fragments -----------------------------------------------------------------------

    def _sidebar_fragment(self, offset: int, archived: bool, tag: str | None, current: str | None) -> str:
        items, next_offset = sidebar_page(self.store, offset=offset, archived=archived, tag=tag)
        return self.web.render("_sidebar_items.html", items=items, next_offset=next_offset, current_id=current,
                               archived=archived, tag=tag, sidebar_query=_sidebar_query(current, archived, tag))

    async def sidebar(self, request: Any) -> Any:
        from starlette.responses import HTMLResponse

        params = request.query_params
        try:
            offset = max(0, int(params.get("offset") or 0))
        except ValueError:
            offset = 0
        html = await self._run(self._sidebar_fragment, offset, params.get("archived") == "1",
                               params.get("tag") or None, params.get("current") or None)
        return HTMLResponse(html)

    def _search_fragment(self, query: str) -> str:
        hits = search_results(self.store, query)
        return self.web.render("_search.html", query=query, hits=[(hit, snippet_pieces(hit)) for hit in hits])

    async def search(self, request: Any) -> Any:
        from starlette.responses import HTMLResponse

        query = request.query_params.get("q", "")
        if request.headers.get("hx-request"):
            return HTMLResponse(await self._run(self._search_fragment, query))

        def page() -> str:
            hits = search_results(self.store, query)
            return self.web.render("search.html", **self._sidebar(None), query=query,
                                   hits=[(hit, snippet_pieces(hit)) for hit in hits])

        return HTMLResponse(await self._run(page))

    async def before(self, request: Any) -> Any:
        from starlette.responses import HTMLResponse

        def page() -> str:
            first = self.store.get_message(request.path_params["mid"])
            window = earlier_window(self.store, first.conversation_id, first.id)
            return self.web.render("_window.html", window=window)

        return HTMLResponse(await self._run(page))

    async def after(self, request: Any) -> Any:
        from starlette.responses import HTMLResponse

        def page() -> str:
            last = self.store.get_message(request.path_params["mid"])
            record = self.store.get_conversation(last.conversation_id)
            window = later_window(self.store, record, last.id, request.query_params.get("tip") or "")
            return self.web.render("_window.html", window=window)

        return HTMLResponse(await self._run(page))

    async def part(self, request: Any) -> Any:
        """A message's attachment: images and audio inline, anything else as a download; never run."""
        from starlette.responses import Response

        message = await self._run(self.store.get_message, request.path_params["mid"])
        found = attachment_bytes(message.message, request.path_params["index"])
        if found is None:
            raise MessageNotFound(f"{message.id} has no attachment {request.path_params['index']}")
        data, media, name = found
        inline = media in INLINE_TYPES
        headers = {"content-security-policy": ATTACHMENT_CSP, "cache-control": "private, max-age=3600",
                   "content-disposition": f'{"inline" if inline else "attachment"}; filename="{_file_name(name)}"'}
        return Response(data, media_type=media if inline else "application/octet-stream", headers=headers)

    async def export(self, request: Any) -> Any:
        from starlette.responses import Response

        from ..formats import write_conversations

        conversation_id = request.path_params["cid"]
        chosen = request.query_params.get("format", "markdown")
        if chosen not in _EXPORTS:
            raise ChatkeepError(f"unknown export format {chosen!r} (expected one of {', '.join(_EXPORTS)})")

        def write() -> str:
            self.store.get_conversation(conversation_id)
            out = io.StringIO()
            write_conversations(self.store, [conversation_id], chosen, out)
            return out.getvalue()

        body = await self._run(write)
        name = _file_name(conversation_id) + _EXPORTS[chosen][1]
        media = {"markdown": "text/markdown", "html": "text/html", "jsonl": "application/jsonl"}.get(chosen,
                                                                                                    "application/json")
        # An exported page opened from here must not run anything either.
        return Response(body, media_type=f"{media}; charset=utf-8", headers={
            "content-disposition": f'attachment; filename="{name}"', "content-security-policy": ATTACHMENT_CSP})

    # -- actions ---------------------------------------------------------------------------

    def _head(self, conversation_id: str) -> str:
        record = self.store.get_conversation(conversation_id)
        return self.web.render("_head.html", record=record, count=self.store.count_messages(record.id),
                               exports=_EXPORTS, organizable=organizable(self.store))

    async def _changed(self, conversation_id: str, change: Callable[[], Any]) -> Any:
        from starlette.responses import HTMLResponse

        def run() -> str:
            change()
            return self._head(conversation_id)

        return HTMLResponse(await self._run(run), headers={"HX-Trigger": "conversations-changed"})

    async def rename(self, request: Any) -> Any:
        form = await _form(request)
        cid = request.path_params["cid"]
        title = " ".join(form.get("title", "").split())
        if not title:
            raise ChatkeepError("a title needs some text")
        return await self._changed(cid, lambda: self.store.update_conversation(cid, title=title))

    async def tag(self, request: Any) -> Any:
        form = await _form(request)
        cid = request.path_params["cid"]
        tags = [t for t in form.get("tag", "").split(",") if t.strip()]
        if not tags:
            raise ChatkeepError("a tag needs some text")
        return await self._changed(cid, lambda: self.store.add_tags(cid, tags))

    async def untag(self, request: Any) -> Any:
        form = await _form(request)
        cid = request.path_params["cid"]
        return await self._changed(cid, lambda: self.store.remove_tags(cid, [form.get("tag", "")]))

    async def pin(self, request: Any) -> Any:
        form = await _form(request)
        cid = request.path_params["cid"]
        return await self._changed(cid, lambda: self.store.set_pinned(cid, form.get("on") == "1"))

    async def archive(self, request: Any) -> Any:
        form = await _form(request)
        cid = request.path_params["cid"]
        return await self._changed(cid, lambda: self.store.set_archived(cid, form.get("on") == "1"))

    async def delete(self, request: Any) -> Any:
        from starlette.responses import Response

        await self._run(self.store.delete_conversation, request.path_params["cid"])
        return Response(status_code=204, headers={"HX-Redirect": "/"})

    async def fork(self, request: Any) -> Any:
        from starlette.responses import Response

        def fork() -> str:
            message = self.store.get_message(request.path_params["mid"])
            return str(self.store.fork(message.conversation_id, at=message.id).id)

        new_id = await self._run(fork)
        return Response(status_code=204, headers={"HX-Redirect": conversation_url(new_id)})

    async def switch(self, request: Any) -> Any:
        """Continue from another branch: the head moves to the newest tip under the chosen message."""
        from starlette.responses import Response

        from .views import branch_tip

        def switch() -> str:
            message = self.store.get_message(request.path_params["mid"])
            record = self.store.get_conversation(message.conversation_id)
            self.store.set_head(record.id, branch_tip(self.store, record, message.id))
            return f"{conversation_url(record.id)}?at={quote(message.id)}#m-{quote(message.id)}"

        return Response(status_code=204, headers={"HX-Redirect": await self._run(switch)})

    # -- turns -------------------------------------------------------------------------------

    async def _turn(self, request: Any, action: str, conversation_id: str | None, target: str | None = None) -> Any:
        from starlette.responses import StreamingResponse

        form = await _form(request)
        text = form.get("text", "")
        if action in ("send", "new", "edit") and not text.strip():
            raise ChatkeepError("the message is empty")
        model = form.get("model", "").strip() or self.web.config.model
        job = TurnJob(cast(Action, action), conversation_id, model, text=text, target=target)
        return StreamingResponse(self.web.turns.events(self.web.runner, job), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def send(self, request: Any) -> Any:
        return await self._turn(request, "send", request.path_params["cid"])

    async def send_new(self, request: Any) -> Any:
        return await self._turn(request, "new", None)

    async def edit(self, request: Any) -> Any:
        message = await self._run(self.store.get_message, request.path_params["mid"])
        return await self._turn(request, "edit", message.conversation_id, message.id)

    async def regenerate(self, request: Any) -> Any:
        message = await self._run(self.store.get_message, request.path_params["mid"])
        return await self._turn(request, "regenerate", message.conversation_id, message.id)

    async def stop(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"stopped": self.web.turns.stop(request.path_params["cid"])})


def _sidebar_query(current: str | None, archived: bool, tag: str | None) -> str:
    """The query string that reloads the sidebar as it is shown."""
    from urllib.parse import urlencode

    params = {"current": current or "", "archived": "1" if archived else "", "tag": tag or ""}
    return urlencode({k: v for k, v in params.items() if v})


async def _refused(request: Any, exc: Exception) -> Any:
    from starlette.responses import PlainTextResponse

    from ..redact import redact

    status = 404 if isinstance(exc, (ConversationNotFound, MessageNotFound)) else 400
    if isinstance(exc, StoreError) and status == 400:
        status = 409
    return PlainTextResponse(redact(str(exc)), status_code=status)


def routes(web: WebApp) -> list[Any]:
    """Every route of the application, most specific first (a conversation id may hold slashes)."""
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    pages = Pages(web)
    post = ["POST"]
    return [
        Route("/", pages.home), Route("/new", pages.home),
        Route("/sidebar", pages.sidebar), Route("/search", pages.search),
        Route("/new/send", pages.send_new, methods=post),
        Route("/m/{mid}/before", pages.before), Route("/m/{mid}/after", pages.after),
        Route("/m/{mid}/part/{index:int}", pages.part),
        Route("/m/{mid}/edit", pages.edit, methods=post), Route("/m/{mid}/regenerate", pages.regenerate, methods=post),
        Route("/m/{mid}/fork", pages.fork, methods=post), Route("/m/{mid}/switch", pages.switch, methods=post),
        Route("/c/{cid:path}/export", pages.export),
        Route("/c/{cid:path}/send", pages.send, methods=post), Route("/c/{cid:path}/stop", pages.stop, methods=post),
        Route("/c/{cid:path}/rename", pages.rename, methods=post), Route("/c/{cid:path}/delete", pages.delete, methods=post),
        Route("/c/{cid:path}/tags", pages.tag, methods=post), Route("/c/{cid:path}/untag", pages.untag, methods=post),
        Route("/c/{cid:path}/pin", pages.pin, methods=post), Route("/c/{cid:path}/archive", pages.archive, methods=post),
        Route("/c/{cid:path}", pages.conversation),
        Mount("/static", StaticFiles(packages=[("chatkeep.web", "static")]), name="static"),
    ]


EXCEPTION_HANDLERS = {ChatkeepError: _refused}
