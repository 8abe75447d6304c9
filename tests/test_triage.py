"""triage DIR: the layouts kdump tools write, debug info found from each
dump's own VMCOREINFO, one JSON line per dump, reports next to the dumps."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from drgn_mmtools.checks.rules import all_rules
from drgn_mmtools.dumpfile import elf_build_id

from . import oracle
from .expected import expected_findings
from .manifests import Fixture, all_fixtures, open_dump

FIXTURES = {f.id: f for f in all_fixtures()}


def fx(name: str) -> Fixture:
    if name not in FIXTURES:
        pytest.fail(f"fixture {name} is not shipped")
    return FIXTURES[name]


def expected_counts(f: Fixture) -> dict[str, dict[str, int]]:
    """check -> severity -> count, from the scenario's truth."""
    prog = open_dump(f.path)
    blocks = oracle.free_blocks(prog)
    severity = {(c, r.name): r.severity for c, rules in all_rules().items() for r in rules}
    out: dict[str, Counter] = {}
    for key in expected_findings(f.data["truth"], lambda p: any(s <= p < e for s, e in blocks)):
        out.setdefault(key[0], Counter())[severity[(key[0], key[1])]] += 1
    return {c: dict(n) for c, n in out.items()}


#: The kdump-tools dump is the one kdump saved inside a fixture guest, under
#: the stamp its capture kernel gave it.
KDUMP = "x86_64-kdump"
STAMP = Path(FIXTURES[KDUMP].data["dump"]).suffix[1:] if KDUMP in FIXTURES else "none"


def link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target.resolve())


@pytest.fixture()
def crash_dir(tmp_path):
    """/var/crash with the dump kdump saved in an x86_64 guest, as
    kdump-tools lays it out, a kexec-tools dump (aarch64), their dmesg files
    and a broken dump; a debug directory where each vmlinux sits under a
    layout the other kernel's release also matches."""
    x86, arm = fx(KDUMP), fx("aarch64-bugs-2")
    assert x86.data["capture"] == "kdump" and x86.dump.name == f"dump.{STAMP}"
    crash = tmp_path / "var" / "crash"
    link(crash / STAMP / x86.dump.name, x86.dump)
    link(crash / STAMP / f"dmesg.{STAMP}", x86.file(x86.data["dmesg"]))
    link(crash / "127.0.0.1-2026-11-30-01:02:03" / "vmcore", arm.dump)
    (crash / "127.0.0.1-2026-11-30-01:02:03" / "vmcore-dmesg.txt").write_text("x\n")
    (crash / "broken").mkdir()
    (crash / "broken" / "vmcore").write_bytes(b"\0" * 8192)
    debug = tmp_path / "debug"
    release = x86.data["kernel_release"]
    assert release == arm.data["kernel_release"]
    # Same release, two kernels: only the build ID tells them apart.
    link(debug / "boot" / f"vmlinux-{release}", arm.vmlinux)
    link(debug / "lib" / "modules" / release / "vmlinux", x86.vmlinux)
    for f in (x86, arm):
        for m in f.modules:
            bid = elf_build_id(m)
            link(debug / ".build-id" / bid[:2] / f"{bid[2:]}.debug", m)
    return crash, debug, x86, arm


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drgn_mmtools", "triage", *args],
                          capture_output=True, text=True, timeout=900)


