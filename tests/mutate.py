"""A small mutation pass over the detection rules: does any test notice?

    python3 -m tests.mutate [--jobs N] [--only PATH] [--fixtures ID,ID] [--out FILE]

Each mutant changes one thing in a copy of the package: a comparison flipped
(``==``/``!=``, ``<``/``>=``, ``in``/``not in``), ``and``/``or`` swapped, a
``not`` dropped, an ``if`` condition forced false, an integer constant
moved by one, or a ``continue`` turned into ``pass``.  The test command
(:data:`TESTS`, with ``-x``) then runs against the copy; a mutant is
*killed* when a test fails, *survives* when all pass, and *times out* when
the run takes longer than ``--timeout``.  Mutants are made only inside the
functions listed in :data:`TARGETS`: the code that decides what is
reported.  The result is a JSON report and a summary line per file; the
survivors are the list to read.

Set ``MMTOOLS_FIXTURES`` (ids such as ``x86_64-bugs-1``) to run the tests
on fewer dumps; the default is every shipped dump.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "drgn_mmtools"

#: file -> functions whose bodies decide findings (None: every function)
TARGETS: dict[str, tuple[str, ...] | None] = {
    "analysis/mismatch.py": ("owns_its_pages", "mismatches"),
    "checks/mapping_mismatch.py": ("check_slots", "run"),
    "checks/fault_retry.py": ("storm", "_mkwrite_vma", "page_evidence", "grade", "page_progress",
                              "progress_of", "evaluate", "run_dump"),
    "checks/hwpoison_pagecache.py": ("run",),
    "checks/dax_entries.py": ("run",),
    "checks/pagetable_sanity.py": ("problem", "_corrupt_rule", "_unplain_leaves", "run"),
    "kernel/swap_entry.py": ("decode_swap", "is_special", "problem"),
    "kernel/vma.py": ("index_matches", "_page_cache_file", "_ops_empty"),
    "kernel/pgtable.py": ("walk_user_page_runs", "_plain_phys", "_page_level", "part"),
    "analysis/session.py": ("table_problem", "swap_refs", "mappers", "leaves_by_vma"),
    "analysis/pagesets.py": ("none_listed",),
}

TESTS = ["tests/test_rules.py", "tests/test_checks.py", "tests/test_fault_grade.py",
         "tests/test_pgtable_levels.py", "tests/test_swap_entry.py", "tests/test_pgtable_entries.py"]

FLIP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt,
        ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In,
        ast.Is: ast.IsNot, ast.IsNot: ast.Is}


@dataclass
class Mutant:
    file: str
    line: int
    function: str
    what: str
    outcome: str = ""
    seconds: float = 0.0


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def mutation_points(source: str, wanted: tuple[str, ...] | None) -> list[tuple[int, str, str]]:
    """(node index in ast.walk order, function, description) of each mutant."""
    tree = ast.parse(source)
    inside: dict[int, str] = {}
    for fn in _functions(tree):
        if wanted is None or fn.name in wanted:
            for node in ast.walk(fn):
                inside.setdefault(id(node), fn.name)
    points = []
    for i, node in enumerate(ast.walk(tree)):
        fn = inside.get(id(node))
        if fn is None:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare) and type(node.ops[0]) in FLIP:
            points.append((i, fn, f"line {line}: flip {type(node.ops[0]).__name__}"))
        elif isinstance(node, ast.BoolOp):
            points.append((i, fn, f"line {line}: {type(node.op).__name__} -> other"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            points.append((i, fn, f"line {line}: drop not"))
        elif isinstance(node, ast.If):
            points.append((i, fn, f"line {line}: if -> if False"))
        elif (isinstance(node, ast.Constant) and type(node.value) is int
              and not isinstance(node.value, bool)):
            points.append((i, fn, f"line {line}: {node.value} -> {node.value + 1}"))
        elif isinstance(node, ast.Continue):
            points.append((i, fn, f"line {line}: continue -> pass"))
    return points


class _Apply(ast.NodeTransformer):
    def __init__(self, target: int) -> None:
        self.target, self.i = target, -1
        self.order: dict[int, int] = {}

    def mutate(self, tree: ast.AST) -> ast.AST:
        self.order = {id(n): i for i, n in enumerate(ast.walk(tree))}
        return self.visit(tree)

    def generic_visit(self, node):
        if self.order.get(id(node)) != self.target:
            return super().generic_visit(node)
        if isinstance(node, ast.Compare):
            node.ops[0] = FLIP[type(node.ops[0])]()
        elif isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, ast.UnaryOp):
            return node.operand
        elif isinstance(node, ast.If):
            node.test = ast.Constant(False)
        elif isinstance(node, ast.Constant):
            node.value = node.value + 1
        elif isinstance(node, ast.Continue):
            return ast.Pass()
        return node


def mutated_source(source: str, index: int) -> str:
    tree = _Apply(index).mutate(ast.parse(source))
    return ast.unparse(ast.fix_missing_locations(tree))


def make_tree(tmp: Path) -> Path:
    """A copy of the repository to mutate: code copied, vmcores/ linked.
    The tests run from it, so that it shadows an editable install."""
    tree = tmp / "repo"
    tree.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in ("build", ".git", ".venv") or entry.name.startswith("."):
            continue
        if entry.name == "vmcores":
            (tree / entry.name).symlink_to(entry)
        elif entry.is_dir():
            shutil.copytree(entry, tree / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(entry, tree / entry.name)
    return tree


def run_tests(tree: Path, timeout: float) -> str:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                               "no:cacheprovider", "-m", "not live", *TESTS],
                              cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if proc.returncode == 0 else "killed"


def run_one(m: Mutant, index: int, timeout: float) -> Mutant:
    with tempfile.TemporaryDirectory(prefix="mmtools-mutant-") as tmp:
        tree = make_tree(Path(tmp))
        path = tree / "drgn_mmtools" / m.file
        path.write_text(mutated_source(path.read_text(), index))
        start = time.monotonic()
        m.outcome = run_tests(tree, timeout)
        m.seconds = round(time.monotonic() - start, 1)
    return m


def self_check(timeout: float) -> None:
    """The unmutated copy passes, and a broken copy fails: the tests really
    run the copy, not an installed package."""
    with tempfile.TemporaryDirectory(prefix="mmtools-mutant-") as tmp:
        tree = make_tree(Path(tmp))
        if run_tests(tree, timeout) != "survived":
            raise SystemExit("the tests fail on the unmutated code: fix them first")
        runner = tree / "drgn_mmtools" / "analysis" / "mismatch.py"
        runner.write_text(runner.read_text().replace("def owns_its_pages(vma: VmaInfo) -> bool:",
                                                     "def owns_its_pages(vma: VmaInfo) -> bool:\n"
                                                     "    raise RuntimeError('broken')"))
        if run_tests(tree, timeout) != "killed":
            raise SystemExit("a broken copy passes the tests: they do not run the copy")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m tests.mutate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--only", action="append", help="a file of TARGETS (relative to the package)")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--list", action="store_true", help="list the mutants and stop")
    p.add_argument("--again", type=Path, metavar="REPORT",
                   help="run only the mutants that survived in an earlier report (same code)")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "mutants.json")
    args = p.parse_args(argv)
    work: list[tuple[Mutant, int]] = []
    for rel, fns in TARGETS.items():
        if args.only and rel not in args.only:
            continue
        source = (PACKAGE / rel).read_text()
        for index, fn, what in mutation_points(source, fns):
            work.append((Mutant(rel, int(what.split()[1].rstrip(":")), fn, what), index))
    if args.again:
        before = {(m["file"], m["what"]): m["outcome"] for m in json.loads(args.again.read_text())}
        work = [(m, i) for m, i in work if before.get((m.file, m.what)) == "survived"]
    if args.list:
        for m, _ in work:
            print(f"{m.file}:{m.function}: {m.what}")
        print(f"{len(work)} mutants")
        return 0
    self_check(args.timeout)
    done: list[Mutant] = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for m in pool.map(lambda w: run_one(w[0], w[1], args.timeout), work):
            done.append(m)
            print(f"{m.outcome:8} {m.seconds:6.1f}s {m.file}:{m.function}: {m.what}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps([asdict(m) for m in done], indent=1) + "\n")
    by_file: dict[str, dict[str, int]] = {}
    for m in done:
        by_file.setdefault(m.file, {}).setdefault(m.outcome, 0)
        by_file[m.file][m.outcome] += 1
    for f, counts in by_file.items():
        print(f"{f}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    total = {k: sum(c.get(k, 0) for c in by_file.values()) for k in ("killed", "survived", "timeout")}
    print(f"total: {len(done)} mutants: " + ", ".join(f"{k} {v}" for k, v in total.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
