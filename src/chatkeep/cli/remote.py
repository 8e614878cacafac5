"""``chatkeep push``, and ``chatkeep import conv_...``: conversations to and from OpenAI's Conversations API.

The server and key come as ``chatkeep chat`` takes them: ``--base-url`` or
``$OPENAI_BASE_URL``, and ``$OPENAI_API_KEY``. The openai SDK is imported only
when one of these runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click

from .chat import MissingKey
from .common import db_option, open_db
from .errors import handle_errors
from .output import Output

__all__ = ["IMPORT_SOURCE", "import_server_conversation", "push"]

#: A server conversation's id, as the API makes them (``conv_`` and letters, digits, ``_`` or ``-``).
SERVER_CONVERSATION = re.compile(r"conv_[A-Za-z0-9_-]+")

BASE_URL_HELP = "An OpenAI-compatible server (default: $OPENAI_BASE_URL, then OpenAI)."


class ImportSource(click.Path):
    """A file to import, or (when no such file exists) a server conversation's ``conv_...`` id."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and SERVER_CONVERSATION.fullmatch(value) and not os.path.exists(value):
            return value
        return super().convert(value, param, ctx)


#: ``chatkeep import``'s argument: an existing file, or ``conv_...`` (returned as a ``str``).
IMPORT_SOURCE = ImportSource(exists=True, dir_okay=False, path_type=Path)


def server_client(base_url: str | None) -> Any:
    """An ``openai.OpenAI`` for ``--base-url`` (else ``$OPENAI_BASE_URL``, else OpenAI) and ``$OPENAI_API_KEY``."""
    from openai import OpenAI

    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    key = os.environ.get("OPENAI_API_KEY")
    if not key and base_url is None:
        raise MissingKey()
    return OpenAI(api_key=key or "no-key", base_url=base_url)


def import_server_conversation(server_id: str, base_url: str | None, db: str | None) -> None:
    """``chatkeep import conv_...``: pull a server conversation into the store and say what changed."""
    from ..remote import pull

    store = open_db(db)
    client = server_client(base_url)
    with Output().progress(f"Importing {server_id}"):
        result = pull(store, client, server_id)
    if result.created:
        click.echo(f"Imported {server_id} as {result.conversation_id}: {result.added:,} items.")
    elif not result.added:
        click.echo(f"Nothing new in {server_id}: its {result.known:,} items are already in {result.conversation_id}.")
    else:
        where = " on a branch of their own (turns were added here since: chatkeep branches shows it)" \
            if result.branched else ""
        click.echo(f"Imported {result.added:,} new items of {server_id} into {result.conversation_id}{where} "
                   f"({result.known:,} already there).")


@click.command()
@click.argument("conversation_id", metavar="ID")
@click.option("--new", is_flag=True, help="Make a new server conversation even if ID was pushed or imported before.")
@click.option("--base-url", metavar="URL", help=BASE_URL_HELP)
@db_option
@handle_errors
def push(conversation_id: str, new: bool, base_url: str | None, db: str | None) -> None:
    """Copy conversation ID's current branch to a server conversation (OpenAI's Conversations API).

    The first push creates the server conversation (20 items a request) and
    remembers it; pushing again sends only what is new. Continue it on the
    server with ResponsesChat(..., conversation="conv_..."), and bring it back
    with chatkeep import conv_....
    """
    from ..remote import push as push_conversation

    store = open_db(db)
    store.get_conversation(conversation_id)  # a missing one is reported before any network call
    client = server_client(base_url)
    with Output().progress(f"Pushing {conversation_id}"):
        result = push_conversation(store, client, conversation_id, new=new)
    if result.created:
        click.echo(f"Pushed {conversation_id} to {result.server_id} (new): {result.messages:,} messages as "
                   f"{result.items:,} items.")
    elif result.items:
        click.echo(f"Pushed {result.messages:,} new messages of {conversation_id} to {result.server_id} as "
                   f"{result.items:,} items.")
    else:
        click.echo(f"Nothing new to push: {result.server_id} already holds {conversation_id}'s current branch.")
