"""The pipeline command: exit codes, JSON schema, and bad input.

Bad input must give exit status 2 and exactly one line on stderr, never a
traceback.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from .expected import expected_findings
from .manifests import VMCORES, Fixture, all_fixtures
from .schema import SCHEMA, validate
from .tool import cli, cli_json

FIXTURES = all_fixtures()


@pytest.mark.parametrize("fx", FIXTURES, ids=[f.id for f in FIXTURES])
def test_json_output_follows_the_schema_and_exit_code(fx: Fixture):
    code, doc = cli_json("--manifest", str(fx.path))
    assert code == (0 if fx.data["clean"] else 1)
    assert doc["exit_code"] == code
    validate(doc, SCHEMA)
    assert doc["target"]["arch"] == fx.data["arch"]
    assert doc["target"]["kernel_release"] == fx.data["kernel_release"]
    for check in doc["checks"]:
        for f in check["findings"]:
            for key in ("pfn", "pid", "address", "inode", "index"):
                if f["evidence"].get(key) is not None:
                    assert isinstance(f["evidence"][key], int), (key, f)


def test_one_check_only():
    fx = [f for f in FIXTURES if not f.data["clean"]][0]
    code, doc = cli_json("--manifest", str(fx.path), "--check", "dax-entries")
    assert [c["check"] for c in doc["checks"]] == ["dax-entries"]
    assert code == 1


def test_text_output_escapes_kernel_strings(tmp_path):
    fx = [f for f in FIXTURES if not f.data["clean"]][0]
    proc = cli("check", "--manifest", str(fx.path), "--output", str(tmp_path / "report.txt"))
    assert proc.returncode == 1
    text = (tmp_path / "report.txt").read_text()
    assert "/tmp/pcc/lower" in text and "\x1b" not in text


def one_line_error(proc):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("drgn-mmtools: ")
    return lines[0]


X86 = VMCORES / "x86_64"


def fake_user_core(path: Path) -> None:
    """A minimal x86_64 ELF core with one PT_LOAD: a core, but not a kernel's."""
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 4, 62, 1, 0,
                       64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 6, 4096, 0x400000, 0, 4096, 4096, 4096)
    path.write_bytes(ehdr + phdr + bytes(4096 - 120) + b"\xcc" * 4096)


@pytest.mark.parametrize("case", ["missing", "empty", "directory", "truncated", "header-only",
                                  "user-core", "wrong-arch-vmlinux", "not-a-vmlinux",
                                  "missing-vmlinux", "no-vmlinux"])
