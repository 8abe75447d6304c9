"""hwpoison-pagecache: hardware-poisoned pages, and which are still cached.

Every PG_hwpoison page comes from one bulk scan of mem_map.  A poisoned page
is still in the page cache when its mapping is a file and that mapping's
i_pages slot at the page's index points back at it (shmem keeps poisoned
pages since Linux 5.16; most filesystems truncate them).  Who maps a
poisoned page comes from the page tables: present entries, and the hwpoison
swap entries that memory_failure() leaves in the PTEs it unmapped (crash's
``vm -p`` shows them too).  A page the kernel isolated correctly (in no page
cache, mapped by no present entry) is an ``info`` record, not a finding.
File THPs that could not be split carry PG_has_hwpoisoned on their first
tail page (``folio_has_hwpoisoned``).  The kernel's own count
(``num_poisoned_pages``) is compared with the scan.
"""

from __future__ import annotations

import drgn

from .base import Check
from ..analysis.mismatch import in_page_cache
from ..analysis.session import Session
from ..report.findings import CheckResult
from ..kernel.pageflags import pageflag_bit
from ..kernel.swap_entry import swap_types
from .rules import Rule

NAME = "hwpoison-pagecache"


def kernel_poisoned_count(prog: drgn.Program) -> int | None:
    """``num_poisoned_pages`` (an atomic_long_t), None if absent."""
    try:
        return prog["num_poisoned_pages"].counter.value_()
    except (KeyError, AttributeError, drgn.FaultError):
        return None


RULES = (
    Rule("in-page-cache", "error",
         "a PG_hwpoison page is still in its file's page cache (the slot at its index points "
         "at it): reads of it fail, and whoever maps it is listed", kernels="shmem: 5.16+",
         fires=("hwpoison:tmpfs",), legit=("hwpoison:ext4",)),
    Rule("mapped", "error",
         "a PG_hwpoison page is mapped by a present page-table entry: memory_failure() could "
         "not unmap it", fires=("hwpoison:mapped",), legit=("control:poison-isolated",)),
    Rule("isolated", "info",
         "a PG_hwpoison page in no page cache and mapped by no present entry: the kernel "
         "isolated it; the hwpoison swap entries left in page tables are listed as mapped_by",
         fires=("hwpoison:ext4", "hwpoison:anon")),
)


def run(ctx: Session, result: CheckResult | None = None) -> CheckResult:
    prog = ctx.prog
    result = result or CheckResult(NAME)
    poison = pageflag_bit(prog, "PG_hwpoison")
    if poison is None:
        result.notes.append("kernel built without CONFIG_MEMORY_FAILURE: no PG_hwpoison")
        return result
    sets = ctx.page_sets
    scan = sets.scan
    result.unreadable += scan.describe_unreadable()
    pfns = sets.hwpoison
    mappers = ctx.mappers(set(pfns))
    entries = ctx.swap_refs(set(pfns))
    if pfns:
        result.unreadable += ctx.task_problems  # who maps them may be incomplete
        for mm in ctx.mm_maps:
            result.unreadable.extend(mm.unreadable)
    dirty_bit = pageflag_bit(prog, "PG_dirty")
    folios = set(sets.has_hwpoisoned)
    hwpoison_type = swap_types(prog).max_swapfiles
    for pfn in pfns:
        page = ctx.page(pfn)
        if page is None:
            result.unreadable.append(f"struct page of hardware-poisoned pfn {pfn:#x}")
            result.record("poisoned_page", "isolated", pfn=pfn, unreadable=True)
            continue
        present = [{"pid": mm.users.pids[0], "comm": mm.users.comms[0], "address": leaf.vaddr,
                    "entry": "present"} for mm, leaf in mappers[pfn]]
        # SWP_HWPOISON is MAX_SWAPFILES in every kernel with hwpoison entries.
        swapped = [{"pid": mm.users.pids[0], "comm": mm.users.comms[0], "address": va,
                    "entry": "hwpoison-entry" if t == hwpoison_type else "special-entry",
                    "swap_type": t, "level": level}
                   for mm, va, level, t in entries[pfn]]
        mapped_by = present + swapped
        ev = {"pfn": pfn, "flags": list(page.flag_names), "mapping_kind": page.mapping_kind,
              "refcount": page.refcount, "mapcount": page.mapcount,
              "dirty": bool(dirty_bit is not None and page.flags >> dirty_bit & 1),
              "mapped_by": mapped_by,
              "pid": mapped_by[0]["pid"] if mapped_by else None,
              "address": mapped_by[0]["address"] if mapped_by else None,
              "page_file": None, "page_inode": None, "page_index": None, "page_fs": None,
              "in_page_cache": False,
              "folio_has_hwpoisoned": page.head_pfn + 1 in folios if page.order else False}
        unreadable: tuple[str, ...] = ()
        if page.mapping_kind == "file":
            o = ctx.owner(page.mapping)
            if o is not None:
                ev.update(page_file=o.path, page_inode=o.inode, page_fs=o.fstype)
            else:
                unreadable = (f"address_space {page.mapping:#x}",)
            ev["page_index"] = page.index + (pfn - page.head_pfn)
            cached = in_page_cache(prog, page.mapping, page.index, page.head_pfn)
            ev["in_page_cache"] = cached
            if cached is None:
                unreadable += (f"i_pages of address_space {page.mapping:#x}",)
        elif page.mapping_kind == "anon":
            ev["page_fs"] = "anon"
        who = (f"; mapped by pid {mapped_by[0]['pid']} ({mapped_by[0]['comm']})"
               if mapped_by else "")
        if ev["in_page_cache"]:
            result.add("error", f"pfn {pfn:#x} is hardware-poisoned and still in the page cache "
                       f"of {ev['page_file']} (ino {ev['page_inode']}, {ev['page_fs']}) at index "
                       f"{ev['page_index']}, {'dirty' if ev['dirty'] else 'clean'}{who}",
                       unreadable, rule="in-page-cache", **ev)
        elif present:
            result.add("error", f"pfn {pfn:#x} is hardware-poisoned and still mapped by pid "
                       f"{present[0]['pid']} ({present[0]['comm']}) at "
                       f"{present[0]['address']:#x}", unreadable, rule="mapped", **ev)
        else:
            result.record("poisoned_page", "isolated", unreadable=list(unreadable), **ev)
    found = {ctx.page(p).head_pfn + 1 for p in pfns if ctx.page(p) is not None}
    for pfn in sorted(folios - found):
        result.notes.append(f"the large folio before pfn {pfn:#x} has PG_has_hwpoisoned but no "
                            f"PG_hwpoison subpage was found")
    kernel = kernel_poisoned_count(prog)
    result.records.append({"kind": "poison_count", "scanned": len(pfns),
                           "kernel_num_poisoned_pages": kernel,
                           "pages_scanned": scan.pages_scanned})
    if kernel is not None and kernel != len(pfns):
        result.notes.append(f"num_poisoned_pages is {kernel}, the scan found {len(pfns)} "
                            f"PG_hwpoison pages")
    return result


CHECK = Check(
    name=NAME,
    description="hardware-poisoned pages and whether the page cache still holds them",
    run=run,
    rules=RULES,
    order=30,
)
