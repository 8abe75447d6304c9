"""Independent checks of the fixtures' ground truth, with stock drgn helpers only.

These functions assert that what a scenario recorded inside its guest is
visible in kernel memory.  They never import drgn_mmtools: they are the
oracle the tool is later measured against.
"""

from __future__ import annotations

from typing import Any, Iterable

import drgn
from drgn import Object
from drgn.helpers.linux.fs import d_path, path_lookup
from drgn.helpers.linux.mm import (
    PageHWPoison,
    follow_pfn,
    for_each_page,
    pfn_to_page,
    vma_find,
)
from drgn.helpers.linux.pid import find_task, for_each_task
from drgn.helpers.linux.xarray import xa_for_each, xa_is_value, xa_load, xa_to_value

#: Frames of a task that sleeps waiting for a locked DAX entry.
DAX_WAIT_FRAMES = {"get_unlocked_entry", "grab_mapping_entry", "dax_iomap_pte_fault",
                   "dax_iomap_pmd_fault", "dax_iomap_fault"}


def frame_names(prog: drgn.Program, task: Object) -> list[str]:
    names = []
    for frame in prog.stack_trace(task):
        name = frame.name
        if name is None:
            try:
                name = frame.symbol().name
            except LookupError:
                name = None
        names.append(name or "?")
    return names


def task_state(task: Object) -> int:
    try:
        return task.__state.value_()
    except AttributeError:  # before v5.14
        return task.state.value_()


def page_mapping(page: Object) -> Object:
    """page->mapping as ``struct address_space *``, with the low type bits cleared."""
    raw = page.mapping.value_()
    return Object(page.prog_, "struct address_space *", raw & ~3)


def check_hwpoison(prog: drgn.Program, t: dict[str, Any]) -> None:
    page = pfn_to_page(prog, t["pfn"])
    assert PageHWPoison(page), f"pfn {t['pfn']:#x} lacks PG_hwpoison"
    assert t["kpf_hwpoison"], "the guest's /proc/kpageflags did not show the poison"
    if t["in_page_cache"]:
        mapping = page_mapping(page)
        assert mapping.value_() != 0
        assert mapping.host.i_ino.value_() == t["inode"]
        assert page.index.value_() == t["index"]
        slot = xa_load(mapping.i_pages.address_of_(), t["index"])
        assert slot.value_() == page.value_(), "the page cache slot does not point back"
    elif t["inode"] is not None:
        inode = path_lookup(prog, t["file"]).dentry.d_inode
        assert inode.i_ino.value_() == t["inode"]
        slot = xa_load(inode.i_mapping.i_pages.address_of_(), t["index"])
        assert slot.value_() != page.value_(), "the truncated page is still cached"
    for m in t.get("mapped_by", []):
        task = find_task(prog, m["pid"])
        if m["pagemap"] == "present":
            assert follow_pfn(task.mm, m["address"]).value_() == t["pfn"]


def check_mapping_mismatch(prog: drgn.Program, t: dict[str, Any]) -> None:
    """The VMA at the address maps the recorded pfn, and the page's mapping
    and index are as the mismatch kind says."""
    task = find_task(prog, t["pid"])
    assert task, f"no task {t['pid']}"
    mm = task.mm
    vma = vma_find(mm, t["address"])
    assert vma, f"no VMA at {t['address']:#x}"
    if "vma_inode" in t:
        assert vma.vm_file.f_inode.i_ino.value_() == t["vma_inode"]
    assert d_path(vma.vm_file.f_path.address_of_()).decode() == t["vma_file"]
    pfn = follow_pfn(mm, t["address"]).value_()
    assert pfn == t["pfn"], "the page table does not map the recorded pfn"
    page = pfn_to_page(prog, pfn)
    mapping = page_mapping(page)
    kind = t.get("mismatch", "other-file")
    if kind == "truncated":
        assert page.mapping.value_() == 0, "the truncated page still has a mapping"
        return
    if kind == "index":
        assert mapping.value_() == vma.vm_file.f_mapping.value_()
        assert page.index.value_() == t["index"] != t["expected_index"]
        return
    assert mapping.value_() != vma.vm_file.f_mapping.value_()
    if "page_inode" in t:
        assert mapping.host.i_ino.value_() == t["page_inode"]
    lower = path_lookup(prog, t["page_file"]).dentry.d_inode
    assert lower.i_mapping.value_() == mapping.value_()


def check_pagecache_slot(prog: drgn.Program, t: dict[str, Any]) -> None:
    inode = path_lookup(prog, t["file"]).dentry.d_inode
    page = Object(prog, "struct page *",
                  xa_load(inode.i_mapping.i_pages.address_of_(), t["index"]).value_())
    assert page, "the slot is empty"
    lower = path_lookup(prog, t["page_file"]).dentry.d_inode
    assert page_mapping(page).value_() == lower.i_mapping.value_()
    assert page.index.value_() == t["page_index"]


def check_control(prog: drgn.Program, t: dict[str, Any]) -> None:
    """The control's task exists; where it names a page, its VMA maps it."""
    task = find_task(prog, t["pid"])
    assert task, f"no task {t['pid']}"
    if t.get("address") is not None and t["what"] != "poison-isolated":
        vma = vma_find(task.mm, t["address"])
        assert vma, f"no VMA at {t['address']:#x}"
        if t.get("pfnmap"):
            # The guest saw VM_PFNMAP in smaps ("pf"); its pagemap hides the PFN.
            assert vma.vm_flags.value_() & 0x400, "VM_PFNMAP not set"
        else:
            assert follow_pfn(task.mm, t["address"]).value_() == t["pfn"]


