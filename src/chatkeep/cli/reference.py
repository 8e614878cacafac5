"""The CLI reference (docs/cli.md), generated from the commands' own ``--help``.

Run ``python -m chatkeep.cli.reference > docs/cli.md``; a test fails when the
file is stale.
"""

from __future__ import annotations

import click

from .app import cli as main

__all__ = ["render"]


def _help(command: click.Command, name: str, parent: click.Context | None = None) -> str:
    context = click.Context(command, info_name=name, parent=parent, terminal_width=100, max_content_width=100,
                            help_option_names=["-h", "--help"])
    return command.get_help(context)


def render() -> str:
    """The whole reference as Markdown."""
    root = click.Context(main, info_name="chatkeep", terminal_width=100, max_content_width=100,
                         help_option_names=["-h", "--help"])
    parts = [
        "# chatkeep command line reference\n",
        "Generated from `--help` by `python -m chatkeep.cli.reference`; do not edit by hand.\n",
        f"## chatkeep\n\n```\n{_help(main, 'chatkeep')}\n```\n",
    ]
    assert isinstance(main, click.Group)
    for name in main.list_commands(root):
        command = main.get_command(root, name)
        assert command is not None
        parts.append(f"## chatkeep {name}\n\n```\n{_help(command, name, root)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
