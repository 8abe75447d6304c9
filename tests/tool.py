"""Run drgn-mmtools itself on the fixtures (in-process and as a command)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from drgn_mmtools.analysis.session import Session
from drgn_mmtools.report.findings import CheckResult
from drgn_mmtools.checks.runner import run_checks
from drgn_mmtools.target import TargetSpec, open_program

from .manifests import Fixture


@lru_cache(maxsize=None)
def results(manifest: Path) -> dict[str, CheckResult]:
    """All checks on one fixture dump, opened the way the tool opens it."""
    fx = Fixture(manifest)
    spec = TargetSpec(core=fx.dump, vmlinux=fx.vmlinux, modules=fx.modules)
    return {r.check: r for r in run_checks(Session(open_program(spec), spec=spec))}


def cli(*args: str) -> subprocess.CompletedProcess:
    """``drgn-mmtools ARGS`` as a subprocess."""
    return subprocess.run([sys.executable, "-m", "drgn_mmtools", *args],
                          capture_output=True, text=True, timeout=600)


def cli_json(*args: str) -> tuple[int, dict]:
    proc = cli("check", *args, "--format", "json")
    return proc.returncode, json.loads(proc.stdout)
