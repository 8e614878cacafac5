"""``chatkeep config``: read and write the settings file (see :mod:`chatkeep.settings`)."""

from __future__ import annotations

import inspect
from typing import Any

import click

from .common import json_option
from .errors import handle_errors
from .output import Output

__all__ = ["config"]


def _shown(value: Any) -> str:
    """A value as it is written in the file: ``true``, ``90d``; an unset one as nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _key_help() -> str:
    from ..settings import KEYS

    return "\n".join(f"  {name:<12} {setting.help}" for name, setting in KEYS.items())


@click.group(epilog="Order: a flag, then the environment variable, then the settings file, then the default.")
def config() -> None:
    """Read and write chatkeep's settings file (defaults for chat and the store).

    The file is $CHATKEEP_CONFIG, else settings.toml in the user config
    directory (chatkeep config path). API keys are never kept there.
    """


@config.command("path")
def path() -> None:
    """Print where the settings file is (it may not exist yet)."""
    from ..settings import settings_path

    click.echo(str(settings_path()))


@config.command("get")
@click.argument("key")
@handle_errors
def get(key: str) -> None:
    """Print a setting's value: from the environment, else the file, else the default (nothing: no value)."""
    from ..settings import load_settings

    click.echo(_shown(load_settings().get(key)))


@config.command("set")
@click.argument("key")
@click.argument("value")
@handle_errors
def set_(key: str, value: str) -> None:
    """Write a setting to the file (chatkeep config list shows the keys)."""
    from ..settings import set_value

    set_value(key, value)


@config.command("unset")
@click.argument("key")
@handle_errors
def unset(key: str) -> None:
    """Remove a setting from the file: its default applies again."""
    from ..settings import settings_path, unset_value

    if not unset_value(key):
        click.echo(f"chatkeep: {key} is not set in {settings_path()}", err=True)


@config.command("list")
@click.option("--db", metavar="PATH", envvar="CHATKEEP_DB",
              help="Show the store as this flag would set it (every command takes --db).")
@json_option
@handle_errors
def list_(db: str | None, as_json: bool) -> None:
    """Every setting, its value, and where the value comes from (flag, env, the file, default)."""
    from ..settings import KEYS, load_settings
    from ..store.postgres_pool import hide_password

    settings = load_settings()
    source = click.get_current_context().get_parameter_source("db")
    given = db if source is click.core.ParameterSource.COMMANDLINE else None
    rows = [settings.resolve(name, given if name == "store" else None) for name in KEYS]
    values = {r.name: hide_password(r.value) if r.name == "store" and r.value else r.value for r in rows}
    out = Output()
    if as_json:
        out.json([{"key": r.name, "value": values[r.name], "source": r.source} for r in rows])
        return
    out.table(["key", "value", "from"], [[r.name, _shown(values[r.name]), r.source] for r in rows])


config.help = f"{inspect.cleandoc(config.help or '')}\n\nKeys:\n\n\b\n{_key_help()}"
