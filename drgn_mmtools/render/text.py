"""Rich tables for people.  Kernel strings go through Text, never markup."""

from __future__ import annotations

from typing import Any, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..findings import CheckResult
from .safe import printable

STYLES = {"error": "bold red", "warning": "yellow"}


def t(value: Any, style: str = "") -> Text:
    """A cell that rich will not parse as markup."""
    return Text(printable(value), style=style)


def render(console: Console, results: Sequence[CheckResult], target: dict[str, Any]) -> None:
    console.print(t(f"{target.get('description')}: Linux {target.get('kernel_release')} "
                    f"({target.get('arch')})", "bold"))
    findings = [f for r in results for f in r.findings]
    if findings:
        table = Table(show_lines=False, expand=False)
        table.add_column("check", no_wrap=True)
        table.add_column("severity", no_wrap=True)
        table.add_column("pid", justify="right", no_wrap=True)
        table.add_column("pfn", no_wrap=True)
        table.add_column("summary")
        for f in findings:
            pfn = f.evidence.get("pfn")
            pid = f.evidence.get("pid")
            table.add_row(t(f.check), t(f.severity, STYLES.get(f.severity, "")),
                          t("" if pid is None else pid), t("" if pfn is None else hex(pfn)),
                          t(f.summary))
        console.print(table)
    status = Table(show_header=True, box=None, pad_edge=False)
    for col in ("check", "status", "findings", "seconds", "unreadable / notes"):
        status.add_column(col, no_wrap=col != "unreadable / notes")
    for r in results:
        state = t("failed: " + (r.error or ""), "bold red") if r.failed else t("ok", "green")
        extra = "; ".join([f"unreadable: {u}" for u in r.unreadable[:3]]
                          + ([f"... {len(r.unreadable) - 3} more"] if len(r.unreadable) > 3 else [])
                          + r.notes)
        status.add_row(t(r.check), state, t(len(r.findings)), t(f"{r.seconds:.2f}"), t(extra))
    console.print(status)
