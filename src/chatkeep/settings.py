"""Settings: one TOML file of defaults, below command-line flags and environment variables.

The file is ``$CHATKEEP_CONFIG`` when set, else ``settings.toml`` in the
user config directory (``platformdirs.user_config_dir("chatkeep")``:
``~/.config/chatkeep`` on Linux). ``chatkeep config set KEY VALUE`` writes it,
keeping its comments; it is created readable by its owner only.

A value comes from the first of these that has one:

1. a command-line flag (``--model``, ``--base-url``, ``--context``, ``--db``...);
2. an environment variable, for the keys that have one (``CHATKEEP_MODEL``,
   ``OPENAI_BASE_URL``, ``CHATKEEP_DB``);
3. the settings file;
4. chatkeep's built-in default.

API keys are never settings: a key whose name looks like one (``api_key``,
``token``, ``secret``, ``password``) is refused, in the file or on the command
line; the SDK reads ``OPENAI_API_KEY`` from the environment.

Reading settings imports only the standard library (``tomllib``; ``tomli`` on
Python 3.10); writing them imports ``tomlkit``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .errors import SettingsError

__all__ = [
    "CONFIG_ENV_VAR",
    "KEYS",
    "Resolved",
    "Setting",
    "Settings",
    "load_settings",
    "parse_duration",
    "set_value",
    "settings_path",
    "unset_value",
]

#: The environment variable that names another settings file.
CONFIG_ENV_VAR = "CHATKEEP_CONFIG"
FILE_NAME = "settings.toml"

_SECRET = re.compile(r"key|token|secret|passw|credential|auth", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+)\s*([hdwy])\s*$", re.IGNORECASE)
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1), "y": timedelta(days=365)}


def settings_path() -> Path:
    """Where the settings file is: ``$CHATKEEP_CONFIG``, else ``settings.toml`` in the user config directory."""
    override = os.environ.get(CONFIG_ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_path

    return user_config_path("chatkeep", appauthor=False) / FILE_NAME


def parse_duration(text: str) -> timedelta:
    """A span of time written as a number and a unit: ``12h``, ``90d``, ``6w``, ``1y`` (365 days).

    Raises ``ValueError`` saying what is expected. Months are not a unit (they
    differ in length): write ``180d``.
    """
    found = _DURATION.match(text) if isinstance(text, str) else None
    if found is None or int(found.group(1)) == 0:
        raise ValueError(f"expected a span such as 12h, 90d, 6w or 1y, got {text!r}")
    return int(found.group(1)) * _UNITS[found.group(2).lower()]


# -- what each key holds ------------------------------------------------------------


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected text, got {_shown(value)}")
    return value.strip()


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_shown(value)}")
    return value


def _parse_boolean(text: str) -> bool:
    words = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
    try:
        return words[text.strip().lower()]
    except KeyError:
        raise ValueError(f"expected true or false, got {text!r}") from None


def _context(value: Any) -> str:
    if value not in ("all", "trim", "summarize"):
        raise ValueError(f"expected 'all', 'trim' or 'summarize', got {_shown(value)}")
    return str(value)


def _url(value: Any) -> str:
    url = _text(value)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise ValueError("a URL with credentials in it is not kept in settings: put the key in OPENAI_API_KEY")
    return url


def _span(value: Any) -> str:
    parse_duration(_text(value))
    return str(value).strip()


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)


@dataclass(frozen=True)
class Setting:
    """One key of the settings file: what it holds, its default, and what overrides it."""

    name: str
    help: str
    #: Checks a value read from the file (raises ``ValueError`` saying what is expected) and returns it.
    check: Callable[[Any], Any]
    default: Any = None
    #: Reads the text typed after ``chatkeep config set KEY``.
    parse: Callable[[str], Any] = field(default=lambda text: text)
    #: The environment variable that overrides the file, if there is one.
    env: str | None = None
    #: The command-line flag that overrides both.
    flag: str | None = None


KEYS: dict[str, Setting] = {s.name: s for s in (
    Setting("model", "the model a new chat uses", _text, "gpt-4o", env="CHATKEEP_MODEL", flag="chat --model"),
    Setting("base_url", "an OpenAI-compatible server (default: OpenAI's)", _url, env="OPENAI_BASE_URL",
            flag="chat --base-url"),
    Setting("context", "what a chat sends once it outgrows the context window: all, trim or summarize", _context,
            "all", flag="chat --context"),
    Setting("auto_title", "give an untitled conversation a title written by title_model after its first reply",
            _boolean, False, parse=_parse_boolean, flag="chat --auto-title"),
    Setting("title_model", "the (cheap) model that writes titles", _text, "gpt-4o-mini", flag="chat --title-model"),
    Setting("retention", "how long prune keeps conversations, such as 90d (none: prune needs --older-than)", _span),
    Setting("redact_on_write", "redact API keys, emails, phone numbers, card numbers and IBANs in every message "
            "before it is stored (as chatkeep redact does)", _boolean, False, parse=_parse_boolean),
    Setting("store", "the store: a SQLite file, a .json file or a postgresql:// URL (default: chatkeep.db in the "
            "user data dir)", _text, env="CHATKEEP_DB", flag="--db"),
)}


def _refuse_secret(name: str, *, file: str | None = None, line: int | None = None) -> None:
    if _SECRET.search(name):
        raise SettingsError("API keys and other secrets are never kept in settings: set OPENAI_API_KEY in the "
                            "environment (or your secret manager) instead", file=file, line=line, key=name)


def _known(name: str, *, file: str | None = None, line: int | None = None) -> Setting:
    _refuse_secret(name, file=file, line=line)
    if name not in KEYS:
        from difflib import get_close_matches

        close = get_close_matches(name, KEYS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise SettingsError(f"unknown setting ({hint}known: {', '.join(KEYS)})", file=file, line=line, key=name)
    return KEYS[name]


def _line_of(text: str, name: str) -> int | None:
    """The line that sets ``name`` at the top level (tomllib keeps no positions)."""
    quoted = re.escape(name)
    pattern = re.compile(rf"""^\s*(\[+\s*)?(?:{quoted}|"{quoted}"|'{quoted}')\s*[=.\]]""")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


# -- reading --------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """A setting's value and where it came from: ``flag --db``, ``env CHATKEEP_DB``, the file's path, or ``default``."""

    name: str
    value: Any
    source: str


@dataclass(frozen=True)
class Settings:
    """The settings file's values, checked (an absent file holds none)."""

    path: Path
    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """The value that applies when no flag is given: the environment's, the file's, or the default."""
        return self.resolve(name).value

    def resolve(self, name: str, flag: Any = None, *, flag_name: str | None = None) -> Resolved:
        """Where ``name``'s value comes from: ``flag`` (when not ``None``), its environment variable, the file, the default."""
        setting = _known(name)
        if flag is not None:
            return Resolved(name, flag, f"flag {flag_name or setting.flag}")
        if setting.env and os.environ.get(setting.env, "").strip():
            return Resolved(name, os.environ[setting.env].strip(), f"env {setting.env}")
        if name in self.values:
            return Resolved(name, self.values[name], str(self.path))
        return Resolved(name, setting.default, "default")


