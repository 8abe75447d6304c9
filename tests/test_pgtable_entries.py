"""The page-table walker as a pure decoder: entries the fixtures cannot
plant (PROT_NONE, an erratum's stray A/D bits, large-page bits where a level
has none, arm64 reserved descriptor types, cycles) laid out in a synthetic
physical memory, one table page per level.

The dumps test the walker against drgn's follow_pfn on real kernels
(test_pgtable_levels.py) and on the ptcorrupt scenario (test_rules.py).
"""

from __future__ import annotations

import struct

import drgn
import pytest

from drgn_mmtools.kernel.pgtable import (LeafRun, PageTableWalk, iter_leaves,
                                         walk_user_page_runs, walk_user_page_tables)

PAGE = 4096
PGD_VIRT = 0xFFFF_8000_0010_0000  # where "mm->pgd" points; also mapped physically
TABLES = {"pgd": 0x100000, "pud": 0x101000, "pmd": 0x102000, "pte": 0x103000}


class Memory:
    """Table pages at fixed physical addresses; every other byte reads 0."""

    def __init__(self) -> None:
        self.pages = {a: bytearray(PAGE) for a in TABLES.values()}

    def set(self, table: str, index: int, value: int) -> None:
        struct.pack_into("<Q", self.pages[TABLES[table]], index * 8, value)

    def read(self, address: int, count: int, offset: int, physical: bool) -> bytes:
        if not physical:
            address = TABLES["pgd"] + (address - PGD_VIRT)
        base = address & ~(PAGE - 1)
        page = self.pages.get(base)
        if page is None:
            raise drgn.FaultError("not in this memory", address)
        return bytes(page[address - base:address - base + count])


