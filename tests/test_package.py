"""The package's outside: public names, entry points, and what importing it costs.

What the built sdist and wheel hold, and what a fresh install of the wheel does,
is checked by scripts/package-check (scripts/test runs it after pytest).
"""

from __future__ import annotations

import platform
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import chatkeep

ROOT = Path(__file__).resolve().parent.parent


def test_public_names_are_exactly_all() -> None:
    # The names load on first use (PEP 562): dir() lists them, and each one resolves.
    public = {name for name in dir(chatkeep) if not name.startswith("_")}
    assert all(getattr(chatkeep, name) is not None for name in chatkeep.__all__)
    modules = {"client", "context", "errors", "formats", "integrations", "items", "messages", "redact", "remote", "settings", "store", "cli", "annotations", "web"}
    assert public - modules == set(chatkeep.__all__)


def test_import_does_not_load_the_openai_sdk() -> None:
    code = "import sys, chatkeep; print(sorted(m for m in sys.modules if m.split('.')[0] in ('openai', 'httpx', 'httpx2', 'rich', 'tiktoken')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_python_m_chatkeep_prints_help_and_the_console_script_the_versions() -> None:
    module = subprocess.run([sys.executable, "-m", "chatkeep", "--help"], capture_output=True, text=True)
    assert module.returncode == 0 and "Usage:" in module.stdout
    script = subprocess.run([str(Path(sys.executable).parent / "chatkeep"), "--version"], capture_output=True, text=True)
    expected = f"chatkeep {chatkeep.__version__} (Python {platform.python_version()}, SQLite {sqlite3.sqlite_version})"
    assert script.returncode == 0 and script.stdout == expected + "\n"


def test_the_version_is_kept_in_one_place() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "chatkeep.__version__"}
    # setuptools reads the literal without importing chatkeep (which needs the runtime dependencies).
    source = (ROOT / "src" / "chatkeep" / "__init__.py").read_text(encoding="utf-8")
    assert re.findall(r"^__version__ = \"([^\"]+)\"$", source, re.MULTILINE) == [chatkeep.__version__]


def test_the_changelog_has_a_section_for_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[{re.escape(chatkeep.__version__)}\]", changelog, re.MULTILINE)


def test_docs_index_links_every_document() -> None:
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([^)#]+)", index))
    documents = {path.name for path in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert documents - linked == set(), "docs/index.md does not link these"
    assert {link for link in linked if not (ROOT / "docs" / link).exists()} == set(), "broken links in docs/index.md"
    assert "docs/index.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_package_is_typed() -> None:
    from importlib.resources import files

    assert files("chatkeep").joinpath("py.typed").is_file()
