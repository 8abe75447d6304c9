"""The state behind a series of commands on one target: the analysis
session, the target's description, and the last check results, whose
findings are numbered for ``show N``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import drgn

from ..analysis.session import Options, Session
from ..checks.runner import run_checks
from ..report.findings import CheckResult, Finding
from ..report.target import describe_target
from ..target import TargetSpec

__all__ = ("Workspace", "workspace_for")

#: Progress callback: (what, done, total); total 0 when unknown.
Progress = Callable[[str, int, int], None]


@dataclass
class Workspace:
    """One target under inspection, shared by every command run on it."""

    session: Session
    target: dict  #: describe_target(): description, kernel_release, arch, live
    results: list[CheckResult] = field(default_factory=list)  #: the last check run
    progress: Progress | None = None  #: set by a front end that can draw progress

    @classmethod
    def open(cls, prog: drgn.Program, spec: TargetSpec | None = None,
             options: Options | None = None) -> "Workspace":
        target = describe_target(prog, spec.describe() if spec else None)
        options = options or Options(live=target["live"])
        session = Session(prog, options, spec)
        session.start_scan()  # big compressed dumps: the scan runs while the shell starts
        return cls(session, target)

    @property
    def prog(self) -> drgn.Program:
        return self.session.prog

    @property
    def live(self) -> bool:
        return bool(self.target.get("live"))

    def run_checks(self, names: Sequence[str] | None = None) -> list[CheckResult]:
        """Run checks (all by default) and keep their results; live, every
        run reads the kernel afresh."""
        if self.live:
            self.session.refresh()
        step = [0]
        total = len(names) if names else None

        def progress(name: str) -> None:
            if self.progress:
                from ..checks import all_checks
                self.progress(f"check {name}", step[0], total or len(all_checks()))
            step[0] += 1

        results = run_checks(self.session, names, progress)
        # Keep earlier results of checks not run this time.
        ran = {r.check for r in results}
        self.results = [r for r in self.results if r.check not in ran] + results
        return results

    def ensure_all(self) -> None:
        """Run the checks that have not run yet, so that finding numbers
        always count over every check."""
        from ..checks import all_checks
        missing = [n for n in all_checks() if n not in {r.check for r in self.results}]
        if missing:
            self.run_checks(missing)

    def findings(self) -> list[Finding]:
        """Every finding of the kept results, in report order; ``show N``
        numbers them from 1."""
        from ..checks import all_checks
        order = {name: i for i, name in enumerate(all_checks())}
        return [f for r in sorted(self.results, key=lambda r: order.get(r.check, 99))
                for f in r.findings]


def workspace_for(prog: drgn.Program) -> Workspace:
    """The workspace of a program met at drgn's prompt or in a script; one
    per program, kept in ``prog.cache``."""
    key = "drgn_mmtools_workspace"
    ws = prog.cache.get(key)
    if ws is None:
        ws = prog.cache[key] = Workspace.open(prog)
    return ws
