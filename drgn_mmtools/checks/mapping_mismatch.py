"""mapping-mismatch: pages mapped in a file VMA that belong to another file.

The Lustre PCC hang (LU-14346): after a detach, a page faulted in through the
PCC copy stays in that file's page cache while the VMA's file is the Lustre
file, and ``->page_mkwrite`` retries forever.  A NULL ``page->mapping`` means
the page was truncated while still mapped; another file's mapping means the
page was handed out by the wrong ``->fault``.  Page-cache slots of the files
involved whose page names another mapping or index are reported too.
"""

from __future__ import annotations

import drgn
from drgn import Object
from drgn.helpers.linux.mm import page_to_pfn, pfn_to_page
from drgn.helpers.linux.xarray import xa_load

from . import CheckSpec
from ..context import Context, MmMap
from ..findings import CappedFindings, CheckResult
from ..helpers.pgtable import Leaf
from ..helpers.vma import VmaInfo
from ..helpers.xarray import xa_entries

NAME = "mapping-mismatch"


def vma_evidence(vma: VmaInfo) -> dict:
    return {
        "vma_start": vma.start, "vma_end": vma.end, "vma_flags": vma.flags,
        "vma_file": vma.file, "vma_inode": vma.inode,
        "vm_ops": str(vma.vm_ops), "fault_handler": str(vma.fault),
        "page_mkwrite_handler": str(vma.page_mkwrite),
        "handler_module": vma.page_mkwrite.module or vma.fault.module or vma.vm_ops.module,
        # Where the handler names came from: "debuginfo" or "kallsyms".
        "symbol_source": vma.page_mkwrite.source or vma.fault.source or vma.vm_ops.source,
    }


def mismatches(ctx: Context, mm: MmMap) -> list[tuple[Leaf, VmaInfo, str]]:
    """Leaves of one address space whose page disagrees with its VMA's file;
    computed once per address space and shared with fault-retry.

    :returns: (leaf, vma, kind) with kind "other-file", "truncated" or "index".
    """
    # Memoized for the shared walks of ctx.mm_maps only; a fresh walk (live
    # re-reads) is judged afresh.
    if "shared_mm_ids" not in ctx.memo:
        ctx.memo["shared_mm_ids"] = {id(m) for m in ctx.mm_maps}
    shared = id(mm) in ctx.memo["shared_mm_ids"]
    key = ("mismatches", mm.users.mm.value_())
    if shared and key in ctx.memo:
        return ctx.memo[key]
    out = []
    shift = ctx.page_shift
    for leaf in mm.leaves:
        if leaf.special:
            continue
        vma = mm.vmas.at(leaf.vaddr)
        if vma is None or not vma.mapping or vma.special:
            continue
        page = ctx.page(leaf.pfn)
        if page is None or page.buddy or page.slab:
            continue  # unreadable, free-block head or slab: pagetable-sanity's business
        if page.mapping_kind in ("anon", "ksm", "movable"):
            continue  # COW copies in private file mappings, or non-LRU movable
        if page.mapping_kind == "none":
            # A page inside a free buddy block has no mapping either: that is
            # pagetable-sanity's "free page mapped", not a truncation.
            if not leaf.devmap and not ctx.page_sets.free_overlap(leaf.pfn):
                out.append((leaf, vma, "truncated"))
        elif page.mapping != vma.mapping:
            out.append((leaf, vma, "other-file"))
        elif page.index + (page.pfn - page.head_pfn) != vma.file_index(leaf.vaddr, shift):
            out.append((leaf, vma, "index"))
    if shared:
        ctx.memo[key] = out
    return out


def in_page_cache(prog: drgn.Program, mapping: int, index: int, head_pfn: int) -> bool | None:
    """Whether mapping's i_pages slot at index holds the page; None if unreadable."""
    try:
        m = Object(prog, "struct address_space *", mapping)
        slot = xa_load(m.i_pages.address_of_(), index).value_()
        return slot == pfn_to_page(prog, head_pfn).value_()
    except drgn.FaultError:
        return None


