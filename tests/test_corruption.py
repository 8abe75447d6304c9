"""Corrupted kernel structures: no traceback, no hang, no failed check, no
control byte in the output, and nothing unrelated lost.

Each case corrupts one structure of a shipped bugs dump in an overlay copy
(tests/corruption.py): struct pages, XArray nodes, page tables, maple
nodes, task fields and lists, dentries and inode lists, buddy lists,
mem_section, VMCOREINFO.  The tool then opens it the way the command line
does (debug info, sanity reads) and runs every check.  A fixed seed runs
in CI; ``--fuzz-cases N --fuzz-seed S`` runs more.
"""

from __future__ import annotations

from .corruption import CHECK_TIMEOUT, CLASSES, DUMPS, UNSAFE, mutation, run_case, target_for
from .schema import SCHEMA, validate

def test_corrupted_structure(fuzz_case):
    o = run_case(*fuzz_case)
    if o.refused is not None:
        # Refused at open: one line and exit 2, acceptable for any mutation.
        assert "\n" not in o.refused and not UNSAFE.search(o.refused), o.name
        return
    assert not o.failed, f"{o.name}: {o.failed}"
    assert not o.timed_out, f"{o.name}: ran past {CHECK_TIMEOUT} s: {o.timed_out}"
    assert o.exit_code in (0, 1, 2)
    validate(o.json, SCHEMA)
    assert o.unsafe is None, f"{o.name}: unescaped {o.unsafe!r} in the text report"
    assert o.report.rstrip().splitlines()[-1].startswith("verdict: ")
    assert not o.lost, f"{o.name} lost unrelated findings: {o.lost}"
    if o.name.startswith("mem_section/"):
        # Sections hidden or unreadable: what it costs is said, never silent.
        assert "hwpoison" not in o.silent, f"{o.name} dropped poisoned pages silently"
    assert o.seconds < 2 * CHECK_TIMEOUT


def test_every_structure_class_is_covered(request):
    """The cases run reach every mutation class on every dump."""
    n = request.config.getoption("--fuzz-cases")
    seed = request.config.getoption("--fuzz-seed")
    assert n >= len(DUMPS) * len(CLASSES), "too few --fuzz-cases to reach every class and dump"
    seen = {(target_for(i).fx.id, mutation(seed, i)[1].name.split("/")[0]) for i in range(n)}
    assert seen == {(f.id, c) for f in DUMPS for c in CLASSES}, sorted(seen)