def test_bad_input_gives_one_line_and_exit_2(case, tmp_path):
    dump = X86 / "bugs-1" / "vmcore.kdump"
    vmlinux = X86 / "vmlinux.debug"
    if case == "missing":
        args = [str(tmp_path / "nope"), "--vmlinux", str(vmlinux)]
    elif case == "empty":
        (tmp_path / "empty").touch()
        args = [str(tmp_path / "empty"), "--vmlinux", str(vmlinux)]
    elif case == "directory":
        args = [str(tmp_path), "--vmlinux", str(vmlinux)]
    elif case in ("truncated", "header-only"):
        data = dump.read_bytes()
        cut = tmp_path / "cut.kdump"
        cut.write_bytes(data[:len(data) // 3] if case == "truncated" else data[:4096])
        args = [str(cut), "--vmlinux", str(vmlinux)]
    elif case == "user-core":
        fake_user_core(tmp_path / "user.core")
        args = [str(tmp_path / "user.core"), "--vmlinux", str(vmlinux)]
    elif case == "wrong-arch-vmlinux":
        args = [str(dump), "--vmlinux", str(VMCORES / "aarch64" / "vmlinux.debug")]
    elif case == "not-a-vmlinux":
        args = [str(dump), "--vmlinux", str(Path(__file__))]
    elif case == "missing-vmlinux":
        args = [str(dump), "--vmlinux", str(tmp_path / "vmlinux")]
    else:
        args = [str(dump)]  # no --vmlinux, and nothing on this machine matches
    line = one_line_error(cli("check", *args))
    if case == "wrong-arch-vmlinux":
        assert "does not match" in line


BUGS = [f for f in FIXTURES if not f.data["clean"]]
X86_BUGS = [f for f in BUGS if f.data["arch"] == "x86_64" and f.modules][0]


def test_partial_result_is_never_clean(tmp_path):
    """A dump cut short loses mem_map and struct pages: the checks that
    needed them say "partial" and what they could not read, none fails, and
    the run exits 2 rather than 0."""
    data = (X86 / "clean" / "vmcore.kdump").read_bytes()
    cut = tmp_path / "cut.kdump"
    cut.write_bytes(data[:len(data) * 95 // 100])
    proc = cli("check", str(cut), "--vmlinux", str(X86 / "vmlinux.debug"), "--format", "json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    validate(doc, SCHEMA)
    statuses = {c["check"]: c["status"] for c in doc["checks"]}
    assert "failed" not in statuses.values(), statuses
    partial = [c for c in doc["checks"] if c["status"] == "partial"]
    assert partial and all(c["unreadable"] for c in partial)
    assert "partial" in proc.stderr
    text = cli("check", str(cut), "--vmlinux", str(X86 / "vmlinux.debug"))
    assert text.returncode == 2
    assert text.stdout.rstrip().splitlines()[-1].endswith(f"{len(partial)} checks partial, 0 failed")


def test_text_report_groups_incidents_and_ends_with_a_verdict(tmp_path):
    fx = X86_BUGS
    proc = cli("check", "--manifest", str(fx.path))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    (t,) = [t for t in fx.truth("fault_retry") if t["comm"] == "pcc_retry"]
    start = lines.index(f"pid {t['pid']} (pcc_retry)")
    block = []
    for line in lines[start + 1:]:
        if not line.startswith(" "):
            break
        block.append(line)
    assert any(line.startswith("  ERROR mapping-mismatch/other-file:") for line in block)
    assert any(line.startswith("  ERROR fault-retry/refused-loop:") for line in block)
    assert "      page_mkwrite_handler: pcc_retry_page_mkwrite [mmfixture]" in block
    assert f"      next: %crash bt {t['pid']}" in block
    # Every finding the truth calls for, counted by severity.
    want = expected_findings(fx.data["truth"])
    warning_rules = {"refused-no-storm", "lost-wakeup"}
    warnings = sum(k[1] in warning_rules for k in want)
    errors = len(want) - warnings
    findings = sum(1 for line in lines if line.startswith(("  ERROR ", "  WARNING ")))
    assert findings in (errors + warnings, errors + warnings + 1)  # + a reused freed page
    assert lines[-1].startswith(f"verdict: {findings} findings: ")
    assert lines[-1].endswith(f"{warnings} warnings; 0 checks partial, 0 failed")
    assert max(map(len, lines)) > 80, "findings are single lines, not wrapped table cells"


def test_verbose_lists_the_dax_entries():
    fx = X86_BUGS
    proc = cli("check", "--manifest", str(fx.path), "--check", "dax-entries", "--verbose")
    for t in fx.truth("dax_entry"):
        assert any(f"index={t['index']}," in line and f"value={t['value']:#x}" in line
                   for line in proc.stdout.splitlines()), t


def test_drgn_spellings_for_core_and_symbols(tmp_path):
    """drgn's -c CORE and repeated -s FILE: the vmlinux and the module, told
    apart by their contents (the module under a name without .ko)."""
    import shutil

    fx = X86_BUGS
    module = tmp_path / "mmfixture.debug"
    shutil.copyfile(fx.modules[0], module)
    code, doc = cli_json("-c", str(fx.dump), "-s", str(module), "-s", str(fx.vmlinux))
    assert code == 1
    (mm,) = [c for c in doc["checks"] if c["check"] == "mapping-mismatch"]
    assert mm["findings"][0]["evidence"]["symbol_source"] == "debuginfo"


@pytest.mark.parametrize("args, words", [
    (["--interval", "0"], "--interval"),
    (["--interval", "-1"], "--interval"),
    (["--samples", "1"], "--samples"),
    (["--timeout", "0"], "--timeout"),
    (["--output", "/nonexistent/dir/report.json"], "no such directory"),
    (["--output", "/tmp"], "is a directory"),
])
def test_bad_options_are_refused_before_the_scan(args, words):
    fx = X86_BUGS
    proc = cli("check", "--manifest", str(fx.path), *args)
    assert words in one_line_error(proc)
    assert proc.stdout == ""


def test_a_check_past_its_deadline_reports_timed_out():
    fx = X86_BUGS
    proc = cli("check", "--manifest", str(fx.path), "--check", "mapping-mismatch",
               "--check", "dax-entries", "--check-timeout", "0.0001", "--format", "json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    validate(doc, SCHEMA)
    assert [c["status"] for c in doc["checks"]] == ["timed-out", "timed-out"]


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("drgn-mmtools ")


@pytest.mark.parametrize("env, loaded", [({}, False), ({"DRGN_DISABLE_PLUGINS": "nothing"}, True)])
def test_drgn_plugins_with_explicit_debug_info(env, loaded):
    """Given a vmlinux, opening a dump loads no drgn plugin, ours included,
    and leaves the environment as it was; a user's DRGN_DISABLE_PLUGINS is
    obeyed as given (here it disables nothing, so ours loads)."""
    import os
    import subprocess
    import sys

    fx = FIXTURES[0]
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from drgn_mmtools.target import TargetSpec, open_program\n"
        f"open_program(TargetSpec(core=Path({str(fx.dump)!r}), "
        f"vmlinux=Path({str(fx.vmlinux)!r})))\n"
        "print('drgn_mmtools.frontends.drgn_plugin' in sys.modules,"
        " os.environ.get('DRGN_DISABLE_PLUGINS'))\n")
    base = {k: v for k, v in os.environ.items()
            if k not in ("DRGN_PLUGINS", "DRGN_DISABLE_PLUGINS")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, check=True,
                         capture_output=True, text=True, timeout=120).stdout.split()
    assert out == [str(loaded), env.get("DRGN_DISABLE_PLUGINS", "None")]
