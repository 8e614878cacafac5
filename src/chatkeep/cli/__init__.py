"""The ``chatkeep`` command line: a thin shell over the library.

Every command takes ``--db`` (a path or URL; default ``$CHATKEEP_DB``, then
``chatkeep.db`` in the user data directory).
"""

from __future__ import annotations

import click

from .. import __version__

__all__ = ["main"]

EPILOG = """Exit codes: 0 success, 1 error (bad input, not found, store),
2 usage error, 3 the model call failed (your message is kept),
130 interrupted."""


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """Print ``chatkeep 0.2.0 (Python 3.11.7, SQLite 3.40.1)``: what a bug report needs."""
    if not value or ctx.resilient_parsing:
        return
    import platform
    import sqlite3

    click.echo(f"chatkeep {__version__} (Python {platform.python_version()}, SQLite {sqlite3.sqlite_version})")
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EPILOG)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the chatkeep, Python and SQLite versions and exit.")
def main() -> None:
    """Keep OpenAI chat conversations: saved every turn, resumable, searchable."""


def _register() -> None:
    from .chat import chat
    from .commands import branches, fork, list_, path, rename, rm, search, show, stats, switch
    from .transfer import export, import_

    for command in (chat, list_, show, branches, switch, search, export, import_, fork, rename, rm, stats, path):
        main.add_command(command)


_register()
