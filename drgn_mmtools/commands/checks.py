"""``check``, one command per check, ``findings`` and ``show``: run the
checks, list their findings numbered, and drill into one."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from drgn.commands import argument

from ..checks import all_checks
from ..checks.base import apply_arguments, check_arguments
from ..checks.runner import exit_code
from ..report.findings import CheckResult, Finding
from ..report.output import Output, detail_field
from .registry import fail, mm_command, pluck
from .workspace import Workspace

__all__ = ("FindingRecord", "FindingDetail", "drill_down")

_HEX = {"pfn", "address", "page_mapping", "mapping", "vma_start", "vma_end", "entry", "value",
        "head_pfn", "user_pc", "vma_flags"}


@dataclass
class FindingRecord:
    """One finding of the last check run, numbered for ``show N``."""

    n: int
    severity: str
    check: str
    rule: str
    summary: str
    evidence: dict[str, Any] = detail_field(None)
    next: list[str] = detail_field(None)  #: commands that drill into it


@dataclass
class CheckStatus:
    """One check's status line."""

    check: str
    status: str  #: ok, partial, failed, timed-out
    findings: int
    records: int
    seconds: float
    error: str | None = None
    unreadable: list[str] = field(default_factory=list)


def drill_down(f: Finding) -> list[str]:
    """Our commands (and drgn's ``bt``) that show a finding's page, VMA, page
    tables, stack and XArray slot."""
    ev, out = f.evidence, []
    pfn, pid, addr = ev.get("pfn"), ev.get("pid"), ev.get("address")
    if pfn is not None:
        out.append(f"page {pfn:#x}")
    if pid is not None:
        out.append(f"vma {pid}" + (f" --address {addr:#x}" if addr is not None else ""))
        if addr is not None:
            out.append(f"pte {pid} {addr:#x}")
        out.append(f"stack {pid}")
    for w in (ev.get("waiter_pids") or [])[:2]:
        out.append(f"stack {w}")
    verb = "dax" if f.check == "dax-entries" else "xa"
    mapping = ev.get("page_mapping") or ev.get("mapping")
    if mapping:
        out.append(f"{verb} {mapping:#x}")
    elif isinstance(ev.get("mapping_file"), str) and ev["mapping_file"].startswith("/"):
        out.append(f"{verb} {_quote(ev['mapping_file'])}")
    elif ev.get("mapping_inode") is not None:
        out.append(f"{verb} {ev['mapping_inode']}")
    return list(dict.fromkeys(out))


def _quote(word: str) -> str:
    import shlex
    return shlex.quote(word)


def _numbered(ws: Workspace) -> list[FindingRecord]:
    return [FindingRecord(i, f.severity, f.check, f.rule, f.summary, f.evidence, drill_down(f))
            for i, f in enumerate(ws.findings(), 1)]


def _findings_output(ws: Workspace, results: list[CheckResult], only: set[str] | None) -> Output:
    out = Output("", "finding")
    out.records = [r for r in _numbered(ws) if only is None or r.check in only]
    for r in results:
        for what in r.unreadable:
            out.unreadable.append(f"{r.check}: {what}")
        if r.failed:
            out.notes.append(f"{r.check} failed: {r.error}")
        elif r.timed_out:
            out.notes.append(f"{r.check} timed out")
    errors = sum(1 for f in out.records if f.severity == "error")
    out.title = (f"{len(out.records)} findings ({errors} errors, "
                 f"{len(out.records) - errors} warnings)")
    out.status = exit_code(results)
    return out


def _apply_options(ws: Workspace, args: argparse.Namespace) -> None:
    apply_arguments(ws.session.options, args)
    problem = ws.session.options.problem()
    if problem:
        raise fail(problem)


