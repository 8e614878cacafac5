"""The commands that protect and forget: backup, restore, prune, redact, encrypt, decrypt."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .._units import human_size
from ..redact import DETECTORS
from .common import db_option, json_option, open_db, store_target
from .errors import fail, handle_errors
from .output import Output, short_time

__all__ = ["backup", "decrypt", "encrypt", "prune", "redact", "restore"]

_POSTGRES_ENCRYPTION = ("PostgreSQL stores are encrypted by the server, not by chatkeep: encrypt its disk (or use "
                        "a managed server's encryption at rest) and require TLS (sslmode=verify-full on the URL); "
                        "see docs/maintenance.md")


def _target() -> tuple[str, str]:
    """Which store the command works on, as ``(kind, target)``: ``sqlite``, ``postgres``, ``json`` or ``memory``."""
    from ..store import resolve_target

    db = click.get_current_context().params.get("db")
    target = resolve_target(store_target(db))
    if target.startswith(("postgresql://", "postgres://")):
        return "postgres", target
    if target.startswith("sqlite:"):
        from ..store import _sqlite_path

        target = _sqlite_path(target)
    if target == ":memory:":
        return "memory", target
    if target.lower().endswith(".json"):
        return "json", target
    return "sqlite", str(Path(target).expanduser())


def _sqlite_file(what: str) -> Path:
    """The SQLite store's file, or a clear failure for the other kinds of store."""
    kind, target = _target()
    if kind == "postgres":
        from ..store.backup import postgres_advice
        from ..store.postgres_pool import hide_password

        fail(postgres_advice(hide_password(target)) if what in ("back up", "restore") else _POSTGRES_ENCRYPTION)
    if kind != "sqlite":
        fail(f"{target}: chatkeep {what.replace(' ', '')} works on SQLite stores only" if kind == "json"
             else "an in-memory store has nothing on disk")
    return Path(target)


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail("refusing to go on without confirmation: pass --yes")
    click.confirm(question, abort=True)


# -- backup and restore ------------------------------------------------------------


