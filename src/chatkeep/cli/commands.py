"""The commands that read and arrange conversations: list, show, search, fork, rename, rm, stats, path."""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import click

from ..store import AnyStore
from ..store.base import ConversationRecord, StoredMessage
from ..store.search import MARK_CLOSE, MARK_OPEN
from .common import db_option, json_option, open_db, store_target
from .errors import fail, handle_errors
from .organize import since_option
from .output import Output, short_time, terminal_text
from .text import listed_title

__all__ = ["branches", "fork", "list_", "path", "rename", "rm", "search", "show", "stats", "switch"]


def _conversation_row(store: AnyStore, record: ConversationRecord) -> dict[str, Any]:
    return {
        "id": record.id, "title": record.title, "display_title": record.display_title,
        "messages": store.count_messages(record.id), "created_at": record.created_at,
        "updated_at": record.updated_at, "owner": record.owner, "source": record.metadata.get("source"),
        "tags": list(record.tags), "pinned": record.pinned, "archived": record.archived,
    }


def _listed_title(row: dict[str, Any]) -> str:
    return listed_title(row["display_title"], pinned=row["pinned"], archived=row["archived"], source=row["source"])


@click.command("list")
@click.option("-n", "--count", default=20, show_default=True, help="How many conversations to list.")
@click.option("-q", "--filter", "text", metavar="TEXT",
              help="Only conversations whose title contains TEXT or whose messages match it (as search reads it).")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Only conversations with this tag (repeat: all of them).")
@click.option("--pinned", is_flag=True, help="Only pinned conversations.")
@click.option("--archived", is_flag=True, help="Only archived conversations (they are hidden otherwise).")
@click.option("--all", "everything", is_flag=True, help="Archived conversations too.")
@click.option("--since", metavar="DATE|SPAN", callback=since_option,
              help="Only conversations updated since a date (2026-01-31) or in a span (7d, 12h).")
@click.option("--model", help="Only conversations with replies from a model whose name starts with this.")
@click.option("--owner", help="Only conversations of this owner.")
@db_option
@json_option
@handle_errors
def list_(count: int, text: str | None, tags: tuple[str, ...], pinned: bool, archived: bool, everything: bool,
          since: datetime | None, model: str | None, owner: str | None, db: str | None, as_json: bool) -> None:
    """List conversations: pinned first, then the most recently updated.

    A conversation without a title shows the start of its first message.
    """
    if archived and everything:
        raise click.UsageError("--archived lists only archived conversations, --all every one: choose one")
    store = open_db(db, writes=False)  # as the fast path (quick.py) does: with --db, no settings are read
    records = store.list_conversations(
        limit=count, matching=text, owner=owner, tags=tags, pinned=True if pinned else None,
        archived=True if archived else None if everything else False, since=since, model=model, pinned_first=True)
    rows = [_conversation_row(store, r) for r in records]
    out = Output()
    if as_json:
        out.json(rows)
        return
    if not rows and out.fancy:
        out.line("No conversations match." if text or tags or pinned or archived or since or model or owner
                 else "No conversations yet: start one with chatkeep chat", style="dim")
    out.table(
        ["id", "title", "messages", "updated", "tags"],
        [[r["id"], _listed_title(r), str(r["messages"]), short_time(r["updated_at"]), ", ".join(r["tags"])]
         for r in rows],
    )


def _message_json(stored: StoredMessage) -> dict[str, Any]:
    return {
        "id": stored.id, "parent_id": stored.parent_id, "created_at": stored.created_at, "status": stored.status,
        "model": stored.model, "usage": stored.usage, "finish_reason": stored.finish_reason,
        "message": stored.message,
    }


def _heading(stored: StoredMessage) -> str:
    parts = [stored.role]
    if stored.model:
        parts.append(stored.model)
    if stored.status != "complete":
        parts.append(f"[{stored.status}{': ' + stored.error if stored.error else ''}]")
    return f"## {' · '.join(parts)}  ({short_time(stored.created_at)}, {stored.id})"


def _print_branch(out: Output, messages: list[StoredMessage]) -> None:
    from .attach import attachments_of

    for stored in messages:
        out.line(_heading(stored), style="bold cyan")
        out.markdown(stored.text or "(no text)")
        for attachment in attachments_of(stored.message):
            out.line(f"📎 {attachment}", style="dim")
        out.line()


