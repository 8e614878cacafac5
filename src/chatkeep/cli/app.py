"""The click group behind ``chatkeep``: every command, loaded only when it runs.

``chatkeep.cli.main`` runs it (after the fast path for a piped ``list``,
see ``quick.py``); tests and the CLI reference use :data:`cli` directly.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import click

from .. import __version__

__all__ = ["COMMANDS", "cli"]

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


class _LazyGroup(click.Group):
    """A group that imports a command's module only when that command runs (or help lists it).

    ``chatkeep show`` then never pays for the chat, import or web modules' imports:
    the CLI's cold start is Python, click and the one command.
    """

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(import_module(f".{module}", __package__), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


# Every command: its name, then "module:function" under chatkeep.cli.
COMMANDS = {
    "chat": "chat:chat",
    "list": "commands:list_",
    "show": "commands:show",
    "branches": "commands:branches",
    "switch": "commands:switch",
    "search": "commands:search",
    "fork": "commands:fork",
    "rename": "commands:rename",
    "rm": "commands:rm",
    "stats": "commands:stats",
    "path": "commands:path",
    "export": "transfer:export",
    "import": "transfer:import_",
    "push": "remote:push",
    "tag": "organize:tag",
    "untag": "organize:untag",
    "tags": "organize:tags",
    "pin": "organize:pin",
    "unpin": "organize:unpin",
    "archive": "organize:archive",
    "unarchive": "organize:unarchive",
    "config": "config:config",
    "backup": "maintenance:backup",
    "restore": "maintenance:restore",
    "prune": "maintenance:prune",
    "redact": "maintenance:redact",
    "encrypt": "maintenance:encrypt",
    "decrypt": "maintenance:decrypt",
    "serve": "serve:serve",
}


@click.group(cls=_LazyGroup, lazy=COMMANDS, name="chatkeep",
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EPILOG)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the chatkeep, Python and SQLite versions and exit.")
def cli() -> None:
    """Keep OpenAI chat conversations: saved every turn, resumable, searchable."""
