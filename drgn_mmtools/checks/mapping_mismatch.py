"""mapping-mismatch: pages mapped in a file VMA that belong to another file.

The Lustre PCC hang (LU-14346): after a detach, a page faulted in through the
PCC copy stays in that file's page cache while the VMA's file is the Lustre
file, and ``->page_mkwrite`` retries forever.

Whether a foreign page is a bug depends on what the VMA is (see
:data:`RULES`).  A page-cache file (a regular file or block device whose
address_space has operations) maps its own pages only, at their own index;
so does any VMA whose ``->page_mkwrite`` will be asked about the page.  A
device or pseudo file without ``->page_mkwrite`` may lend pages it does not
own: udmabuf hands out a memfd's pages, relay hands out vmalloc pages with
no mapping at all.  Those are ``info`` records.  Page-cache slots of every
file involved whose page names another mapping or index are reported too.
"""

from __future__ import annotations

import drgn
from drgn import Object
from drgn.helpers.linux.mm import page_to_pfn, pfn_to_page
from drgn.helpers.linux.xarray import xa_load

from . import CheckSpec
from ..context import Context, MmMap
from ..findings import CappedFindings, CheckResult, one_line
from ..helpers.pgtable import Leaf
from ..helpers.probe import READ_ERRORS
from ..helpers.vma import VM_SHARED, VmaInfo
from ..helpers.xarray import xa_entries
from ..rules import Rule

NAME = "mapping-mismatch"
VM_WRITE = 0x2

RULES = (
    Rule("other-file", "error",
         "a page-cache VMA, or a shared writable VMA with ->page_mkwrite, maps a page whose "
         "page->mapping is another file's",
         fires=("pcc_retry:device", "pccfs_retry:data", "pccfs_retry:data-read-only"),
         legit=("control:udmabuf", "busy_writer")),
    Rule("truncated", "error",
         "a page-cache VMA, or a shared writable VMA with ->page_mkwrite, maps a page with no "
         "mapping that is not free: truncated while still mapped",
         fires=("pccfs_retry:trunc",), legit=("control:relay",)),
    Rule("index", "error",
         "a VMA maps a page of its own file whose page->index is not the index the VMA maps "
         "there (hugetlbfs: base-page or huge-page units)",
         fires=("pccfs_retry:shifted",), legit=("control:hugetlbfs",)),
    Rule("lent-page", "info",
         "a device or pseudo-file VMA without ->page_mkwrite maps a page of another file or "
         "of none: a driver lending pages (udmabuf, relay)",
         fires=("control:udmabuf", "control:relay"), legit=()),
    Rule("slot", "error",
         "a page-cache slot of a file seen above holds a page whose mapping or index "
         "disagrees with the slot",
         fires=("pccfs_retry:shifted-slot",), legit=("control:udmabuf", "control:hugetlbfs")),
)


def vma_evidence(vma: VmaInfo) -> dict:
    return {
        "vma_start": vma.start, "vma_end": vma.end, "vma_flags": vma.flags,
        "vma_file": vma.file, "vma_inode": vma.inode, "vma_page_cache": vma.page_cache,
        "vm_ops": str(vma.vm_ops) if vma.vm_ops.address else None,
        "fault_handler": str(vma.fault) if vma.fault.address else None,
        "page_mkwrite_handler": str(vma.page_mkwrite) if vma.page_mkwrite.address else None,
        "handler_module": vma.page_mkwrite.module or vma.fault.module or vma.vm_ops.module,
        # Where the handler names came from: "debuginfo" or "kallsyms".
        "symbol_source": vma.page_mkwrite.source or vma.fault.source or vma.vm_ops.source,
    }


def owns_its_pages(vma: VmaInfo) -> bool:
    """Whether every page ``vma`` maps must belong to its file: a page-cache
    file, or a shared writable VMA whose ->page_mkwrite will judge the page."""
    return vma.page_cache or (vma.flags & (VM_SHARED | VM_WRITE) == VM_SHARED | VM_WRITE
                              and vma.page_mkwrite.address != 0)


