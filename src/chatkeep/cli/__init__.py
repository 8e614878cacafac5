"""The ``chatkeep`` command line: a thin shell over the library.

Every command takes ``--db`` (a path or URL; default ``$CHATKEEP_DB``, then
the settings file's ``store``, then ``chatkeep.db`` in the user data directory).

:func:`main` (the console script, and ``python -m chatkeep``) answers a plain
piped ``chatkeep list`` itself (``quick.py``: no click, no store modules, a
cold start near Python's own) and hands every other command line to the
click group :data:`chatkeep.cli.app.cli`. Nothing heavy is imported here.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(args: list[str] | None = None) -> None:
    """Run ``chatkeep`` with ``args`` (default: the process's arguments); exit as a click command does."""
    from .quick import serve

    if serve(sys.argv[1:] if args is None else args):
        return
    from .app import cli

    cli(args=args)
