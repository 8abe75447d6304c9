"""The checks inside stock drgn: scripts in commands/ and the %mm_* commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .manifests import Fixture, all_fixtures

ROOT = Path(__file__).resolve().parent.parent
BUGS = [f for f in all_fixtures() if not f.data["clean"]]


def drgn(fx: Fixture, *args: str) -> str:
    cmd = [sys.executable, "-m", "drgn", "-q", "-c", str(fx.dump), "-s", str(fx.vmlinux),
           *[a for m in fx.modules for a in ("-s", str(m))], *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("fx", BUGS, ids=[f.id for f in BUGS])
def test_commands_script_runs_under_stock_drgn(fx: Fixture):
    doc = json.loads(drgn(fx, str(ROOT / "commands" / "check.py"), "--check", "hwpoison-pagecache", "--format", "json"))
    (check,) = doc["checks"]
    got = sorted(f["evidence"]["pfn"] for f in check["findings"])
    assert got == sorted(t["pfn"] for t in fx.truth("hwpoison") if t["in_page_cache"] or any(
        m["pagemap"] == "present" for m in t["mapped_by"]))


@pytest.mark.parametrize("fx", BUGS, ids=[f.id for f in BUGS])
def test_plugin_command_at_the_drgn_prompt(fx: Fixture):
    out = drgn(fx, "-e", "from drgn.commands import run_command\n"
                         "run_command(prog, 'mm_check dax-entries --format json')")
    doc = json.loads(out)
    (locked,) = [t for t in fx.truth("dax_entry") if t["locked"] and t["waiter_pids"]]
    (f,) = [f for f in doc["checks"][0]["findings"] if f["rule"] == "locked-with-waiters"]
    assert (f["evidence"]["mapping_inode"], f["evidence"]["index"], f["evidence"]["waiter_pids"]) == \
        (locked["inode"], locked["index"], locked["waiter_pids"])


def test_commands_script_runs_without_rich(tmp_path):
    """A stock drgn need not have rich: the text report prints plain lines."""
    import os

    fx = BUGS[0]
    fake = tmp_path / "rich"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('rich is not installed here')\n")
    cmd = [sys.executable, "-m", "drgn", "-q", "-c", str(fx.dump), "-s", str(fx.vmlinux),
           *[a for m in fx.modules for a in ("-s", str(m))],
           str(ROOT / "commands" / "check.py"), "--check", "hwpoison-pagecache"]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("verdict: ")
    for t in fx.truth("hwpoison"):
        reachable = t["in_page_cache"] or any(m["pagemap"] == "present" for m in t["mapped_by"])
        said = any(f"pfn {t['pfn']:#x} is hardware-poisoned" in line for line in lines)
        assert said == reachable, t


def test_plugin_refuses_a_useless_interval():
    fx = BUGS[0]
    out = drgn(fx, "-e", "from drgn.commands import CommandError, run_command\n"
                         "try:\n"
                         "    run_command(prog, 'mm_check fault-retry --interval 0')\n"
                         "except CommandError as e:\n"
                         "    print('refused:', e)\n")
    assert out.startswith("refused: --interval 0"), out
