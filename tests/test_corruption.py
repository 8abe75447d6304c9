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

import pytest

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


def _pmd_to(t, pid: int, pfn: int):
    """A mutation: the PMD entry of ``pid``'s first mapping-mismatch address
    (or its mmap_base) points at ``pfn``; and that address."""
    import struct

    import drgn

    from .corruption import Mutation

    mm = t.task(pid).mm
    address = next((x["address"] for x in t.truth("mapping_mismatch") if x["pid"] == pid),
                   mm.mmap_base.value_() - 4096)
    table = t.phys(mm.pgd.value_()) & ~0xfff
    for shift in (39, 30, 21):
        entry_phys = table + ((address >> shift) & 511) * 8
        entry = struct.unpack("<Q", t.prog.read(entry_phys, 8, True))[0]
        assert entry & 1, "the address is mapped"
        table = entry & 0x0000_ffff_ffff_f000
    x86 = t.prog.platform.arch == drgn.Architecture.X86_64
    m = Mutation(f"pmd-to/{pfn:#x}")
    m.patches[entry_phys] = struct.pack("<Q", pfn << 12 | (0x67 if x86 else 0x3))
    return m, address


@pytest.mark.parametrize("fx", DUMPS[:2], ids=[f.id for f in DUMPS[:2]])
@pytest.mark.parametrize("target", ["free", "slab"])
def test_table_pointer_to_a_free_or_slab_page_is_judged_after_the_walk(fx, target):
    """The walks judge table pointers to free and slab pages once the mem_map
    scan is in (so that the scan overlaps them); the result is the walk that
    refused them as it met them: one invalid PMD, and nothing read below it."""
    from drgn.helpers.linux.mm import PageSlab, for_each_page, page_to_pfn

    from drgn_mmtools.analysis.session import Session
    from drgn_mmtools.checks.pagetable_sanity import run
    from drgn_mmtools.kernel.pgtable import (PageTableWalk, reserved_address_bits,
                                             walk_user_page_tables)
    from drgn_mmtools.target import TargetSpec, finish_program

    from . import oracle
    from .corruption import Target, overlay_program

    t = Target(fx)
    if target == "free":
        start, end = max(oracle.free_blocks(t.prog), key=lambda b: b[1] - b[0])
        pfn = (start + end) // 2
    else:
        pfn = next(page_to_pfn(p).value_() for p in for_each_page(t.prog) if PageSlab(p))
    pid = next(x["pid"] for x in t.truth("mapping_mismatch"))
    m, address = _pmd_to(t, pid, pfn)
    prog = overlay_program(t, m)
    finish_program(prog, TargetSpec(vmlinux=fx.vmlinux, modules=fx.modules))
    ctx = Session(prog)
    mm = ctx.mm_by_pid[pid]
    why = "a free (buddy) page" if target == "free" else "a slab page"
    pmd = [c for c in mm.corrupt if c.level == 1]
    assert [(c.vaddr, c.why) for c in pmd] == [
        (address & ~((1 << 21) - 1), f"table pointer to pfn {pfn:#x}, {why}")]
    # The same as the walk that judges every pointer as it meets it.
    inline = PageTableWalk(reserved_mask=reserved_address_bits(prog),
                           table_problem=ctx.table_problem)
    leaves = list(walk_user_page_tables(prog, mm.users.mm.pgd.value_(), inline))
    assert list(mm.leaves) == leaves
    assert (mm.corrupt, mm.nonpresent) == (inline.corrupt, inline.nonpresent)
    found = [f for f in run(ctx).findings if f.rule == "bad-table-entry"
             and f.evidence["pid"] == pid]
    assert [f.evidence["address"] for f in found] == [pmd[0].vaddr]


@pytest.mark.parametrize("fx", DUMPS[:2], ids=[f.id for f in DUMPS[:2]])
def test_a_thread_list_cycle_costs_only_its_own_process(fx):
    """A thread list whose next points back at itself is reported, and every
    other process is still walked: nothing in the truth is lost."""
    from .corruption import Mutation, Target, run_mutation

    t = Target(fx)
    victims = {x["pid"] for kind in ("mapping_mismatch", "fault_retry")
               for x in t.truth(kind)}
    leader = next(task for task in _processes(t.prog)
                  if task.pid.value_() > 1 and task.pid.value_() not in victims and task.mm)
    m = Mutation(f"thread-cycle/{leader.pid.value_()}")
    t.patch_word(m, leader.thread_node.next.address_, leader.thread_node.address_)
    o = run_mutation(t, m)
    assert o.refused is None and not o.failed
    assert o.lost == [], o.lost
    assert any("threads of the process at" in line
               for r in o.json["checks"] for line in r["unreadable"]), o.json


def _processes(prog):
    from drgn.helpers.linux.list import list_for_each_entry

    return list(list_for_each_entry("struct task_struct", prog["init_task"].tasks.address_of_(),
                                    "tasks"))
