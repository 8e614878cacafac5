"""``chatkeep import`` and ``chatkeep export``: conversation files in and out."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import db_option, open_db
from .errors import handle_errors
from .output import Output
from .remote import IMPORT_SOURCE, import_server_conversation

__all__ = ["export", "import_"]

# Kept here rather than imported so that ``--help`` does not load the importers; tests/test_import_samples.py
# checks they equal chatkeep.formats' own lists.
IMPORT_FORMATS = ["messages", "jsonl", "chatgpt", "sharegpt", "claude", "openwebui", "librechat", "chatbotui", "llm",
                  "deepseek", "grok", "aistudio", "llm-db", "agents-db", "langchain-db"]
EXPORT_FORMATS = ["messages", "jsonl", "markdown", "html", "openwebui"]


@click.command("import")
@click.argument("file", type=IMPORT_SOURCE)
@click.option("-f", "--format", "format_", type=click.Choice(IMPORT_FORMATS),
              help="The file's format (default: detected from its content).")
@click.option("--base-url", metavar="URL", help="For conv_...: the server (default: $OPENAI_BASE_URL, then OpenAI).")
@db_option
@handle_errors
def import_(file: Path | str, format_: str | None, base_url: str | None, db: str | None) -> None:
    """Import conversations from FILE: all of them in one transaction, or none.

    Files: the tutorial's JSON array of messages, OpenAI fine-tuning JSONL,
    ShareGPT, exports of ChatGPT, claude.ai and DeepSeek (conversations.json
    or the .zip), Open WebUI, LibreChat, Chatbot UI, Grok, Google AI Studio,
    a DeepSeek chat's history, `llm logs --json`. Databases, opened read-only
    and never changed: llm's logs.db, an Agents SDK session (SQLiteSession,
    AdvancedSQLiteSession), LangChain's SQLChatMessageHistory. The content
    tells the format; importing the same file again adds nothing.

    FILE may also be a conversation on the OpenAI server (conv_..., the
    Conversations API): every item is imported, and importing it again adds
    only the items it gained since.
    """
    if isinstance(file, str):  # conv_...: no such file, a server conversation
        if format_ is not None:
            raise click.UsageError(f"--format is for files; {file} is a server conversation")
        import_server_conversation(file, base_url, db)
        return
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


#: The format ``export -o FILE`` writes when no ``-f`` is given, by the file's extension (lower-cased).
_FORMAT_BY_EXTENSION = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html",
                       ".jsonl": "jsonl", ".json": "messages"}


@click.command()
@click.argument("conversation_ids", nargs=-1, metavar="[ID...]")
@click.option("--all", "everything", is_flag=True, help="Export every conversation (then name no ids).")
@click.option("-f", "--format", "format_", type=click.Choice(EXPORT_FORMATS),
              help="messages: the tutorial's JSON array; jsonl: one conversation a line, fine-tuning shaped; "
                   "markdown; html: a self-contained page; openwebui: Open WebUI's import file, every branch "
                   "kept. Default: from the -o file's extension (.md, .markdown, .html, .htm, .jsonl, .json), "
                   "else markdown.")
@click.option("--branch", metavar="MESSAGE", help="Export the branch ending at this message instead of the current one.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (default: stdout). FILE.zip: a zip of the markdown or html document and "
                   "its attachments (chat.html.zip picks html).")
@click.option("--inline", is_flag=True,
              help="Markdown and html: put images, audio and files into the document as data: URLs instead of "
                   "files beside it (one self-contained page).")
@db_option
def export(conversation_ids: tuple[str, ...], everything: bool, format_: str | None, branch: str | None,
           output: Path | None, inline: bool, db: str | None) -> None:
    """Export conversations (by id, or --all) to a file or stdout.

    Writing to a file replaces it whole (a new file beside it, then a rename):
    an existing file keeps its permissions, a new one is readable by you
    only, and a symlink stays a link whose target gets the export.

    Attachments: messages and jsonl carry images, audio and files inline, as
    the API takes them. Markdown and html write them as files in a folder
    beside -o FILE named after it (chat.md: chat_files/) and link them, or
    into the .zip, or inline with --inline. On stdout they are placeholders.
    """
    # Checked before handle_errors takes over, so click reports them as usage errors (exit code 2).
    if everything and conversation_ids:
        raise click.UsageError(f"--all exports every conversation: drop {' '.join(conversation_ids)}, or drop --all")
    if not conversation_ids and not everything:
        raise click.UsageError("name conversations to export, or pass --all")
    if format_ is None:
        # chat.html.zip: the document's own extension, before the .zip
        named = output.with_suffix("") if output is not None and output.suffix.lower() == ".zip" else output
        format_ = "markdown" if named is None else _FORMAT_BY_EXTENSION.get(named.suffix.lower(), "markdown")
    _export(None if everything else list(conversation_ids), format_, branch, output, inline, db)


@handle_errors
def _export(ids: list[str] | None, format_: str, branch: str | None, output: Path | None, inline: bool,
            db: str | None) -> None:
    from ..formats import write_conversations

    store = open_db(db)
    for cid in ids or []:
        store.get_conversation(cid)
    if output is None:
        warnings: list[str] = []
        write_conversations(store, ids, format_, sys.stdout, branch=branch,
                            attachments="inline" if inline else None, warnings=warnings)
        for warning in warnings:
            click.echo(f"chatkeep: {warning} (use -o FILE, or --inline)", err=True)
        return
    with Output().progress(f"Exporting to {output.name}"):
        write_conversations(store, ids, format_, output, branch=branch, attachments="inline" if inline else None)
    click.echo(f"Wrote {output}", err=True)