def check_pagetable_corrupt(prog: drgn.Program, t: dict[str, Any]) -> None:
    """The task exists and never touched its corrupted entries again: it
    sleeps; the address is in a VMA except for the "outside" case."""
    task = find_task(prog, t["pid"])
    assert task, f"no task {t['pid']}"
    assert task_state(task) == 1, "the corrupted task is not asleep"
    inside = vma_find(task.mm, t["address"])
    assert bool(inside) == (t["how"] != "pte-outside")


def check_fault_retry(prog: drgn.Program, t: dict[str, Any]) -> None:
    """The looping task is runnable and has never slept; where its stack is
    depends on the moment of the dump (manifest "frozen")."""
    task = find_task(prog, t["pid"])
    assert task.comm.string_().decode() == t["comm"]
    assert task_state(task) == 0, "the retrying task is not runnable"
    # It may have slept while its scenario set up, not since it loops.
    assert task.min_flt.value_() > 0


def dax_inode(prog: drgn.Program, t: dict[str, Any]) -> Object:
    inode = path_lookup(prog, t["file"]).dentry.d_inode
    assert inode.i_ino.value_() == t["inode"]
    return inode


def check_dax_entry(prog: drgn.Program, t: dict[str, Any]) -> None:
    inode = dax_inode(prog, t)
    entry = xa_load(inode.i_mapping.i_pages.address_of_(), t["index"])
    assert xa_is_value(entry), f"index {t['index']} holds no value entry"
    value = xa_to_value(entry).value_()
    assert value == t["value"], f"entry {value:#x}, recorded {t['value']:#x}"
    assert bool(value & 1) == t["locked"]
    assert bool(value & 2) == t["pmd"]


def dax_wait_table_tasks(prog: drgn.Program) -> set[int]:
    """PIDs of the tasks queued on fs/dax.c's wait_table."""
    table = prog.object("wait_table", filename="fs/dax.c")
    pids = set()
    for i in range(len(table)):
        head = table[i].head.address_of_()
        pos = head.next
        while pos != head:
            wq = drgn.container_of(pos, "struct wait_queue_entry", "entry")
            pids.add(Object(prog, "struct task_struct *", wq.private.value_()).pid.value_())
            pos = pos.next
    return pids


def check_dax_waiter(prog: drgn.Program, t: dict[str, Any]) -> None:
    task = find_task(prog, t["pid"])
    assert task_state(task) == 2, "the waiter is not in TASK_UNINTERRUPTIBLE"
    names = frame_names(prog, task)
    assert DAX_WAIT_FRAMES & set(names), f"not waiting on a DAX entry: {names}"
    assert t["pid"] in dax_wait_table_tasks(prog)
    inode = dax_inode(prog, t)
    entry = xa_load(inode.i_mapping.i_pages.address_of_(), t["index"])
    assert bool(xa_to_value(entry).value_() & 1) == t["entry_locked"]


CHECKS = {
    "hwpoison": check_hwpoison,
    "mapping_mismatch": check_mapping_mismatch,
    "pagecache_slot": check_pagecache_slot,
    "fault_retry": check_fault_retry,
    "dax_entry": check_dax_entry,
    "dax_waiter": check_dax_waiter,
    "control": check_control,
    "pagetable_corrupt": check_pagetable_corrupt,
}


def poisoned_pfns(prog: drgn.Program) -> list[int]:
    from drgn.helpers.linux.mm import page_to_pfn
    return [page_to_pfn(p).value_() for p in for_each_page(prog) if _safe_hwpoison(p)]


def _safe_hwpoison(page: Object) -> bool:
    try:
        return bool(PageHWPoison(page))
    except drgn.FaultError:
        return False


def tasks_in_fault_path(prog: drgn.Program) -> list[int]:
    found = []
    for task in for_each_task(prog):
        try:
            if {"pcc_retry_page_mkwrite", "pcc_retry_fault"} & set(frame_names(prog, task)):
                found.append(task.pid.value_())
        except (ValueError, drgn.FaultError):
            continue
    return found


def locked_dax_entries(prog: drgn.Program, files: Iterable[str]) -> list[tuple[str, int]]:
    locked = []
    for f in files:
        inode = path_lookup(prog, f).dentry.d_inode
        for index, entry in xa_for_each(inode.i_mapping.i_pages.address_of_()):
            if xa_is_value(entry) and xa_to_value(entry).value_() & 1:
                locked.append((f, index))
    return locked


def free_blocks(prog: drgn.Program) -> list[tuple[int, int]]:
    """Free buddy blocks as [start, end) pfns, from every zone's free lists.

    Walks ``zone->free_area[order].free_list[migratetype]`` with stock
    list helpers (pages are linked by ``lru``, or ``buddy_list`` where the
    kernel names it so)."""
    from drgn.helpers.linux.list import list_for_each_entry
    from drgn.helpers.linux.mm import page_to_pfn

    page_type = prog.type("struct page")
    link = "buddy_list" if any(m.name == "buddy_list" for m in _members(page_type)) else "lru"
    blocks = []
    for node in range(prog["nr_online_nodes"].value_() if "nr_online_nodes" in prog else 1):
        pgdat = prog["node_data"][node] if "node_data" in prog else prog["contig_page_data"].address_of_()
        for zone in pgdat.node_zones:
            if not zone.present_pages:
                continue
            for order, area in enumerate(zone.free_area):
                for lst in area.free_list:
                    for page in list_for_each_entry("struct page", lst.address_of_(), link):
                        pfn = page_to_pfn(page).value_()
                        blocks.append((pfn, pfn + (1 << order)))
    return sorted(blocks)


def _members(t: drgn.Type):
    """Members of a struct, anonymous unions flattened."""
    for m in t.members:
        if m.name is None:
            yield from _members(m.type)
        else:
            yield m
