"""Triage every crash dump under a directory: what an SRE runs after an
incident.

:func:`find_dumps` knows the layouts kdump tools write: kdump-tools'
``/var/crash/<stamp>/dump.<stamp>`` and kexec-tools'
``/var/crash/<host>-<date>/vmcore`` (and any ``vmcore*`` or ``dump.*`` whose
header is a dump).  :func:`triage` finds each dump's vmlinux from its own
VMCOREINFO (:mod:`.debuginfo`), runs ``drgn-mmtools check`` on it in a
process of its own (a few at a time, each with an address-space limit),
writes the JSON report next to the dump (``DUMP.mmtools.json``), and yields
one :class:`DumpResult` per dump, failures included.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .debuginfo import find_debug_info
from .dumpfile import read_header

__all__ = ("DumpResult", "find_dumps", "report_path", "triage", "summary_rows")

REPORT_SUFFIX = ".mmtools.json"
#: Files beside dumps that are never dumps themselves.
_NOT_DUMPS = ("dmesg", ".txt", ".log", REPORT_SUFFIX, ".json")


@dataclass
class DumpResult:
    """One dump's line."""

    dump: str
    kernel_release: str | None = None
    vmlinux: str | None = None
    #: how the vmlinux was found: "build-id", "release" (a path named by the
    #: release, build ID checked), "debuginfod", or "manifest" (a fixture's)
    vmlinux_from: str | None = None
    exit_code: int = 2  #: as ``check``'s: 0 clean, 1 findings, 2 could not (fully) check
    findings: dict[str, dict[str, int]] = field(default_factory=dict)  #: check -> severity -> n
    rules: dict[str, int] = field(default_factory=dict)  #: "check/rule" -> n
    report: str | None = None
    skipped: bool = False  #: already reported (no --force): the counts are the old report's
    reason: str | None = None  #: why it could not be checked, one line
    seconds: float = 0.0


def _looks_like_dump(path: Path) -> bool:
    name = path.name
    if any(part in name for part in _NOT_DUMPS):
        return False
    return name == "vmcore" or name.startswith("vmcore.") or name.startswith("dump.")


def find_dumps(root: Path) -> list[Path]:
    """Dumps under ``root`` in the kdump-tools and kexec-tools layouts, and
    any other ``vmcore*``/``dump.*`` file, sorted; ``root`` may be a dump."""
    if root.is_file():
        return [root]
    out = []
    for base, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            path = Path(base) / name
            if _looks_like_dump(path):
                out.append(path)
    return out


def report_path(dump: Path, report_dir: Path | None = None) -> Path:
    """Where the dump's report goes: next to it, or in ``report_dir``."""
    if report_dir is not None:
        flat = str(dump.resolve()).strip("/").replace("/", "_")
        return report_dir / f"{flat}{REPORT_SUFFIX}"
    return dump.with_name(dump.name + REPORT_SUFFIX)


def _counts(doc: dict, result: DumpResult) -> None:
    for check in doc.get("checks", []):
        for f in check.get("findings", []):
            sev = result.findings.setdefault(check["check"], {})
            sev[f["severity"]] = sev.get(f["severity"], 0) + 1
            key = f"{check['check']}/{f.get('rule', '')}"
            result.rules[key] = result.rules.get(key, 0) + 1
    result.exit_code = doc.get("exit_code", result.exit_code)


def _limit(memory_bytes: int | None):
    def apply() -> None:
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    return apply


def check_one(dump: Path, debug_dirs: Sequence[Path], checks: Sequence[str], force: bool,
              report_dir: Path | None, timeout: float | None,
              memory_bytes: int | None, debuginfod: bool = True) -> DumpResult:
    """Check one dump in a child process; never raises."""
    import time

    start = time.monotonic()
    result = DumpResult(str(dump))
    header = read_header(dump)
    if header.format == "unknown":
        result.reason = "not a kdump-compressed or ELF dump (unknown header)"
        return result
    info = find_debug_info(dump, debug_dirs, debuginfod)
    result.kernel_release = info.release
    if info.vmlinux is None:
        result.reason = info.reason
        return result
    result.vmlinux, result.vmlinux_from = str(info.vmlinux), info.how
    report = report_path(dump, report_dir)
    result.report = str(report)
    if not force and report.exists() and report.stat().st_mtime >= dump.stat().st_mtime:
        try:
            _counts(json.loads(report.read_text()), result)
            result.skipped = True
            return result
        except (OSError, ValueError):
            pass  # an unreadable old report is made again
    cmd = [sys.executable, "-m", "drgn_mmtools", "check", str(dump), "--vmlinux",
           str(info.vmlinux), "--format", "json", "--output", str(report), "--jobs", "1"]
    for m in info.modules:
        cmd += ["--module", str(m)]
    for d in debug_dirs:
        cmd += ["--debug-dir", str(d)]
    for c in checks:
        cmd += ["--check", c]
    if timeout:
        cmd += ["--timeout", str(timeout)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_limit(memory_bytes),
                              timeout=(timeout or 3600) + 60)
    except subprocess.TimeoutExpired:
        result.reason = "the check did not end in time"
        return result
    lines = [line.removeprefix("drgn-mmtools: ") for line in proc.stderr.splitlines()
             if line.strip()]
    try:
        _counts(json.loads(report.read_text()), result)
    except (OSError, ValueError):
        result.report = None
        result.reason = lines[0] if lines else f"check exited with status {proc.returncode}"
    result.exit_code = proc.returncode
    if result.exit_code == 2 and not result.reason:
        result.reason = lines[0] if lines else "some reads failed: the result is partial"
    result.seconds = round(time.monotonic() - start, 2)
    return result


def default_memory_limit(jobs: int) -> int:
    """Address space per check: the machine's RAM shared by the jobs, at
    least 2 GiB."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        ram = 8 << 30
    return max(2 << 30, ram // max(1, jobs))


def triage(root: Path, debug_dirs: Sequence[Path] = (), checks: Sequence[str] = (),
           jobs: int = 2, force: bool = False, report_dir: Path | None = None,
           timeout: float | None = None, memory_bytes: int | None = None,
           debuginfod: bool = True) -> Iterator[DumpResult]:
    """Check every dump under ``root``, ``jobs`` at a time; results come as
    the checks finish.  ``debuginfod``: fetch a vmlinux found nowhere local
    from the servers of ``DEBUGINFOD_URLS``."""
    dumps = find_dumps(root)
    memory = memory_bytes if memory_bytes is not None else default_memory_limit(jobs)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(check_one, d, debug_dirs, checks, force, report_dir, timeout,
                               memory, debuginfod) for d in dumps]
        for fut in as_completed(futures):
            yield fut.result()


def line(result: DumpResult) -> str:
    """The result as one JSON line."""
    return json.dumps(asdict(result), sort_keys=False, ensure_ascii=True)


def summary_rows(results: Sequence[DumpResult]) -> list[tuple[str, int, int]]:
    """(check/rule, dumps, findings) for every finding seen, most dumps first;
    then ("could not check", dumps, 0) when some dumps failed."""
    by: dict[str, list[int]] = {}
    for r in results:
        for key, n in r.rules.items():
            row = by.setdefault(key, [0, 0])
            row[0] += 1
            row[1] += n
    rows = sorted(((k, d, n) for k, (d, n) in by.items()), key=lambda r: (-r[1], -r[2], r[0]))
    failed = sum(1 for r in results if r.reason and not r.rules)
    if failed:
        rows.append(("could not check", failed, 0))
    return rows
