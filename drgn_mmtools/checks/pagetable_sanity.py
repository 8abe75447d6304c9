"""pagetable-sanity: user page-table entries that point where they must not.

A present leaf entry outside a PFN-mapped VMA must point at a RAM page with
a struct page that is neither free (buddy) nor slab, and whose refcount is
not zero.  Seen in the wild as a page freed while still mapped ("count:0
mapcount:-128") and as corrupted upper-level entries.
"""

from __future__ import annotations

from . import CheckSpec
from ..context import Context
from ..findings import CheckResult

NAME = "pagetable-sanity"


def run(ctx: Context) -> CheckResult:
    result = CheckResult(NAME)
    if ctx.pfn_ranges is None:
        result.unreadable.append("mem_section: which pfns are RAM is unknown; "
                                 "'outside RAM' is not checked")
    for mm in ctx.mm_maps:
        result.unreadable.extend(mm.unreadable)
        pid, comm = mm.users.pids[0], mm.users.comms[0]
        for leaf in mm.leaves:
            vma = mm.vmas.at(leaf.vaddr)
            ev = {"pid": pid, "pids": mm.users.pids, "comm": comm, "address": leaf.vaddr,
                  "pfn": leaf.pfn, "entry": leaf.entry, "size": leaf.size,
                  "vma_file": vma.file if vma else None}
            if vma is None:
                result.add("error", f"pid {pid} ({comm}) has a present page-table entry at "
                           f"{leaf.vaddr:#x} outside any VMA", **ev)
                continue
            if leaf.special or vma.special:
                continue
            if ctx.pfn_valid(leaf.pfn) is False:
                result.add("error", f"pid {pid} ({comm}) maps pfn {leaf.pfn:#x} at "
                           f"{leaf.vaddr:#x}, outside RAM with struct pages", **ev)
                continue
            page = ctx.page(leaf.pfn)
            if page is None:
                continue  # reported below, once per address space
            problem = ("a free (buddy) page" if page.buddy else "a slab page" if page.slab
                       else "a page with refcount 0" if page.refcount == 0 and not leaf.devmap
                       else None)
            if problem:
                result.add("error", f"pid {pid} ({comm}) maps {problem} at {leaf.vaddr:#x} "
                           f"(pfn {leaf.pfn:#x})", **ev, refcount=page.refcount,
                           mapcount=page.mapcount, flags=list(page.flag_names))
        for line in ctx.unreadable_pages(leaf.pfn for leaf in mm.leaves):
            result.unreadable.append(f"pid {pid}: {line}")
    return result


SPEC = CheckSpec(NAME, "present PTEs pointing outside RAM or at free / slab / refcount-0 pages", run)
