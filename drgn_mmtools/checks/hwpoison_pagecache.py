"""hwpoison-pagecache: hardware-poisoned pages, and which are still cached.

Every PG_hwpoison page comes from one bulk scan of mem_map.  A poisoned page
is still in the page cache when its mapping is a file and that mapping's
i_pages slot at the page's index points back at it (shmem keeps poisoned
pages since Linux 5.16; most filesystems truncate them).  File THPs that
could not be split carry PG_has_hwpoisoned on their first tail page.  The
kernel's own count (``num_poisoned_pages``) is compared with the scan.
"""

from __future__ import annotations

import drgn

from . import CheckSpec
from .mapping_mismatch import in_page_cache
from ..context import Context
from ..findings import CheckResult
from ..helpers.pageflags import pageflag_bit

NAME = "hwpoison-pagecache"


def kernel_poisoned_count(prog: drgn.Program) -> int | None:
    """``num_poisoned_pages`` (an atomic_long_t), None if absent."""
    try:
        return prog["num_poisoned_pages"].counter.value_()
    except (KeyError, AttributeError, drgn.FaultError):
        return None


def run(ctx: Context, result: CheckResult | None = None) -> CheckResult:
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
    if pfns:
        result.unreadable += ctx.task_problems  # who maps them may be incomplete
    dirty_bit = pageflag_bit(prog, "PG_dirty")
    for pfn in pfns:
        page = ctx.page(pfn)
        if page is None:
            result.add("warning", f"pfn {pfn:#x} is hardware-poisoned; its struct page is unreadable",
                       unreadable=(f"struct page of pfn {pfn:#x}",), pfn=pfn)
            continue
        maps = [(mm.users.pids[0], mm.users.comms[0], leaf.vaddr) for mm, leaf in mappers[pfn]]
        ev = {"pfn": pfn, "flags": list(page.flag_names), "mapping_kind": page.mapping_kind,
              "refcount": page.refcount, "mapcount": page.mapcount,
              "dirty": bool(dirty_bit is not None and page.flags >> dirty_bit & 1),
              "mapped_by": [{"pid": p, "comm": c, "address": a} for p, c, a in maps],
              "pid": maps[0][0] if maps else None, "address": maps[0][2] if maps else None,
              "file": None, "inode": None, "index": None, "in_page_cache": False, "fs": None}
        unreadable: tuple[str, ...] = ()
        if page.mapping_kind == "file":
            o = ctx.owner(page.mapping)
            if o is not None:
                ev.update(file=o.path, inode=o.inode, fs=o.fstype)
            else:
                unreadable = (f"address_space {page.mapping:#x}",)
            ev["index"] = page.index + (pfn - page.head_pfn)
            cached = in_page_cache(prog, page.mapping, page.index, page.head_pfn)
            ev["in_page_cache"] = cached
            if cached is None:
                unreadable += (f"i_pages of address_space {page.mapping:#x}",)
        elif page.mapping_kind == "anon":
            ev["fs"] = "anon"
        who = f"; mapped by pid {maps[0][0]} ({maps[0][1]})" if maps else ""
        if ev["in_page_cache"]:
            result.add("error", f"pfn {pfn:#x} is hardware-poisoned and still in the page cache "
                       f"of {ev['file']} (ino {ev['inode']}, {ev['fs']}) at index {ev['index']}"
                       f", {'dirty' if ev['dirty'] else 'clean'}{who}", unreadable, **ev)
        else:
            where = {"anon": "an anonymous page", "none": "in no page cache",
                     "file": f"no longer cached by {ev['file']}"}.get(page.mapping_kind,
                                                                     page.mapping_kind)
            result.add("error" if maps else "warning",
                       f"pfn {pfn:#x} is hardware-poisoned ({where}){who}", unreadable, **ev)
    for pfn in sets.has_hwpoisoned:
        page = ctx.page(pfn)
        head = page.head_pfn if page else pfn - 1
        result.add("warning", f"large folio at pfn {head:#x} has a poisoned subpage "
                   f"(PG_has_hwpoisoned) and was not split", pfn=head, order=page.order if page else None)
    kernel = kernel_poisoned_count(prog)
    result.records.append({"kind": "poison_count", "scanned": len(pfns),
                           "kernel_num_poisoned_pages": kernel, "pages_scanned": scan.pages_scanned})
    if kernel is not None and kernel != len(pfns):
        result.notes.append(f"num_poisoned_pages is {kernel}, the scan found {len(pfns)} "
                            f"PG_hwpoison pages")
    return result


SPEC = CheckSpec(NAME, "hardware-poisoned pages and whether the page cache still holds them", run)
