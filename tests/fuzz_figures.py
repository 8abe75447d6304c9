"""Figures of the corrupted-dump cases, by structure class.

    python3 -m tests.fuzz_figures [--cases 500] [--seed 1]

Prints, per mutation class: cases, refused at open (one line, exit 2),
runs with a partial check, exit codes, failed checks, timed-out checks,
unescaped characters in the text, lost unrelated findings, affected
findings lost while their check said "ok" ("silent": expected where the
corruption only changes a value, such as a cleared flag), and the slowest
case.  The same cases as ``pytest tests/test_corruption.py --fuzz-cases N
--fuzz-seed S``.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

from .corruption import run_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows: dict[str, Counter] = defaultdict(Counter)
    slowest: dict[str, float] = defaultdict(float)
    problems = []
    for i in range(args.cases):
        o = run_case(args.seed, i)
        cls = o.name.split("/")[0]
        r = rows[cls]
        r["cases"] += 1
        r["refused"] += o.refused is not None
        r["partial"] += bool(o.partial)
        if o.exit_code is not None:
            r[f"exit {o.exit_code}"] += 1
        r["failed"] += bool(o.failed)
        r["timed out"] += bool(o.timed_out)
        r["unescaped"] += o.unsafe is not None
        r["lost"] += bool(o.lost)
        r["silent"] += bool(o.silent)
        slowest[cls] = max(slowest[cls], o.seconds)
        if o.failed or o.timed_out or o.unsafe or o.lost:
            problems.append((i, o.name, o.failed[:1], o.timed_out, o.unsafe, o.lost))
    cols = ["cases", "refused", "exit 0", "exit 1", "exit 2", "partial", "failed", "timed out",
            "unescaped", "lost", "silent"]
    print("| class | " + " | ".join(cols) + " | slowest s |")
    print("|---" * (len(cols) + 2) + "|")
    total: Counter = Counter()
    for cls in sorted(rows):
        total.update(rows[cls])
        print(f"| {cls} | " + " | ".join(str(rows[cls][c]) for c in cols)
              + f" | {slowest[cls]:.1f} |")
    print("| all | " + " | ".join(str(total[c]) for c in cols)
          + f" | {max(slowest.values(), default=0):.1f} |")
    for p in problems:
        print("problem:", *p)


if __name__ == "__main__":
    main()