def check_slots(ctx: Context, mapping: int, result: CheckResult) -> None:
    """Report page-cache slots of ``mapping`` whose page names another mapping or index."""
    prog = ctx.prog
    m = Object(prog, "struct address_space *", mapping)
    try:
        entries = list(xa_entries(m.i_pages.address_of_()))
    except drgn.FaultError as e:
        result.unreadable.append(f"i_pages of mapping {mapping:#x}: {e}")
        return
    for e in entries:
        if e.kind != "pointer":
            continue
        pfn = page_to_pfn(Object(prog, "struct page *", e.entry)).value_()
        page = ctx.page(pfn)
        if page is None:
            result.unreadable.append(f"struct page {e.entry:#x} in i_pages of mapping {mapping:#x}")
            continue
        span = 1 << max(page.order, e.order)
        if page.mapping == mapping and page.index <= e.index < page.index + span:
            continue
        o = ctx.owner(mapping)
        other = ctx.owner(page.mapping) if page.mapping else None
        result.add(
            "error",
            f"page-cache slot {e.index} of {o.path if o else hex(mapping)} holds a page of "
            f"{(other.path if other else hex(page.mapping)) if page.mapping else 'no mapping'}"
            f" at index {page.index}",
            pfn=pfn, index=e.index, page_index=page.index, file=o.path if o else None,
            inode=o.inode if o else None, page_file=other.path if other else None,
            page_inode=other.inode if other else None, kind="slot",
        )


def run(ctx: Context, result: CheckResult | None = None) -> CheckResult:
    result = result or CheckResult(NAME)
    files_seen: set[int] = set()
    for mm in ctx.mm_maps:
        result.unreadable.extend(mm.unreadable)
        pids, comm = mm.users.pids, mm.users.comms[0]
        found = mismatches(ctx, mm)
        for line in ctx.unreadable_pages(leaf.pfn for leaf in mm.leaves):
            result.unreadable.append(f"pid {pids[0]}: {line}")
        capped = CappedFindings(result, pids[0], comm)
        for leaf, vma, kind in found:
            page = ctx.page(leaf.pfn)
            assert page is not None
            ev = {"pid": pids[0], "pids": pids, "comm": comm, "address": leaf.vaddr,
                  "pfn": leaf.pfn, "writable": leaf.writable, "kind": kind,
                  "expected_index": vma.file_index(leaf.vaddr, ctx.page_shift),
                  **vma_evidence(vma)}
            files_seen.add(vma.mapping)
            if kind == "truncated":
                capped.add(kind, f"pid {pids[0]} ({comm}) maps a truncated page (mapping NULL) "
                           f"at {leaf.vaddr:#x} in {vma.file}", **ev, index=page.index,
                           file=vma.file, inode=vma.inode)
                continue
            po = ctx.owner(page.mapping)
            files_seen.add(page.mapping)
            ev.update(page_mapping=page.mapping, page_file=po.path if po else None,
                      page_inode=po.inode if po else None, page_fs=po.fstype if po else None,
                      index=page.index, file=po.path if po else None,
                      inode=po.inode if po else None,
                      in_page_cache=in_page_cache(ctx.prog, page.mapping, page.index,
                                                  page.head_pfn))
            if kind == "other-file":
                summary = (f"pid {pids[0]} ({comm}) maps at {leaf.vaddr:#x} a page of "
                           f"{ev['page_file']} (ino {ev['page_inode']}) in a VMA of {vma.file} "
                           f"(vm_ops {vma.vm_ops})")
            else:
                summary = (f"pid {pids[0]} ({comm}) maps at {leaf.vaddr:#x} index "
                           f"{page.index} of {vma.file} where the VMA expects index "
                           f"{ev['expected_index']}")
            capped.add(kind, summary, **ev)
        capped.close()
    for mapping in sorted(files_seen):
        check_slots(ctx, mapping, result)
    result.unreadable += ctx.task_problems
    return result


SPEC = CheckSpec(NAME, "pages mapped in a file VMA whose page->mapping is another file", run)
