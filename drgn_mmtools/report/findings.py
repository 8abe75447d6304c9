"""Typed results of the checks: what renderers and JSON output consume.

A :class:`Finding` is a problem (severity "error" or "warning"); a record is
an inventory row a check also reports (every DAX entry, say), which is not a
problem by itself.  Both hold plain JSON values only, never drgn objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ("CappedFindings", "CheckResult", "Finding", "SEVERITIES")

SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class Finding:
    """One problem found in the target."""

    check: str  #: name of the check that found it
    severity: str  #: "error" (a bug state) or "warning" (suspicious)
    summary: str  #: one line for humans
    evidence: dict[str, Any]  #: pfn, pid, comm, address, inode, index, vma_file, ...
    unreadable: tuple[str, ...] = ()  #: what could not be read for this finding
    rule: str = ""  #: the check's rule that produced it (see drgn_mmtools.checks.rules)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["unreadable"] = list(self.unreadable)
        return d


@dataclass
class CheckResult:
    """Everything one check produced, or why it failed."""

    check: str
    findings: list[Finding] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  #: reads that failed
    notes: list[str] = field(default_factory=list)  #: facts about the run
    error: str | None = None  #: set when the check itself failed
    traceback: str | None = None
    seconds: float = 0.0
    timed_out: bool = False  #: stopped at its deadline; what it found so far is kept

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def status(self) -> str:
        """"timed-out", "failed", "partial" (some reads failed: the result may
        miss findings) or "ok"."""
        if self.timed_out:
            return "timed-out"
        if self.failed:
            return "failed"
        return "partial" if self.unreadable else "ok"

    def add(self, severity: str, summary: str, unreadable: tuple[str, ...] = (), *,
            rule: str, **evidence: Any) -> Finding:
        f = Finding(self.check, severity, summary, evidence, unreadable, rule)
        self.findings.append(f)
        return f

    def record(self, kind: str, rule: str, **fields: Any) -> None:
        """An info row: ``{"kind": kind, "rule": rule, **fields}``."""
        self.records.append({"kind": kind, "rule": rule, **fields})

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "error": self.error,
            "traceback": self.traceback,
            "seconds": round(self.seconds, 3),
            "findings": [f.to_json() for f in self.findings],
            "records": self.records,
            "unreadable": self.unreadable,
            "notes": self.notes,
        }


class CappedFindings:
    """Errors about one task, at most :attr:`MAX_PER_CAUSE` per cause; one
    more finding counts the rest (call :meth:`close`).  A corrupted table or
    mem_map would otherwise give thousands of findings for one cause."""

    MAX_PER_CAUSE = 16

    def __init__(self, result: CheckResult, pid: int, comm: str) -> None:
        self.result, self.pid, self.comm = result, pid, comm
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, rule: str, summary: str, severity: str = "error", **evidence: Any) -> None:
        """Report one finding of ``rule``, unless the cap for it is reached."""
        key = (rule, severity)
        n = self.counts[key] = self.counts.get(key, 0) + 1
        if n <= self.MAX_PER_CAUSE:
            self.result.add(severity, summary, rule=rule, **evidence)

    def close(self) -> None:
        for (rule, severity), n in self.counts.items():
            if n > self.MAX_PER_CAUSE:
                more = n - self.MAX_PER_CAUSE
                self.result.add(severity, f"pid {self.pid} ({self.comm}): {more} more like the "
                                f"above ({rule})", rule=rule, pid=self.pid, comm=self.comm,
                                more=more)
