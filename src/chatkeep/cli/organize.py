"""The commands that organize conversations: tag, untag, tags, pin, unpin, archive, unarchive."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from ..store import AnyStore
from ..store.base import ConversationRecord
from .common import db_option, json_option, open_db
from .errors import handle_errors
from .output import Output

__all__ = ["archive", "parse_since", "pin", "since_option", "tag", "tags", "unarchive", "unpin", "untag"]


def parse_since(text: str) -> datetime:
    """A moment: a date (``2026-01-31``), a date and time (``2026-01-31T09:30``, local time unless
    it names a zone), or a span back from now (``7d``, ``12h``); ``ValueError`` says what is expected."""
    from ..settings import parse_duration

    text = text.strip()
    try:
        return datetime.now(timezone.utc) - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except ValueError:
        raise ValueError(f"expected a date (2026-01-31), a date and time (2026-01-31T09:30) or a span such as "
                         f"12h, 7d, 6w or 1y, got {text!r}") from None


def since_option(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """The ``--since DATE|SPAN`` callback."""
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _records(store: AnyStore, conversation_ids: tuple[str, ...]) -> list[ConversationRecord]:
    # Every conversation must exist before any is changed.
    return [store.get_conversation(conversation_id) for conversation_id in conversation_ids]


def _tag_line(record: ConversationRecord) -> str:
    return f"{record.id}: {', '.join(record.tags) if record.tags else '(no tags)'}"


@click.command()
@click.argument("conversation_id")
@click.argument("names", nargs=-1, required=True, metavar="TAG...")
@db_option
@handle_errors
def tag(conversation_id: str, names: tuple[str, ...], db: str | None) -> None:
    """Tag a conversation and print its tags (lower case; quote a tag with spaces).

    chatkeep list --tag TAG and chatkeep search --tag TAG find tagged conversations.
    """
    click.echo(_tag_line(open_db(db).add_tags(conversation_id, names)))


@click.command()
@click.argument("conversation_id")
@click.argument("names", nargs=-1, required=True, metavar="TAG...")
@db_option
@handle_errors
def untag(conversation_id: str, names: tuple[str, ...], db: str | None) -> None:
    """Take tags off a conversation and print the tags it still has."""
    click.echo(_tag_line(open_db(db).remove_tags(conversation_id, names)))


@click.command()
@db_option
@json_option
@handle_errors
def tags(db: str | None, as_json: bool) -> None:
    """List every tag and how many conversations carry it."""
    counts = open_db(db).tag_counts()
    out = Output()
    if as_json:
        out.json(counts)
        return
    if not counts and out.fancy:
        out.line("No tags yet: add one with chatkeep tag ID TAG", style="dim")
    out.table(["tag", "conversations"], [[name, str(count)] for name, count in counts.items()])


def _marker(name: str, flag: str, on: bool, summary: str) -> click.Command:
    @click.command(name, help=summary)
    @click.argument("conversation_ids", nargs=-1, required=True, metavar="ID...")
    @db_option
    @handle_errors
    def command(conversation_ids: tuple[str, ...], db: str | None) -> None:
        store = open_db(db)
        for record in _records(store, conversation_ids):
            if flag == "pinned":
                store.set_pinned(record.id, on)
            else:
                store.set_archived(record.id, on)

    return command


pin = _marker("pin", "pinned", True, "Pin conversations: chatkeep list shows them first.")
unpin = _marker("unpin", "pinned", False, "Unpin conversations.")
archive = _marker("archive", "archived", True, "Archive conversations: chatkeep list hides them (--archived shows "
                  "them); every message is kept and search still finds them.")
unarchive = _marker("unarchive", "archived", False, "Bring archived conversations back into chatkeep list.")
