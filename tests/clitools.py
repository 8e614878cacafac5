"""Running the real ``chatkeep`` command: piped (plain output) or on a pseudo-terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The interactive prompt as prompt_toolkit draws it on a terminal ("> " with a cursor move).
PROMPT = re.compile(r">(\x08\x1b\[2C| )")

IDS = re.compile(r"\b01[0-9a-hjkmnp-tv-z]{24}\b")
TIMES = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?")


@dataclass
class Result:
    code: int
    out: str
    err: str


def normalize(text: str) -> str:
    """Replace generated ids and timestamps so whole outputs can be compared."""
    seen: dict[str, str] = {}
    text = IDS.sub(lambda m: seen.setdefault(m.group(), f"<id{len(seen) + 1}>"), text)
    return TIMES.sub("<time>", text)


def environment(db: Path, base_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHATKEEP_"))}
    env.update({"CHATKEEP_DB": str(db), "NO_COLOR": "1", "COLUMNS": "120"})
    if base_url is not None:
        env.update({"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-test-key"})
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str, input: str | None = None, timeout: float = 60) -> Result:
    """Run ``python -m chatkeep ARGS`` with stdin and stdout piped."""
    done = subprocess.run([sys.executable, "-m", "chatkeep", *args], env=env, input=input, capture_output=True,
                          text=True, timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    return Result(done.returncode, done.stdout, done.stderr)


def spawn(env: dict[str, str], *args: str) -> Any:
    """``chatkeep ARGS`` on a pseudo-terminal, for the interactive chat."""
    import pexpect

    tty_env = {**env, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
    return pexpect.spawn(sys.executable, ["-m", "chatkeep", *args], env=tty_env, encoding="utf-8",
                         timeout=20, dimensions=(40, 120))
