"""The ``chatkeep`` command line: a thin shell over the library."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chatkeep")
def main() -> None:
    """Keep OpenAI chat conversations: saved every turn, resumable, searchable."""


@main.command()
@click.option("--db", metavar="PATH", help="The store to use (default: $CHATKEEP_DB, then the user data dir).")
def path(db: str | None) -> None:
    """Print where the conversation store is."""
    from .store import resolve_target

    click.echo(resolve_target(db))