@click.command()
@click.argument("destination", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace DESTINATION if it exists.")
@db_option
@json_option
@handle_errors
def backup(destination: Path, force: bool, db: str | None, as_json: bool) -> None:
    """Copy the store to DESTINATION (a file, or a folder for a dated file) while it is in use.

    The copy is one consistent moment of the store, checked before it is given
    its name. An encrypted store's backup is encrypted with the same key.
    PostgreSQL: use pg_dump (this command prints how).
    """
    from ..store import SQLiteStore
    from ..store.backup import backup as backup_store

    _sqlite_file("back up")
    store = open_db(db)
    assert isinstance(store, SQLiteStore)
    report = backup_store(store, destination, force=force)
    if as_json:
        from ..store.backup import describe

        Output().json(describe(report))
        return
    click.echo(f"Backed up {report.conversations:,} conversations ({report.messages:,} messages) to {report.path} "
               f"({human_size(report.size)}{', encrypted' if report.encrypted else ''}; {report.seconds:.2f} s)")


@click.command()
@click.argument("backup_file", metavar="BACKUP", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
@json_option
@handle_errors
def restore(backup_file: Path, yes: bool, db: str | None, as_json: bool) -> None:
    """Replace the store with BACKUP (made by chatkeep backup), after checking it.

    The backup must open, pass SQLite's integrity check and be a chatkeep store
    this version can migrate. The current store is kept aside (NAME.before-restore)
    until the restored one has opened; any failure puts it back. Refused while
    another process has the store open.
    """
    from ..store.backup import restore as restore_store

    file = _sqlite_file("restore")
    if file.exists():
        _confirm(f"Replace {file} with {backup_file}? What was written since the backup was made is lost.", yes)
    report = restore_store(file, backup_file)
    if as_json:
        from ..store.backup import describe

        Output().json(describe(report))
        return
    click.echo(f"Restored {report.conversations:,} conversations ({report.messages:,} messages) from {backup_file} "
               f"into {report.path}")


# -- retention ---------------------------------------------------------------------


def _span(older_than: str | None) -> Any:
    from ..settings import load_settings, parse_duration

    if older_than is None:
        older_than = load_settings().get("retention")
        if older_than is None:
            fail("prune needs --older-than SPAN (such as 90d), or a retention setting: "
                 "chatkeep config set retention 90d")
    try:
        return parse_duration(str(older_than))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None


def _candidate_rows(candidates: Any) -> list[list[str]]:
    return [[c.id, c.title, short_time(c.updated_at), str(c.messages)] for c in candidates]


@click.command()
@click.option("--older-than", metavar="SPAN",
              help="Remove conversations last active more than SPAN ago: 12h, 90d, 6w, 1y "
                   "(default: the retention setting).")
@click.option("--keep-tag", "keep_tags", multiple=True, metavar="TAG", help="Keep conversations with this tag (repeatable).")
@click.option("--keep-pinned", is_flag=True, help="Keep pinned conversations.")
@click.option("--dry-run", is_flag=True, help="List exactly what would be removed, and remove nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
@json_option
@handle_errors
def prune(older_than: str | None, keep_tags: tuple[str, ...], keep_pinned: bool, dry_run: bool, yes: bool,
          db: str | None, as_json: bool) -> None:
    """Remove whole conversations whose last activity is older than a span, and give the space back.

    Their messages, search index entries and the attachments nothing else uses
    go too; a SQLite file is rebuilt so the removed text is gone from it and it
    shrinks. With no --older-than, the retention setting says how old
    (chatkeep config set retention 90d).
    """
    from ..store.prune import plan_prune
    from ..store.prune import prune as prune_store

    span = _span(older_than)
    store = open_db(db)
    plan = plan_prune(store, span, keep_tags=keep_tags, keep_pinned=keep_pinned)
    out = Output()
    summary = (f"{len(plan.conversations):,} conversations ({plan.messages:,} messages, {plan.attachments:,} "
               f"attachments) last active before {short_time(plan.cutoff)}")
    if dry_run or not plan.conversations:
        if as_json:
            out.json({"dry_run": dry_run, "cutoff": plan.cutoff, "conversations": plan.conversations,
                      "messages": plan.messages, "attachments": plan.attachments, "kept": plan.kept})
            return
        kept = f"; kept by a tag or a pin: {len(plan.kept):,}" if plan.kept else ""
        out.line(f"Would remove {summary}{kept}" if plan.conversations
                 else f"Nothing to remove: no conversation last active before {short_time(plan.cutoff)}{kept}")
        out.table(["id", "title", "last active", "messages"], _candidate_rows(plan.conversations))
        return
    _confirm(f"Remove {summary}?", yes)
    report = prune_store(store, plan)
    if as_json:
        out.json({"dry_run": False, "cutoff": plan.cutoff, "removed": report.removed, "skipped": report.skipped,
                  "attachments": report.attachments, "scrubbed": report.scrubbed})
        return
    out.line(f"Removed {len(report.removed):,} conversations ({sum(c.messages for c in report.removed):,} messages, "
             f"{report.attachments:,} attachments)")
    out.table(["id", "title", "last active", "messages"], _candidate_rows(report.removed))
    if report.skipped:
        out.line(f"Skipped {len(report.skipped)} that changed since they were listed: "
                 + ", ".join(c.id for c in report.skipped))
    _scrub_line(out, report.scrubbed, store)


def _scrub_line(out: Output, scrubbed: Any, store: Any) -> None:
    if scrubbed is None:
        return
    out.line(f"{store.file}: {human_size(scrubbed.bytes_before)} → {human_size(scrubbed.bytes_after)}")
    if not scrubbed.log_cleared:
        out.line(f"Another process is reading the store: the old text may stay in {store.file}-wal until it is "
                 "done; run the command again then")


# -- redaction ---------------------------------------------------------------------


@click.command()
@click.argument("conversation_id", required=False, metavar="[ID]")
@click.option("--all", "everything", is_flag=True, help="Redact every conversation (then name no ID).")
@click.option("--pattern", "patterns", multiple=True, metavar="REGEX",
              help="Also redact what this regular expression matches (repeatable).")
@click.option("--only", "detectors", multiple=True, metavar="DETECTOR",
              help=f"Use only this built-in detector (repeatable; default: all): {', '.join(DETECTORS)}.")
@click.option("--phone-region", default="US", show_default=True, metavar="CC",
              help="The country whose phone numbers are recognised without a + prefix.")
@click.option("--dry-run", is_flag=True, help="Show what would be redacted, per detector and where; change nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
@json_option
@handle_errors
def redact(conversation_id: str | None, everything: bool, patterns: tuple[str, ...], detectors: tuple[str, ...],
           phone_region: str, dry_run: bool, yes: bool, db: str | None, as_json: bool) -> None:
    """Replace secrets and personal data in stored messages, titles and the search index.

    Built-in detectors: API keys (OpenAI, Anthropic, Google, AWS, GitHub, Slack,
    Stripe), email addresses, phone numbers, card numbers (Luhn checksum) and
    IBANs (mod-97). Each match becomes [redacted:DETECTOR]; --pattern adds
    your own. On SQLite the old text is then gone from the database file and
    its log, not only from the rows. Backups made before keep it.
    """
    from ..redact import Redactor
    from ..store.redaction import redact_store

    if everything == (conversation_id is not None):
        raise click.UsageError("name one conversation ID, or pass --all")
    try:
        redactor = Redactor(detectors or None, patterns=patterns, phone_region=phone_region.upper() or None)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} ({', '.join(DETECTORS)})" if "detector" in str(exc) else str(exc)) from None
    store = open_db(db)
    plan = redact_store(store, redactor, conversation_id=conversation_id, dry_run=True)
    out = Output()
    if dry_run or not plan.hits:
        _redaction_summary(out, plan, as_json, "Would redact" if plan.hits else "Nothing to redact")
        return
    where = f"conversation {conversation_id}" if conversation_id else "every conversation"
    _confirm(f"Redact {plan.total:,} matches in {where}? This cannot be undone.", yes)
    report = redact_store(store, redactor, conversation_id=conversation_id)
    _redaction_summary(out, report, as_json, "Redacted")
    if not as_json:
        _scrub_line(out, report.scrubbed, store)


def _redaction_summary(out: Output, report: Any, as_json: bool, verb: str) -> None:
    if as_json:
        out.json({"dry_run": report.dry_run, "counts": report.counts, "messages": report.messages,
                  "titles": report.titles, "hits": report.hits, "scrubbed": report.scrubbed})
        return
    if not report.hits:
        out.line(f"{verb}: no detector matched")
        return
    out.line(f"{verb} {report.total:,} matches in {report.messages:,} messages and {report.titles:,} titles")
    out.table(["detector", "matches"], [[name, f"{count:,}"] for name, count in report.counts.items()])
    out.line()
    out.table(["conversation", "message", "where", "detector", "matches"],
              [[h.conversation_id, h.message_id or "-", h.place, h.detector, str(h.count)] for h in report.hits])


# -- encryption at rest ------------------------------------------------------------


@click.command()
@click.option("--keyring", "use_keyring", is_flag=True,
              help="Make a random key and keep it in the OS keyring, instead of using $CHATKEEP_KEY.")
@db_option
@handle_errors
def encrypt(use_keyring: bool, db: str | None) -> None:
    """Encrypt the SQLite store in place with SQLCipher, using the key in $CHATKEEP_KEY.

    An encrypted copy is written beside the store, checked (integrity, search
    index, counts) and swapped in; the plain file is gone only once the
    encrypted one is in its place. Refused while another process has the store
    open. Needs pip install 'chatkeep[encryption]' (and 'chatkeep[keyring]'
    for --keyring).
    """
    import os

    from ..store.encryption import KEY_ENV, encrypt_store, forget_key, new_raw_key, remember_key

    file = _sqlite_file("encrypt")
    key = os.environ.get(KEY_ENV, "")
    if use_keyring:
        key = new_raw_key()
        remember_key(file, key)
    elif not key:
        fail(f"set {KEY_ENV} to the key (a passphrase, or x'<64 hex digits>'), or pass --keyring; "
             "it is never given on the command line, where the shell history would keep it")
    try:
        done = encrypt_store(file, key)
    except BaseException:
        if use_keyring:
            forget_key(file)
        raise
    where = "kept in the OS keyring" if use_keyring else f"the one in ${KEY_ENV}"
    click.echo(f"Encrypted {done.file} ({done.conversations:,} conversations, {done.messages:,} messages checked). "
               f"Its key is {where}: without it the store cannot be opened.")


@click.command()
@db_option
@handle_errors
def decrypt(db: str | None) -> None:
    """Turn the encrypted store back into a plain SQLite file, in place (key from $CHATKEEP_KEY or the keyring).

    Checked and swapped in the same safe way as encrypt. Afterwards unset
    $CHATKEEP_KEY: a plain store does not open with a key set.
    """
    from ..store.encryption import KEY_ENV, decrypt_store, forget_key, resolve_key

    file = _sqlite_file("decrypt")
    _, source = resolve_key(str(file))
    done = decrypt_store(file)
    if "keyring" in source:
        forget_key(file)
    click.echo(f"Decrypted {done.file} ({done.conversations:,} conversations, {done.messages:,} messages checked)."
               + (f" Unset {KEY_ENV} to open it." if KEY_ENV in source else ""))
