"""``chatkeep import`` and ``chatkeep export``: conversation files in and out."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import db_option, open_db
from .errors import handle_errors
from .output import Output

__all__ = ["export", "import_"]

IMPORT_FORMATS = ["messages", "jsonl", "chatgpt", "sharegpt"]
EXPORT_FORMATS = ["messages", "jsonl", "markdown", "html"]


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-f", "--format", "format_", type=click.Choice(IMPORT_FORMATS),
              help="The file's format (default: detected from its content).")
@db_option
@handle_errors
def import_(file: Path, format_: str | None, db: str | None) -> None:
    """Import conversations from FILE: all of them in one transaction, or none.

    Formats: the tutorial's JSON array of messages, OpenAI fine-tuning JSONL, a
    ChatGPT data export (conversations.json or the .zip), ShareGPT. Importing
    the same file again adds nothing.
    """
    from ..formats import detect_format, read_conversations

    store = open_db(db)
    chosen = format_ or detect_format(file)
    warnings: list[str] = []
    out = Output()
    with out.progress(f"Importing {file.name} ({chosen})") as update:
        summary = store.import_conversations(
            read_conversations(file, chosen, warnings=warnings),
            progress=lambda s: update(detail=f"{len(s.conversation_ids):,} conversations, {s.messages_added:,} messages"),
        )
    for warning in warnings:
        click.echo(f"chatkeep: warning: {warning}", err=True)
    click.echo(
        f"Imported {summary.conversations_created:,} new and {summary.conversations_updated:,} updated "
        f"conversations, {summary.messages_added:,} messages ({summary.messages_skipped:,} already there) "
        f"from {file} ({chosen})."
    )


@click.command()
@click.argument("conversation_ids", nargs=-1, metavar="[ID...]")
@click.option("--all", "everything", is_flag=True, help="Export every conversation.")
@click.option("-f", "--format", "format_", type=click.Choice(EXPORT_FORMATS), default="markdown", show_default=True,
              help="messages: the tutorial's JSON array; jsonl: one conversation a line, fine-tuning shaped; "
                   "markdown; html: a self-contained page.")
@click.option("--branch", metavar="MESSAGE", help="Export the branch ending at this message instead of the current one.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (default: stdout).")
@db_option
@handle_errors
def export(conversation_ids: tuple[str, ...], everything: bool, format_: str, branch: str | None,
           output: Path | None, db: str | None) -> None:
    """Export conversations (by id, or --all) to a file or stdout."""
    from ..formats import write_conversations

    if not conversation_ids and not everything:
        raise click.UsageError("name conversations to export, or pass --all")
    store = open_db(db)
    ids = None if everything else list(conversation_ids)
    for cid in ids or []:
        store.get_conversation(cid)
    if output is None:
        write_conversations(store, ids, format_, sys.stdout, branch=branch)
        return
    with Output().progress(f"Exporting to {output.name}"):
        # Given a path, the exporter writes atomically (temporary file, rename) and owner-only.
        write_conversations(store, ids, format_, output, branch=branch)
    click.echo(f"Wrote {output}", err=True)
