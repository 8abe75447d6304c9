"""The page-table walker against drgn's follow_pfn on every mapped page,
including x86_64 5-level paging (a live guest on a CPU model with LA57)."""

from __future__ import annotations

import drgn
import pytest
from drgn.helpers.linux.mm import follow_pfn

from drgn_mmtools.analysis.session import Session, leaves_by_vma
from drgn_mmtools.kernel.pgtable import (LeafRun, iter_leaves, page_table_format,
                                         walk_user_page_runs, walk_user_page_tables)
from drgn_mmtools.kernel.tasks import user_mms
from fixtures import lab
from fixtures.arches import ARCHES

from .guests import attach
from .manifests import all_fixtures, open_dump

FIXTURES = all_fixtures()


def assert_walk_matches_drgn(prog: drgn.Program, skip_pids: frozenset[int] = frozenset()) -> int:
    """Every leaf of every address space agrees with follow_pfn; live, the
    address spaces in ``skip_pids`` (a task that maps and unmaps memory all
    the time) change between the two reads and are left out."""
    checked = 0
    for users in user_mms(prog):
        if skip_pids & set(users.pids):
            continue
        for leaf in walk_user_page_tables(prog, users.mm.pgd.value_()):
            assert follow_pfn(users.mm, leaf.vaddr).value_() == leaf.pfn, hex(leaf.vaddr)
            checked += 1
    assert checked > 100
    return checked


@pytest.mark.parametrize("fx", FIXTURES, ids=[f.id for f in FIXTURES])
def test_walk_matches_drgn_on_dumps(fx):
    prog = open_dump(fx.path)
    assert page_table_format(prog).levels == 4
    assert_walk_matches_drgn(prog)


@pytest.mark.parametrize("fx", FIXTURES, ids=[f.id for f in FIXTURES])
def test_walk_in_runs_gives_the_same_leaves(fx):
    """Tables of plain entries come as runs; expanded, they are exactly the
    entry-by-entry walk's leaves, and grouped by VMA each lies in its VMA."""
    prog = open_dump(fx.path)
    runs = 0
    for users in user_mms(prog):
        items = list(walk_user_page_runs(prog, users.mm.pgd.value_()))
        leaves = list(walk_user_page_tables(prog, users.mm.pgd.value_()))
        assert list(iter_leaves(items)) == leaves
        runs += sum(type(item) is LeafRun for item in items)
        for item in items:
            if type(item) is LeafRun:
                got = list(item.leaves())
                assert not any(leaf.special or leaf.devmap or leaf.protnone for leaf in got)
                assert item.present == len(got)
                assert sorted(filter(None, item.phys)) == sorted(leaf.pfn << 12 for leaf in got)
    assert runs > 10
    session = Session(prog)
    for mm in session.mm_maps:
        grouped = []
        for vma, items in leaves_by_vma(mm):
            for leaf in iter_leaves(items):
                if vma is None:
                    assert mm.vmas.at(leaf.vaddr) is None
                else:
                    assert vma.start <= leaf.vaddr < vma.end
                grouped.append(leaf)
        assert grouped == list(mm.leaves)


@pytest.mark.live
def test_walk_matches_drgn_with_5_level_paging(tmp_path):
    arch = ARCHES["x86_64"]
    guest = lab.boot_shipped(arch, "bugs", tmp_path, cpu="qemu64,+la57")
    try:
        guest.wait_ready(timeout=900)
        prog = attach(guest)
        assert page_table_format(prog).levels == 5
        busy = frozenset(t["pid"] for t in guest.truth
                         if t["kind"] == "control" and t["what"] == "busy")
        assert busy
        assert_walk_matches_drgn(prog, busy)
    finally:
        guest.stop()
