"""The package's outside: public names, entry points, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import chatkeep


def test_public_names_are_exactly_all() -> None:
    public = {name for name in vars(chatkeep) if not name.startswith("_")}
    modules = {"client", "context", "errors", "formats", "integrations", "items", "messages", "redact", "store", "cli", "annotations"}
    assert public - modules == set(chatkeep.__all__)


def test_import_does_not_load_the_openai_sdk() -> None:
    code = "import sys, chatkeep; print(sorted(m for m in sys.modules if m.split('.')[0] in ('openai', 'httpx', 'httpx2', 'rich', 'tiktoken')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_python_m_chatkeep_and_the_console_script_print_help() -> None:
    module = subprocess.run([sys.executable, "-m", "chatkeep", "--help"], capture_output=True, text=True)
    assert module.returncode == 0 and "Usage:" in module.stdout
    script = subprocess.run([str(__import__("pathlib").Path(sys.executable).parent / "chatkeep"), "--version"],
                            capture_output=True, text=True)
    assert script.returncode == 0 and script.stdout.strip() == f"chatkeep, version {chatkeep.__version__}"


def test_the_package_is_typed() -> None:
    from importlib.resources import files

    assert files("chatkeep").joinpath("py.typed").is_file()
