"""The text report: findings grouped by incident, evidence under each, a
status line per check and a verdict line.

Nothing wraps into table cells: each finding is a summary line followed by
indented ``key: value`` lines, so the report reads the same at 80 columns,
in a pipe, and in a wide terminal.  Kernel strings go through
:func:`~.safe.printable` and rich ``Text``, never markup.
"""

from __future__ import annotations

from typing import Any, Sequence


from .findings import CheckResult, Finding
from .next_steps import next_commands
from .safe import printable
from .term import Console, Text

STYLES = {"error": "bold red", "warning": "yellow"}
#: Evidence keys shown in hexadecimal.
HEX_KEYS = {"address", "pfn", "head_pfn", "vma_start", "vma_end", "vma_flags", "page_mapping",
            "user_pc", "value", "entry", "mapping", "phys"}
#: Evidence keys left out of the text (long, or repeated in the summary).
HIDDEN_KEYS = {"stack"}
LIST_ITEMS = 8


def t(value: Any, style: str = "") -> Text:
    """Text that rich will not parse as markup."""
    return Text(printable(value), style=style)


def _value(key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "-"
    if isinstance(value, int):
        return hex(value) if key in HEX_KEYS else str(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_value(k, v)}" for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        items = [_value(key, v) for v in value[:LIST_ITEMS]]
        more = f", ... {len(value) - LIST_ITEMS} more" if len(value) > LIST_ITEMS else ""
        return "[" + ", ".join(items) + more + "]"
    return str(value)


def incident_key(f: Finding) -> tuple[str, int]:
    """Findings about the same task, else the same page, belong together."""
    ev = f.evidence
    if ev.get("pid") is not None:
        return ("pid", ev["pid"])
    if ev.get("pfn") is not None:
        return ("pfn", ev["pfn"])
    return ("finding", id(f))


def incidents(results: Sequence[CheckResult]) -> list[tuple[str, list[Finding]]]:
    """(heading, findings) per incident, in the order their first finding came."""
    groups: dict[tuple[str, int], list[Finding]] = {}
    for r in results:
        for f in r.findings:
            groups.setdefault(incident_key(f), []).append(f)
    out = []
    for (kind, ident), found in groups.items():
        if kind == "pid":
            comm = next((f.evidence.get("comm") for f in found if f.evidence.get("comm")), None)
            heading = f"pid {ident}" + (f" ({comm})" if comm else "")
        elif kind == "pfn":
            heading = f"pfn {ident:#x}"
        else:
            heading = found[0].check
        out.append((heading, found))
    return out


def verdict(results: Sequence[CheckResult]) -> str:
    """One line: findings by severity, and checks that were partial or failed."""
    findings = [f for r in results for f in r.findings]
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    partial = sum(r.status == "partial" for r in results)
    failed = sum(r.status in ("failed", "timed-out") for r in results)
    return (f"verdict: {len(findings)} finding{'s' * (len(findings) != 1)}: {errors} "
            f"error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}; "
            f"{partial} check{'s' * (partial != 1)} partial, {failed} failed")


def render(console: Console, results: Sequence[CheckResult], target: dict[str, Any],
           verbose: bool = False) -> None:
    """Print the report; ``verbose`` adds every check's records (the DAX
    entry inventory, fault-retry candidates, poisoned-page counts)."""
    console.print(t(f"{target.get('description')}: Linux {target.get('kernel_release')} "
                    f"({target.get('arch')})", "bold"), soft_wrap=True)
    for heading, found in incidents(results):
        console.print()
        console.print(t(heading, "bold"), soft_wrap=True)
        for f in found:
            # The heading names the task: do not repeat it under each finding.
            shown = {"pid", "comm"} if heading.startswith("pid ") else set()
            if f.evidence.get("pids") == [f.evidence.get("pid")]:
                shown.add("pids")
            line = Text("  ")
            line.append_text(t(f.severity.upper(), STYLES.get(f.severity, "")))
            line.append_text(t(f" {f.check}/{f.rule}: {f.summary}"))
            console.print(line, soft_wrap=True)
            for key, value in f.evidence.items():
                if key in HIDDEN_KEYS | shown or value is None or value == [] or value == {}:
                    continue
                console.print(t(f"      {key}: {_value(key, value)}", "dim"), soft_wrap=True)
            for u in f.unreadable:
                console.print(t(f"      unreadable: {u}", "red"), soft_wrap=True)
            for cmd in next_commands(f):
                console.print(t(f"      next: {cmd}", "cyan"), soft_wrap=True)
    console.print()
    width = max(len(r.check) for r in results) if results else 0
    for r in results:
        state = r.status + (f": {r.error}" if r.error else "")
        style = {"ok": "green", "partial": "yellow"}.get(r.status, "bold red")
        line = t(f"{r.check:<{width}}  ")
        line.append_text(t(f"{state:<9}", style))
        line.append_text(t(f"  {len(r.findings)} finding{'s' * (len(r.findings) != 1)}, "
                           f"{r.seconds:.2f} s"))
        console.print(line, soft_wrap=True)
        for u in r.unreadable[:5]:
            console.print(t(f"    unreadable: {u}", "yellow"), soft_wrap=True)
        if len(r.unreadable) > 5:
            console.print(t(f"    unreadable: ... {len(r.unreadable) - 5} more", "yellow"),
                          soft_wrap=True)
        for n in r.notes:
            console.print(t(f"    note: {n}", "dim"), soft_wrap=True)
        if verbose:
            for rec in r.records:
                console.print(t("    " + _value("", {k: v for k, v in rec.items()
                                                     if k not in HIDDEN_KEYS})), soft_wrap=True)
    console.print(t(verdict(results), "bold"), soft_wrap=True)