def _print_tree(out: Output, messages: list[StoredMessage], head_path: set[str]) -> None:
    children: dict[str | None, list[StoredMessage]] = defaultdict(list)
    for stored in messages:
        children[stored.parent_id].append(stored)
    stack = [(root, 0) for root in reversed(children[None])]
    while stack:  # depth-first without recursion: branches can be thousands of messages deep
        stored, depth = stack.pop()
        mark = "*" if stored.id in head_path else " "
        text = stored.text.replace("\n", " ")
        out.line(f"{'  ' * depth}{mark} {stored.id} {stored.role}: {text[:70]}",
                 style="bold" if stored.id in head_path else None)
        siblings = children[stored.id]
        step = 1 if len(siblings) > 1 else 0  # a single child continues the same column
        stack.extend((child, depth + step) for child in reversed(siblings))


@click.command()
@click.argument("conversation_id")
@click.option("--tree", is_flag=True, help="Show every branch as a tree (* marks the current one).")
@db_option
@json_option
@handle_errors
def show(conversation_id: str, tree: bool, db: str | None, as_json: bool) -> None:
    """Show a conversation's current branch (or all its branches)."""
    store = open_db(db)
    record = store.get_conversation(conversation_id)
    branch = store.path(conversation_id)
    out = Output()
    if as_json:
        out.json({**_conversation_row(store, record), "messages": [_message_json(m) for m in branch]})
        return
    out.line(f"# {record.display_title}", style="bold")
    tagged = f" · tags: {', '.join(record.tags)}" if record.tags else ""
    marks = "".join(f" · {mark}" for mark, on in (("pinned", record.pinned), ("archived", record.archived)) if on)
    out.line(f"{record.id} · {len(branch)} messages on this branch · updated {short_time(record.updated_at)}"
             f"{tagged}{marks}", style="dim")
    out.line()
    if tree:
        everything = store.find_messages(conversation_id, kind="chat")
        everything += store.find_messages(conversation_id, kind="response_item")
        _print_tree(out, sorted(everything, key=lambda m: m.created_at), {m.id for m in branch})
    else:
        _print_branch(out, branch)


class _QueryCommand(click.Command):
    """A command whose arguments make a query: an argument that starts with ``-`` but is none of its options is a word.

    click alone reads ``-doing`` as the options ``-d -o ...`` (a usage error)
    and ``-nothing`` as ``-n othing``; in a query, ``-word`` excludes a word.
    Options are only their exact names (``-n 5``, ``--role=user``).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {name: not (param.is_flag or param.count)
                       for param in self.get_params(ctx) if isinstance(param, click.Option)
                       for name in (*param.opts, *param.secondary_opts)}
        options: list[str] = []
        words: list[str] = []
        rest = iter(args)
        for arg in rest:
            if arg == "--":
                words += rest
                break
            name = arg.split("=", 1)[0] if arg.startswith("--") else arg
            if name not in takes_value:
                words.append(arg)
                continue
            options.append(arg)
            if takes_value[name] and "=" not in arg:
                value = next(rest, None)
                if value is None:
                    raise click.BadOptionUsage(name, f"Option '{name}' requires an argument.", ctx)
                options.append(value)
        return super().parse_args(ctx, [*options, "--", *words])


@click.command(cls=_QueryCommand)
@click.argument("query", nargs=-1, required=True)
@click.option("-c", "--conversation", "conversation_id", metavar="ID", help="Only in this conversation.")
@click.option("--role", type=click.Choice(["system", "developer", "user", "assistant", "tool"]), help="Only this role.")
@click.option("--model", help="Only replies from models whose name starts with this.")
@click.option("--since", type=click.DateTime(), help="Only messages from this date on.")
@click.option("--until", type=click.DateTime(), help="Only messages before this date.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Only in conversations with this tag (repeat: all of them).")
@click.option("-n", "--count", default=20, show_default=True, help="How many results.")
@click.option("--newest", is_flag=True, help="The latest saved first, instead of the best first.")
@db_option
@json_option
@handle_errors
def search(query: tuple[str, ...], conversation_id: str | None, role: str | None, model: str | None,
           since: datetime | None, until: datetime | None, tags: tuple[str, ...], count: int, newest: bool,
           db: str | None, as_json: bool) -> None:
    """Search every message; any text works: words, "phrases", prefix*, -excluded.

    QUERY is every argument that is not one of the options below, joined by
    spaces, so -word excludes a word without a -- before it (chatkeep search
    coffee -decaf). Words are letters and digits, emoji and symbols; Chinese,
    Japanese, Korean and Thai text is found from any run of its characters.
    """
    store = open_db(db)
    filters: dict[str, Any] = {k: v for k, v in {"model": model, "since": _utc(since), "until": _utc(until)}.items() if v}
    hits = store.search(" ".join(query), conversation_id=conversation_id, role=role, tags=tags, limit=count,
                        order="newest" if newest else "relevance", **filters)
    out = Output()
    if as_json:
        out.json([{"conversation_id": h.message.conversation_id, "conversation_title": h.conversation_title,
                   "snippet": h.snippet(), **_message_json(h.message)} for h in hits])
        return
    for hit in hits:
        where = f"{hit.message.conversation_id} · {hit.conversation_title or ''}".rstrip(" ·")
        out.line(f"{where} · {hit.message.role} · {short_time(hit.created_at)} · {hit.message.id}", style="dim")
        # Controls in the text are shown, not obeyed; only chatkeep's own highlight is colour.
        opening, closing = ("[", "]") if not out.color else ("\x1b[1;33m", "\x1b[0m")
        snippet = closing.join(
            opening.join(terminal_text(piece) for piece in part.split(MARK_OPEN))
            for part in hit.marked_snippet.split(MARK_CLOSE)
        )
        click.echo(f"  {snippet.replace(chr(10), ' ')}")
    if not hits and out.fancy:
        out.line("No matches.", style="dim")


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(timezone.utc)


@click.command()
@click.argument("conversation_id")
@db_option
@json_option
@handle_errors
def branches(conversation_id: str, db: str | None, as_json: bool) -> None:
    """List a conversation's branches (* marks the current one); switch with chatkeep switch."""
    store = open_db(db)
    found = store.conversation(conversation_id).branches()
    out = Output()
    if as_json:
        out.json([{"tip": b.tip.id, "length": b.length, "current": b.current, "role": b.tip.role,
                   "text": b.tip.text, "created_at": b.tip.created_at} for b in found])
        return
    out.table(["", "tip", "messages", "last message"], [
        ["*" if b.current else "", b.tip.id, str(b.length), f"{b.tip.role}: {b.tip.text[:60]}".replace("\n", " ")]
        for b in found
    ])


