"""The kernel x arch x check table: each check against its ground truth on
every shipped dump, grouped by kernel release and arch.

    python3 -m tests.matrix            # markdown table on stdout

A cell says how many dumps of that kernel and arch the check passed: its
findings exactly those the scenarios' truth calls for (nothing missing,
nothing extra, as ``test_exact_findings`` asserts), nothing above info about
a control, and the check not failed.  Nothing here decides what is right
from drgn-mmtools' own output: the truth comes from the guests.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from drgn_mmtools.checks import all_checks

from . import oracle
from .expected import about_control, controls, expected_findings, finding_key, unstable_keys
from .manifests import Fixture, all_fixtures, open_dump
from .tool import results


def verdicts(fx: Fixture) -> dict[str, tuple[bool, str]]:
    """check -> (passed, why not) on one dump."""
    truth = fx.data["truth"]
    prog = open_dump(fx.path)
    blocks = oracle.free_blocks(prog)
    want = expected_findings(truth, lambda pfn: any(s <= pfn < e for s, e in blocks))
    unstable = unstable_keys(truth)
    cs = controls(truth)
    out = {}
    for name, r in results(fx.path).items():
        if r.failed:
            out[name] = (False, "check failed")
            continue
        got = {finding_key(name, f.rule, f.evidence) for f in r.findings}
        got = {k for k in got if not (k[0] == "pagetable-sanity" and (k[2], k[3]) in unstable
                                      and k not in want)}
        mine = {k for k in want if k[0] == name}
        extra, missed = got - mine, mine - got
        on_control = [c["what"] for f in r.findings for c in cs if about_control(f.evidence, c)]
        why = "; ".join(filter(None, [f"{len(missed)} missed" if missed else "",
                                      f"{len(extra)} extra" if extra else "",
                                      f"on control {on_control[0]}" if on_control else ""]))
        out[name] = (not why, why)
    return out


def table(fixtures: list[Fixture]) -> str:
    checks = list(all_checks())
    cells: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    captures: dict[tuple[str, str], list[str]] = defaultdict(list)
    for fx in fixtures:
        row = (fx.data["kernel_release"], fx.data["arch"])
        captures[row].append(f"{fx.path.parent.name} ({fx.data['capture']})")
        for name, v in verdicts(fx).items():
            cells[row][name].append(v)
    lines = ["| kernel | arch | dumps | " + " | ".join(checks) + " |",
             "|---|---|---|" + "---|" * len(checks)]

    def key(row):
        return tuple(int(x) for x in row[0].split(".")[:2]), row[1]

    for row in sorted(cells, key=key):
        out = []
        for c in checks:
            vs = cells[row][c]
            ok = sum(1 for p, _ in vs if p)
            why = next((w for p, w in vs if not p), "")
            out.append(f"pass {ok}/{len(vs)}" if ok == len(vs) else f"FAIL {ok}/{len(vs)}: {why}")
        lines.append(f"| {row[0]} | {row[1]} | {', '.join(captures[row])} | " + " | ".join(out)
                     + " |")
    return "\n".join(lines)


def main() -> int:
    text = table(all_fixtures(narrow=False))
    print(text)
    return 1 if "FAIL" in text else 0


if __name__ == "__main__":
    sys.exit(main())