def mismatches(ctx: Context, mm: MmMap) -> list[tuple[Leaf, VmaInfo, str]]:
    """Leaves of one address space whose page disagrees with its VMA's file;
    computed once per address space and shared with fault-retry.

    :returns: (leaf, vma, rule) with rule "other-file", "truncated", "index"
        (errors) or "lent-page" (info).
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
        strict = owns_its_pages(vma)
        if page.mapping_kind == "none":
            # A page inside a free buddy block has no mapping either: that is
            # pagetable-sanity's "free page mapped", not a truncation.
            if not leaf.devmap and not ctx.page_sets.free_overlap(leaf.pfn):
                out.append((leaf, vma, "truncated" if strict else "lent-page"))
        elif page.mapping != vma.mapping:
            out.append((leaf, vma, "other-file" if strict else "lent-page"))
        elif not vma.index_matches(page.index + (page.pfn - page.head_pfn), leaf.vaddr, shift):
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
    o = ctx.owner(mapping)
    huge_order = ctx.memo.get(("huge_order", mapping), 0)
    for e in entries:
        if e.kind != "pointer":
            continue
        try:
            pfn = page_to_pfn(Object(prog, "struct page *", e.entry)).value_()
        except READ_ERRORS as err:
            result.unreadable.append(f"i_pages of mapping {mapping:#x}: vmemmap: {one_line(err)}")
            return
        page = ctx.page(pfn)
        if page is None:
            result.unreadable.append(f"struct page {e.entry:#x} in i_pages of mapping {mapping:#x}")
            continue
        span = 1 << max(page.order, e.order)
        if page.mapping == mapping and page.index <= e.index < page.index + span:
            continue
        if page.mapping == mapping and huge_order and page.index == e.index >> huge_order:
            continue  # hugetlbfs: page->index in huge pages, slots in base pages (6.7+)
        other = ctx.owner(page.mapping) if page.mapping else None
        result.add(
            "error",
            f"page-cache slot {e.index} of {o.path if o else hex(mapping)} holds a page of "
            f"{(other.path if other else hex(page.mapping)) if page.mapping else 'no mapping'}"
            f" at index {page.index}", rule="slot",
            pfn=pfn, slot_index=e.index, mapping_file=o.path if o else None,
            mapping_inode=o.inode if o else None, page_file=other.path if other else None,
            page_inode=other.inode if other else None, page_index=page.index,
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
        # hugetlbfs page caches are small (huge pages) and count their
        # indices differently: their slots are always checked.
        for v in mm.vmas:
            if v.huge_order and v.mapping:
                files_seen.add(v.mapping)
                ctx.memo[("huge_order", v.mapping)] = v.huge_order
        for leaf, vma, rule in found:
            page = ctx.page(leaf.pfn)
            assert page is not None
            ev = {"pid": pids[0], "pids": pids, "comm": comm, "address": leaf.vaddr,
                  "pfn": leaf.pfn, "writable": leaf.writable,
                  "expected_index": vma.file_index(leaf.vaddr, ctx.page_shift),
                  "page_index": page.index + (page.pfn - page.head_pfn),
                  **vma_evidence(vma)}
            files_seen.add(vma.mapping)
            po = ctx.owner(page.mapping) if page.mapping else None
            if page.mapping:
                files_seen.add(page.mapping)
                ev.update(page_mapping=page.mapping, page_file=po.path if po else None,
                          page_inode=po.inode if po else None,
                          page_fs=po.fstype if po else None,
                          in_page_cache=in_page_cache(ctx.prog, page.mapping, page.index,
                                                      page.head_pfn))
            else:
                ev.update(page_mapping=0, page_file=None, page_inode=None, page_fs=None,
                          in_page_cache=False)
            if rule == "lent-page":
                result.record("lent_page", rule, **ev)
                continue
            if rule == "truncated":
                summary = (f"pid {pids[0]} ({comm}) maps a truncated page (mapping NULL) "
                           f"at {leaf.vaddr:#x} in {vma.file}")
            elif rule == "other-file":
                summary = (f"pid {pids[0]} ({comm}) maps at {leaf.vaddr:#x} a page of "
                           f"{ev['page_file']} (ino {ev['page_inode']}) in a VMA of {vma.file} "
                           f"(vm_ops {vma.vm_ops})")
            else:
                summary = (f"pid {pids[0]} ({comm}) maps at {leaf.vaddr:#x} index "
                           f"{ev['page_index']} of {vma.file} where the VMA expects index "
                           f"{ev['expected_index']}")
            capped.add(rule, summary, **ev)
        capped.close()
    for mapping in sorted(files_seen):
        check_slots(ctx, mapping, result)
    result.unreadable += ctx.task_problems
    return result


SPEC = CheckSpec(NAME, "pages mapped in a file VMA whose page->mapping is another file", run,
                 RULES)