def _read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "", {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot be read ({getattr(exc, 'strerror', None) or exc})", file=str(path)) from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        stated = re.search(r"line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(stated.group(1)) if stated else text.count("\n") + 1)
        raise SettingsError(f"not valid TOML ({exc})", file=str(path), line=line) from exc


def load_settings(path: Path | None = None) -> Settings:
    """Read and check the settings file (``settings_path()`` by default); a missing file holds no settings.

    Unknown keys, secrets and values of the wrong kind raise ``SettingsError``
    naming the file, line and key.
    """
    path = path or settings_path()
    text, data = _read_toml(path)
    values: dict[str, Any] = {}
    for name, value in data.items():
        line = _line_of(text, name)
        for inner in value if isinstance(value, dict) else ():  # a table: a secret in it is named as such
            _refuse_secret(f"{name}.{inner}", file=str(path), line=_line_of(text, inner) or line)
        setting = _known(name, file=str(path), line=line)
        try:
            values[name] = setting.check(value)
        except ValueError as exc:
            raise SettingsError(str(exc), file=str(path), line=line, key=name) from None
    return Settings(path, values)


# -- writing --------------------------------------------------------------------------

_HEADER = ("chatkeep settings: `chatkeep config list` shows every key, its value and where it comes from.\n"
           "Command-line flags and environment variables override what is set here.")


def _rewrite(path: Path, change: Callable[[Any], bool]) -> bool:
    """Apply ``change`` to the file's TOML document (comments kept) and replace the file atomically, owner-only."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    from .store.files import ensure_private_dir

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot be read ({getattr(exc, 'strerror', None) or exc})", file=str(path)) from exc
    try:
        document = tomlkit.parse(text) if text is not None else tomlkit.document()
    except TOMLKitError as exc:
        raise SettingsError(f"not valid TOML ({exc}); fix or remove it first", file=str(path),
                            line=getattr(exc, "line", None)) from exc
    if text is None:
        for line in _HEADER.splitlines():
            document.add(tomlkit.comment(line))
        document.add(tomlkit.nl())
    if not change(document):
        return False
    ensure_private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(tomlkit.dumps(document))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise SettingsError(f"cannot be written ({exc.strerror or exc})", file=str(path)) from exc
    return True


def set_value(name: str, text: str, *, path: Path | None = None) -> Any:
    """Check ``text`` as ``name``'s value and write it to the settings file; return the value written."""
    setting = _known(name)
    try:
        value = setting.check(setting.parse(text))
    except ValueError as exc:
        raise SettingsError(str(exc), key=name) from None

    def assign(document: Any) -> bool:
        document[name] = value
        return True

    _rewrite(path or settings_path(), assign)
    return value


def unset_value(name: str, *, path: Path | None = None) -> bool:
    """Remove ``name`` from the settings file (its default applies again); say whether it was there.

    Any key can be removed, an unknown or misspelt one included, so a file
    that fails to load can be repaired from the command line.
    """
    path = path or settings_path()
    if not path.exists():
        return False

    def remove(document: Any) -> bool:
        if name not in document:
            return False
        del document[name]
        return True

    return _rewrite(path, remove)