def program(arch: str, mem: Memory) -> drgn.Program:
    a = drgn.Architecture.X86_64 if arch == "x86_64" else drgn.Architecture.AARCH64
    prog = drgn.Program(drgn.Platform(a, drgn.PlatformFlags.IS_64_BIT
                                      | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
    prog.add_memory_segment(0, 1 << 40, mem.read, physical=True)
    prog.add_memory_segment(PGD_VIRT, PAGE, mem.read)
    return prog


def tables(arch: str) -> Memory:
    """pgd[0] -> pud -> pmd[0] -> pte: user addresses 0 to 2 MiB map through ``pte``."""
    mem = Memory()
    table = 0x67 if arch == "x86_64" else 0x3  # present/valid table descriptors
    mem.set("pgd", 0, TABLES["pud"] | table)
    mem.set("pud", 0, TABLES["pmd"] | table)
    mem.set("pmd", 0, TABLES["pte"] | table)
    return mem


def walk(arch: str, mem: Memory, **kw):
    """The entry-by-entry walk; the walk in runs must see the same."""
    w = PageTableWalk(**kw)
    leaves = list(walk_user_page_tables(program(arch, mem), PGD_VIRT, w))
    items, w2 = walk_runs(arch, mem, **kw)
    assert list(iter_leaves(items)) == leaves
    assert (w2.corrupt, w2.nonpresent, w2.unreadable) == (w.corrupt, w.nonpresent, w.unreadable)
    return leaves, w


def walk_runs(arch: str, mem: Memory, **kw):
    w = PageTableWalk(**kw)
    return list(walk_user_page_runs(program(arch, mem), PGD_VIRT, w)), w


X86_PAGE = 0x25  # present, user, accessed
ARM_PAGE = 0x3 | 1 << 10 | 1 << 6  # valid page, AF, user


@pytest.mark.parametrize("arch, present", [("x86_64", X86_PAGE), ("aarch64", ARM_PAGE)])
def test_present_leaf(arch, present):
    mem = tables(arch)
    mem.set("pte", 5, 0x4242000 | present)
    leaves, w = walk(arch, mem)
    assert [(leaf.vaddr, leaf.pfn, leaf.protnone) for leaf in leaves] == [(5 * PAGE, 0x4242, False)]
    assert (w.corrupt, w.nonpresent) == ([], [])


@pytest.mark.parametrize("arch, value", [("x86_64", 0x4242000 | 1 << 8 | 0x24),
                                         ("aarch64", 0x4242000 | 1 << 58 | 1 << 10 | 0x2)])
def test_prot_none_is_a_present_leaf_not_a_swap_entry(arch, value):
    mem = tables(arch)
    mem.set("pte", 7, value)
    leaves, w = walk(arch, mem)
    assert [(leaf.vaddr, leaf.pfn, leaf.protnone) for leaf in leaves] == [(7 * PAGE, 0x4242, True)]
    assert w.nonpresent == []


def test_x86_stray_accessed_dirty_bits_are_a_none_entry():
    mem = tables("x86_64")
    mem.set("pte", 1, 0x60)
    leaves, w = walk("x86_64", mem)
    assert (leaves, w.corrupt, w.nonpresent) == ([], [], [])


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_swap_format_entries_are_kept_at_pte_and_pmd_levels(arch):
    mem = tables(arch)
    mem.set("pte", 3, 0xDEADBE00)
    mem.set("pmd", 2, 0xBAD000)
    leaves, w = walk(arch, mem)
    assert leaves == [] and w.corrupt == []
    assert sorted(w.nonpresent) == [(3 * PAGE, 0, 0xDEADBE00), (2 << 21, 1, 0xBAD000)]


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_non_present_upper_level_entry_is_corrupt(arch):
    mem = tables(arch)
    mem.set("pud", 4, 0xBAD000)
    leaves, w = walk(arch, mem)
    assert [(c.vaddr, c.level, c.value) for c in w.corrupt] == [(4 << 30, 2, 0xBAD000)]
    assert w.nonpresent == []


def test_x86_large_page_bit_in_the_pgd_is_corrupt():
    mem = tables("x86_64")
    mem.set("pgd", 1, 0x200000 | 0x80 | X86_PAGE)
    _, w = walk("x86_64", mem)
    assert [(c.level, "page-size bit" in c.why) for c in w.corrupt] == [(3, True)]


@pytest.mark.parametrize("arch, present", [("x86_64", X86_PAGE), ("aarch64", ARM_PAGE)])
def test_reserved_address_bits(arch, present):
    mem = tables(arch)
    mem.set("pte", 2, 0x4242000 | 1 << 45 | present)
    mem.set("pte", 3, 0x4243000 | present)
    leaves, w = walk(arch, mem, reserved_mask=((1 << 52) - 1) & ~((1 << 40) - 1))
    assert [leaf.vaddr for leaf in leaves] == [3 * PAGE]
    assert [(c.vaddr, c.level, c.why.startswith("reserved address bits")) for c in w.corrupt] == \
        [(2 * PAGE, 0, True)]


def test_arm64_reserved_descriptors():
    mem = tables("aarch64")
    mem.set("pte", 6, 0x4242000 | 0x1)        # block type at the page level
    mem.set("pgd", 1, 0x40000000 | 0x1)      # block at the top of 4 levels
    leaves, w = walk("aarch64", mem)
    assert leaves == []
    assert sorted((c.level, c.vaddr) for c in w.corrupt) == [(0, 6 * PAGE), (3, 1 << 39)]


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_table_pointer_judged_before_it_is_followed(arch):
    mem = tables(arch)
    asked = []

    def problem(pfn):
        asked.append(pfn)
        return "pfn outside RAM" if pfn == TABLES["pmd"] >> 12 else None

    mem.set("pte", 0, 0x4242000 | (X86_PAGE if arch == "x86_64" else ARM_PAGE))
    leaves, w = walk(arch, mem, table_problem=problem)
    assert leaves == []
    assert [(c.level, c.why) for c in w.corrupt] == [(2, "table pointer to pfn outside RAM")]
    assert TABLES["pud"] >> 12 in asked


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_a_table_that_points_back_up_is_a_cycle(arch):
    mem = tables(arch)
    mem.set("pmd", 1, TABLES["pud"] | (0x67 if arch == "x86_64" else 0x3))
    _, w = walk(arch, mem)
    assert [(c.vaddr, c.level, "cycle" in c.why) for c in w.corrupt] == [(1 << 21, 1, True)]


def test_walk_stops_at_the_end_of_user_space():
    mem = tables("x86_64")
    mem.set("pgd", 256, TABLES["pud"] | 0x67)  # the kernel half: never walked
    mem.set("pte", 0, 0x4242000 | X86_PAGE)
    leaves, w = walk("x86_64", mem)
    assert [leaf.vaddr for leaf in leaves] == [0]


def page_entry(arch: str) -> int:
    return X86_PAGE if arch == "x86_64" else ARM_PAGE


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_a_table_of_plain_entries_is_one_run(arch):
    mem = tables(arch)
    for i, pfn in ((3, 0x5000), (4, 0x4242), (400, 0x9999)):
        mem.set("pte", i, pfn << 12 | page_entry(arch))
    items, _ = walk_runs(arch, mem)
    assert [type(item) for item in items] == [LeafRun]
    run = items[0]
    assert (run.vaddr, run.present) == (0, 3)
    assert list(run.phys[:5]) == [0, 0, 0, 0x5000000, 0x4242000] and run.phys[400] == 0x9999000
    assert [(leaf.vaddr, leaf.pfn) for leaf in run.leaves()] == \
        [(3 * PAGE, 0x5000), (4 * PAGE, 0x4242), (400 * PAGE, 0x9999)]
    part = run.part(4 * PAGE, 401 * PAGE)
    assert [(leaf.vaddr, leaf.pfn) for leaf in part.leaves()] == [(4 * PAGE, 0x4242),
                                                                   (400 * PAGE, 0x9999)]
    assert (part.vaddr, part.present, part.phys[0]) == (4 * PAGE, 2, 0x4242000)
    assert run.part(5 * PAGE, 400 * PAGE) is None
    assert run.part(0, 1 << 21) is run


# Entries that make the table take the entry-by-entry path, per arch: special,
# devmap, reserved bits, a present entry mapping physical address 0, a swap
# entry, and (x86) stray A/D bits.
ODD = {
    "x86_64": [0x4242000 | 1 << 9 | X86_PAGE, 0x4242000 | 1 << 58 | X86_PAGE,
               0x4242000 | 1 << 45 | X86_PAGE, X86_PAGE, 0xDEADBE00, 0x60],
    "aarch64": [0x4242000 | 1 << 56 | ARM_PAGE, 0x4242000 | 1 << 57 | ARM_PAGE,
                0x4242000 | 1 << 45 | ARM_PAGE, ARM_PAGE, 0xDEADBE00, 0x4242000 | 0x1],
}


@pytest.mark.parametrize("arch, odd", [(a, v) for a, vs in ODD.items() for v in vs])
def test_one_odd_entry_takes_the_table_entry_by_entry(arch, odd):
    mem = tables(arch)
    mem.set("pte", 3, 0x5000 << 12 | page_entry(arch))
    mem.set("pte", 9, odd)
    items, _ = walk_runs(arch, mem, reserved_mask=((1 << 52) - 1) & ~((1 << 40) - 1))
    assert not any(type(item) is LeafRun for item in items)
    walk(arch, mem, reserved_mask=((1 << 52) - 1) & ~((1 << 40) - 1))  # and agrees
