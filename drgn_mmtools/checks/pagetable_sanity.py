"""pagetable-sanity: user page-table entries that point where they must not.

A present leaf entry outside a PFN-mapped VMA must point at RAM with struct
pages, and at pages that are not free (inside a buddy block), not slab and
not at refcount zero.  Seen in the wild as a page freed while still mapped
("count:0 mapcount:-128") and as corrupted upper-level entries.

Every test is a set or interval lookup in the shared mem_map scan
(:attr:`Context.page_sets`): no struct page is decoded per mapped page,
except for tail pages, whose slab state and refcount live in their head.
"""

from __future__ import annotations

from . import CheckSpec
from ..context import Context
from ..findings import CappedFindings, CheckResult

NAME = "pagetable-sanity"


def problem(ctx: Context, pfn: int, pages: int, devmap: bool) -> str | None:
    """What is wrong with mapping ``pages`` pages from ``pfn``, or None."""
    sets = ctx.page_sets
    if sets.free_overlap(pfn, pages):
        return "a free (buddy) page"
    if sets.has(sets.tail, pfn):
        head = ctx.page(pfn)
        if head is None:
            return None  # counted as unreadable by the caller
        if head.slab:
            return "a slab page"
        return "a page with refcount 0" if head.refcount == 0 and not devmap else None
    if sets.has(sets.slab, pfn):
        return "a slab page"
    if not devmap and sets.has(sets.refcount0, pfn):
        return "a page with refcount 0"
    return None


def run(ctx: Context, result: CheckResult | None = None) -> CheckResult:
    result = result or CheckResult(NAME)
    if ctx.pfn_ranges is None:
        result.unreadable.append("mem_section: which pfns are RAM is unknown; "
                                 "'outside RAM' is not checked")
    sets = ctx.page_sets
    result.unreadable += sets.scan.describe_unreadable()
    shift = ctx.page_shift
    for mm in ctx.mm_maps:
        result.unreadable.extend(mm.unreadable)
        pid, comm = mm.users.pids[0], mm.users.comms[0]
        capped = CappedFindings(result, pid, comm)
        for va, value, why in mm.corrupt:
            capped.add(why, f"pid {pid} ({comm}) has a corrupted page-table entry for "
                       f"{va:#x}: {why}", pid=pid, comm=comm, address=va, entry=value)
        for leaf in mm.leaves:
            vma = mm.vmas.at(leaf.vaddr)
            ev = {"pid": pid, "pids": mm.users.pids, "comm": comm, "address": leaf.vaddr,
                  "pfn": leaf.pfn, "entry": leaf.entry, "size": leaf.size,
                  "vma_file": vma.file if vma else None}
            if vma is None:
                # With the VMA walk broken off, "outside any VMA" is unknown.
                if mm.vmas_complete:
                    capped.add("outside any VMA", f"pid {pid} ({comm}) has a present "
                               f"page-table entry at {leaf.vaddr:#x} outside any VMA", **ev)
                continue
            if leaf.special or vma.special:
                continue
            if ctx.pfn_valid(leaf.pfn) is False:
                capped.add("outside RAM", f"pid {pid} ({comm}) maps pfn {leaf.pfn:#x} at "
                           f"{leaf.vaddr:#x}, outside RAM with struct pages", **ev)
                continue
            what = problem(ctx, leaf.pfn, leaf.size >> shift, leaf.devmap)
            if what:
                page = ctx.page(leaf.pfn)
                extra = ({"refcount": page.refcount, "mapcount": page.mapcount,
                          "flags": list(page.flag_names)} if page else {})
                capped.add(what, f"pid {pid} ({comm}) maps {what} at {leaf.vaddr:#x} "
                           f"(pfn {leaf.pfn:#x})", **ev, **extra)
        capped.close()
        for line in ctx.unreadable_pages(leaf.pfn for leaf in mm.leaves):
            result.unreadable.append(f"pid {pid}: {line}")
    result.unreadable += ctx.task_problems
    return result


SPEC = CheckSpec(NAME, "present PTEs pointing outside RAM or at free / slab / refcount-0 pages", run)