@mm_command(
    "check", "run checks (all by default) and list their findings, numbered",
    arguments=(argument("checks", nargs="*", metavar="CHECK",
                        help="checks to run: " + ", ".join(all_checks())),
               *check_arguments()),
    examples=("check", "check fault-retry hwpoison-pagecache", "check --format json > report.json"),
    completes=("check",),
)
def _check(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    unknown = [c for c in args.checks if c not in all_checks()]
    if unknown:
        raise fail(f"unknown check {unknown[0]!r}; choose from {', '.join(all_checks())}")
    _apply_options(ws, args)
    results = ws.run_checks(args.checks or None)
    return _report(ws, results, set(args.checks) if args.checks else None)


def _report(ws: Workspace, results: list[CheckResult], only: set[str] | None) -> Output:
    """The findings of a check run; in JSON, the check report itself."""
    from ..report import jsonout

    out = _findings_output(ws, results, only)
    out.document = jsonout.document(results, ws.target, exit_code(results))
    return out


def _register_check(name: str) -> None:
    check = all_checks()[name]

    def run(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
        _apply_options(ws, args)
        return _report(ws, ws.run_checks([name]), {name})

    mm_command(name, check.description, arguments=check.arguments,
               examples=(name, f"{name} --format json"))(run)


for _name in all_checks():
    _register_check(_name)


@mm_command(
    "findings", "list the findings of the checks run so far (runs every check the first "
    "time), numbered for show N",
    arguments=(
        argument("--check", action="append", metavar="CHECK", help="only this check's"),
        argument("--severity", choices=("error", "warning")),
        argument("--rule", action="append", metavar="RULE", help="only this rule's"),
        argument("--statuses", action="store_true",
                 help="list each check's status instead: ok, partial, failed, timed-out"),
    ),
    examples=("findings", "findings --check fault-retry", "findings --severity error | page"),
)
def _findings(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    for c in args.check or ():
        if c not in all_checks():
            raise fail(f"unknown check {c!r}; choose from {', '.join(all_checks())}")
    ws.ensure_all()
    if args.statuses:
        out = Output("", "check-status")
        out.records = [CheckStatus(r.check, r.status, len(r.findings), len(r.records),
                                   round(r.seconds, 3), r.error, list(r.unreadable))
                       for r in ws.results]
        out.status = exit_code(ws.results)
        return out
    out = _findings_output(ws, ws.results, set(args.check) if args.check else None)
    out.records = [f for f in out.records
                   if (args.severity is None or f.severity == args.severity)
                   and (not args.rule or f.rule in args.rule)]
    return out


@dataclass
class CheckRecord:
    """One record a check kept beside its findings (``--verbose`` in check)."""

    check: str
    kind: str
    rule: str | None
    fields: dict[str, Any]


@mm_command(
    "records", "list the records the checks kept beside their findings: DAX entries, "
    "fault-retry candidates, lent pages, isolated poisoned pages",
    arguments=(argument("--check", action="append", metavar="CHECK"),
               argument("--kind", action="append", metavar="KIND")),
    examples=("records --check dax-entries", "records --kind candidate"),
)
def _records(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    ws.ensure_all()
    out = Output("", "record")
    for r in ws.results:
        if args.check and r.check not in args.check:
            continue
        for rec in r.records:
            kind = rec.get("kind", "")
            if args.kind and kind not in args.kind:
                continue
            out.records.append(CheckRecord(r.check, kind, rec.get("rule"),
                                           {k: v for k, v in rec.items()
                                            if k not in ("kind", "rule")}))
    return out


@dataclass
class FindingDetail:
    """One finding in full: every evidence key, and the commands to look further."""

    n: int
    check: str
    rule: str
    severity: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    next: list[str] = field(default_factory=list)


@mm_command(
    "show", "show finding N in full: its evidence and the commands that drill into its "
    "page, VMA, page tables, stack and XArray slot",
    arguments=(argument("n", nargs="*", type=int, metavar="N"),),
    examples=("show 1", "findings --check fault-retry | show"),
    accepts=("n",), completes=("finding",),
)
def _show(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    ws.ensure_all()
    numbered = _numbered(ws)
    wanted = list(args.n) + [n for n in (pluck(r, "n") for r in records_in or ())
                             if isinstance(n, int)]
    if not wanted:
        raise fail("show: give a finding number (see findings)")
    out = Output("", "finding", layout="detail")
    for n in wanted:
        if not 1 <= n <= len(numbered):
            raise fail(f"show {n}: no such finding; there are {len(numbered)}")
        f = numbered[n - 1]
        src = ws.findings()[n - 1]
        out.records.append(FindingDetail(n, f.check, f.rule, f.severity, f.summary,
                                         dict(src.evidence), list(src.unreadable), f.next))
    return out
