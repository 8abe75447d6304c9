"""The rules of the checks: what each finding means and when it is reported.

Every finding and every info record a check emits names the rule that
produced it (``rule`` in the JSON).  Each rule lists the fixture cases that
fire it and the legitimate designs that must not raise it above ``info``;
the test suite checks both against the shipped dumps and live guests, and
``python3 -m drgn_mmtools.checks.rules`` prints the table that README.md carries.

Fixture cases are named ``scenario:case`` after the records the fixture
scenarios write into each manifest (``fixtures/scenarios/*.c``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("Rule", "all_rules", "markdown_table")

SEVERITY_ORDER = {"info": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Rule:
    """One rule of one check."""

    name: str  #: the ``rule`` of its findings, unique within the check
    severity: str  #: "error", "warning" or "info" (an info rule only writes records)
    condition: str  #: when it fires, in one or two sentences
    kernels: str = "all"  #: the kernels where the state can exist
    fires: tuple[str, ...] = ()  #: fixture cases that fire it
    legit: tuple[str, ...] = ()  #: legitimate fixture cases that must not fire it above info
    #: fires only when a dump catches a passing state (an info rule, never
    #: required to fire in every set of dumps)
    transient: bool = False


def all_rules() -> dict[str, tuple[Rule, ...]]:
    """Every check's rules, by check name, in the order the checks run."""
    from .base import all_checks

    return {name: spec.rules for name, spec in all_checks().items()}


def markdown_table() -> str:
    """The rule table as Markdown, one row per rule."""
    lines = ["| check | rule | severity | fires when | kernels | fired by | must stay quiet on |",
             "|---|---|---|---|---|---|---|"]
    for check, rules in all_rules().items():
        for r in rules:
            lines.append(f"| {check} | `{r.name}` | {r.severity} | {r.condition} | {r.kernels} | "
                         f"{', '.join(r.fires) or '—'} | {', '.join(r.legit) or '—'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