def test_triage_finds_each_dump_its_vmlinux_and_reports_each(crash_dir):
    crash, debug, x86, arm = crash_dir
    proc = run(str(crash.parent.parent), "--debug-dir", str(debug))
    assert proc.returncode == 2, proc.stderr  # the broken dump could not be checked
    lines = {Path(d["dump"]).parent.name: d for d in map(json.loads, proc.stdout.splitlines())}
    assert set(lines) == {STAMP, "127.0.0.1-2026-11-30-01:02:03", "broken"}
    kt, kx, broken = lines[STAMP], lines["127.0.0.1-2026-11-30-01:02:03"], \
        lines["broken"]
    release = x86.data["kernel_release"]
    assert kt["vmlinux"] == str(debug / "lib" / "modules" / release / "vmlinux")
    assert kx["vmlinux"] == str(debug / "boot" / f"vmlinux-{release}")
    for line, f in ((kt, x86), (kx, arm)):
        assert line["kernel_release"] == release and line["exit_code"] == 1, line
        assert line["findings"] == expected_counts(f)
        report = Path(line["report"])
        assert report == Path(line["dump"]).with_name(Path(line["dump"]).name + ".mmtools.json")
        doc = json.loads(report.read_text())
        assert doc["schema"] == "drgn-mmtools/check/2" and doc["exit_code"] == 1
        # the module's debug info came from the debug directory's .build-id tree
        (fr,) = [f for c in doc["checks"] if c["check"] == "fault-retry" for f in c["findings"]
                 if f["rule"] == "refused-loop" and f["evidence"]["comm"] == "pcc_retry"]
        assert fr["evidence"]["symbol_source"] == "debuginfo"
    assert broken["exit_code"] == 2 and broken["report"] is None
    assert "not a kdump-compressed or ELF dump" in broken["reason"]
    assert "fault-retry/refused-loop" in proc.stderr and "could not check" in proc.stderr

    again = run(str(crash), "--debug-dir", str(debug))
    old = {Path(d["dump"]).parent.name: d for d in map(json.loads, again.stdout.splitlines())}
    assert old[STAMP]["skipped"] is True
    assert old[STAMP]["findings"] == kt["findings"]
    forced = run(str(crash / STAMP), "--debug-dir", str(debug), "--force")
    (line,) = map(json.loads, forced.stdout.splitlines())
    assert line["skipped"] is False and line["findings"] == kt["findings"]
    assert forced.returncode == 1


def test_a_dump_without_its_vmlinux_gets_a_line_and_the_run_goes_on(crash_dir, tmp_path):
    crash, debug, x86, arm = crash_dir
    only_x86 = tmp_path / "only-x86"
    bid = elf_build_id(x86.vmlinux)
    link(only_x86 / ".build-id" / bid[:2] / f"{bid[2:]}.debug", x86.vmlinux)
    proc = run(str(crash), "--debug-dir", str(only_x86), "--check", "hwpoison-pagecache",
               "--jobs", "1", "--report-dir", str(tmp_path / "reports"))
    lines = {Path(d["dump"]).parent.name: d for d in map(json.loads, proc.stdout.splitlines())}
    kx = lines["127.0.0.1-2026-11-30-01:02:03"]
    assert kx["exit_code"] == 2 and kx["vmlinux"] is None
    assert kx["reason"].startswith(f"no vmlinux for {arm.data['kernel_release']} (build ID "
                                   f"{elf_build_id(arm.vmlinux)})"), kx["reason"]
    kt = lines[STAMP]
    assert kt["exit_code"] == 1 and set(kt["findings"]) == {"hwpoison-pagecache"}
    assert Path(kt["report"]).parent == tmp_path / "reports"
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_bad_arguments_are_one_line():
    proc = run("/nonexistent/crash")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "no such file or directory" in proc.stderr