@click.command()
@click.argument("conversation_id")
@click.argument("message_id")
@db_option
@handle_errors
def switch(conversation_id: str, message_id: str, db: str | None) -> None:
    """Move a conversation's head to MESSAGE_ID: continue from there, on its branch."""
    open_db(db).set_head(conversation_id, message_id)


@click.command()
@click.argument("conversation_id")
@click.option("--at", "at", metavar="MESSAGE", help="Fork at this message (default: the head).")
@click.option("--title", help="Title of the new conversation.")
@db_option
@handle_errors
def fork(conversation_id: str, at: str | None, title: str | None, db: str | None) -> None:
    """Copy a conversation's branch into a new conversation and print its id."""
    forked = open_db(db).fork(conversation_id, at=at, title=title)
    click.echo(forked.id)


@click.command()
@click.argument("conversation_id")
@click.argument("title")
@db_option
@handle_errors
def rename(conversation_id: str, title: str, db: str | None) -> None:
    """Set a conversation's title."""
    open_db(db).update_conversation(conversation_id, title=title)


@click.command()
@click.argument("conversation_ids", nargs=-1, required=True, metavar="ID...")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
@handle_errors
def rm(conversation_ids: tuple[str, ...], yes: bool, db: str | None) -> None:
    """Delete conversations and all their messages."""
    store = open_db(db)
    records = [store.get_conversation(cid) for cid in conversation_ids]  # all must exist before any goes
    if not yes:
        if not sys.stdin.isatty():
            fail("refusing to delete without confirmation: pass --yes")
        names = ", ".join(f"{r.id} ({r.title})" if r.title else r.id for r in records)
        click.confirm(f"Delete {names} and all their messages?", abort=True)
    for record in records:
        store.delete_conversation(record.id)


@click.command()
@click.argument("conversation_id", required=False)
@db_option
@json_option
@handle_errors
def stats(conversation_id: str | None, db: str | None, as_json: bool) -> None:
    """Counts of conversations and messages, and token usage by model."""
    store = open_db(db)
    if conversation_id is not None:
        store.get_conversation(conversation_id)
    data: dict[str, Any] = {
        "conversations": 1 if conversation_id else store.count_conversations(),
        "messages": store.count_messages(conversation_id),
        "usage_by_model": store.usage_by_model(conversation_id),
        **store.attachment_stats(),
    }
    out = Output()
    if as_json:
        out.json(data)
        return
    out.line(f"conversations: {data['conversations']:,}")
    out.line(f"messages: {data['messages']:,}")
    out.line(f"attachments: {data['attachments']:,} ({data['attachment_bytes']:,} bytes, each kept once)")
    out.table(["model", "replies", "prompt tokens", "completion tokens"], [
        [model, f"{u['replies']:,}", f"{u['prompt_tokens']:,}", f"{u['completion_tokens']:,}"]
        for model, u in sorted(data["usage_by_model"].items())
    ])


@click.command()
@db_option
def path(db: str | None) -> None:
    """Print where the conversation store is."""
    from ..store import resolve_target
    from ..store.postgres_pool import hide_password

    click.echo(hide_password(resolve_target(store_target(db))))
