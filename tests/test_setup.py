"""The set-up commands README.md gives are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_ci_runs_readmes_test_command_verbatim():
    test_cmd = next(b.strip() for b in readme_blocks() if "pytest" in b)
    assert "\n" not in test_cmd, "README's test command is one line"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci


def test_readme_commands_work_as_root_and_as_a_user():
    for block in readme_blocks()[:2]:
        assert not re.search(r"(^|[;&|]\s*)sudo\b", block), block