def test_kdump_post_save_hook_checks_the_saved_dumps(crash_dir):
    """The hook kdump-tools and kexec-tools users wire after the dump is saved."""
    import os
    import shutil as sh

    crash, debug, x86, arm = crash_dir
    sh.rmtree(crash / "broken")
    hook = Path(__file__).resolve().parent.parent / "commands" / "kdump-post-save.sh"
    env = {**os.environ, "DRGN_MMTOOLS": str(Path(sys.executable).parent / "drgn-mmtools")}
    if not Path(env["DRGN_MMTOOLS"]).exists():
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env.pop("DRGN_MMTOOLS")
    proc = subprocess.run(["sh", str(hook), str(crash), "--", "--debug-dir", str(debug)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 1, proc.stderr  # findings in both dumps
    lines = [json.loads(line) for line in (crash / "mmtools-triage.jsonl").read_text().splitlines()]
    assert sorted(Path(d["dump"]).parent.name for d in lines) == \
        ["127.0.0.1-2026-11-30-01:02:03", STAMP]
    assert all(Path(d["report"]).exists() and d["exit_code"] == 1 for d in lines)
    again = subprocess.run(["sh", str(hook), str(crash), "--", "--debug-dir", str(debug)],
                           capture_output=True, text=True, timeout=900, env=env)
    assert again.returncode == 1
    later = (crash / "mmtools-triage.jsonl").read_text().splitlines()[len(lines):]
    assert len(later) == 2 and all(json.loads(line)["skipped"] for line in later)


@pytest.fixture()
def debuginfod_server(tmp_path):
    """elfutils' debuginfod serving one directory of debug files on a free
    local port; yields (directory, URL)."""
    import shutil
    import socket

    exe = shutil.which("debuginfod")
    if exe is None:
        pytest.fail("debuginfod is not installed (apt-get install debuginfod)")
    served = tmp_path / "served"
    served.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "-p", str(port), "-F", "-t", "1", "-d",
                             str(tmp_path / "debuginfod.sqlite"), str(served)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        yield served, url
    finally:
        proc.terminate()
        proc.wait(10)


def wait_served(url: str, build_id: str, timeout: float = 60) -> None:
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/buildid/{build_id}/debuginfo", timeout=30) as r:
                r.read(64)  # debuginfod answers GET only
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    pytest.fail(f"debuginfod at {url} never served {build_id}")


def test_a_vmlinux_found_nowhere_local_comes_from_debuginfod(crash_dir, debuginfod_server,
                                                              tmp_path):
    """The aarch64 dump's vmlinux is only on a debuginfod server: triage
    fetches it by the dump's build ID (through drgn's finder) and checks the
    dump; with --no-debuginfod the dump gets its one-line reason instead."""
    import os
    import shutil

    crash, debug, x86, arm = crash_dir
    shutil.rmtree(crash / "broken")
    served, url = debuginfod_server
    shutil.copyfile(arm.vmlinux, served / "vmlinux-arm64")
    wait_served(url, elf_build_id(arm.vmlinux))
    only_x86 = tmp_path / "only-x86"
    bid = elf_build_id(x86.vmlinux)
    link(only_x86 / ".build-id" / bid[:2] / f"{bid[2:]}.debug", x86.vmlinux)
    env = {**os.environ, "DEBUGINFOD_URLS": url, "DEBUGINFOD_CACHE_PATH": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "drgn_mmtools", "triage", str(crash), "--debug-dir",
            str(only_x86), "--check", "hwpoison-pagecache", "--force"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
    lines = {Path(d["dump"]).parent.name: d for d in map(json.loads, proc.stdout.splitlines())}
    kx = lines["127.0.0.1-2026-11-30-01:02:03"]
    assert kx["vmlinux_from"] == "debuginfod", kx
    assert Path(kx["vmlinux"]).is_relative_to(tmp_path / "cache")
    assert elf_build_id(Path(kx["vmlinux"])) == elf_build_id(arm.vmlinux)
    assert kx["exit_code"] == 1 and kx["findings"] == {
        "hwpoison-pagecache": expected_counts(arm)["hwpoison-pagecache"]}
    assert lines[STAMP]["vmlinux_from"] == "build-id"

    off = subprocess.run(args + ["--no-debuginfod"], capture_output=True, text=True,
                         timeout=900, env=env)
    (kx,) = [d for d in map(json.loads, off.stdout.splitlines())
             if Path(d["dump"]).parent.name.startswith("127.0.0.1")]
    assert kx["exit_code"] == 2 and kx["vmlinux"] is None and "no vmlinux for" in kx["reason"]
    assert off.returncode == 2
