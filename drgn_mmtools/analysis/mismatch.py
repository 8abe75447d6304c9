"""Pages mapped where they do not belong: the analysis behind mapping-mismatch,
shared by fault-retry (refused pages) and hwpoison-pagecache (page-cache
membership).

A page-cache file (a regular file or block device whose address_space has
operations) maps its own pages only, at their own index; so does any VMA
whose ``->page_mkwrite`` will be asked about the page.  A device or pseudo
file without ``->page_mkwrite`` may lend pages it does not own (udmabuf,
relay).  All kernels; VMAs and pages come from :mod:`..kernel`.
"""

from __future__ import annotations

import drgn
from drgn import Object
from drgn.helpers.linux.mm import pfn_to_page
from drgn.helpers.linux.xarray import xa_load

from ..kernel.page import page_mapping_index
from ..kernel.pgtable import Leaf, iter_leaves
from ..kernel.vma import VM_SHARED, VmaInfo
from .session import MmMap, Session, leaves_by_vma

__all__ = ("VM_WRITE", "in_page_cache", "mismatches", "owns_its_pages", "vma_evidence")

VM_WRITE = 0x2


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


def mismatches(ctx: Session, mm: MmMap) -> list[tuple[Leaf, VmaInfo, str]]:
    """Leaves of one address space whose page disagrees with its VMA's file;
    computed once per address space and shared with fault-retry.

    :returns: (leaf, vma, rule) with rule "other-file", "truncated", "index"
        (errors) or "lent-page" (info).
    """
    # Memoized for the shared walks of ctx.mm_maps only; a fresh walk (live
    # re-reads) is judged afresh.
    shared = ctx.is_shared_walk(mm)
    if shared and id(mm) in ctx.mismatch_cache:
        return ctx.mismatch_cache[id(mm)]
    out = []
    shift = ctx.page_shift
    for vma, items in leaves_by_vma(mm):
        if vma is None or not vma.mapping or vma.special:
            continue  # anonymous, PFN-mapped, or outside VMAs: not this analysis
        for leaf in iter_leaves(items):
            if leaf.special:
                continue
            verdict = _judge(ctx, leaf, vma, shift)
            if verdict:
                out.append((leaf, vma, verdict))
    if shared:
        ctx.mismatch_cache[id(mm)] = out
    return out


def _judge(ctx: Session, leaf: Leaf, vma: VmaInfo, shift: int) -> str | None:
    """The rule a file-backed leaf breaks, or None."""
    own = page_mapping_index(ctx.prog, leaf.pfn)
    if (own is not None and not own[2] and own[0] == vma.mapping
            and vma.index_matches(own[1], leaf.vaddr, shift)):
        return None  # the page of this file at this index: one read, nothing decoded
    page = ctx.page(leaf.pfn)
    if page is None or page.buddy or page.slab:
        return None  # unreadable, free-block head or slab: pagetable-sanity's business
    if page.mapping_kind in ("anon", "ksm", "movable"):
        return None  # COW copies in private file mappings, or non-LRU movable
    strict = owns_its_pages(vma)
    if page.mapping_kind == "none":
        # A page inside a free buddy block has no mapping either: that is
        # pagetable-sanity's "free page mapped", not a truncation.
        if not leaf.devmap and not ctx.page_sets.free_overlap(leaf.pfn):
            return "truncated" if strict else "lent-page"
        return None
    if page.mapping != vma.mapping:
        return "other-file" if strict else "lent-page"
    if not vma.index_matches(page.index + (page.pfn - page.head_pfn), leaf.vaddr, shift):
        return "index"
    return None


def in_page_cache(prog: drgn.Program, mapping: int, index: int, head_pfn: int) -> bool | None:
    """Whether mapping's i_pages slot at index holds the page; None if unreadable."""
    try:
        m = Object(prog, "struct address_space *", mapping)
        slot = xa_load(m.i_pages.address_of_(), index).value_()
        return slot == pfn_to_page(prog, head_pfn).value_()
    except drgn.FaultError:
        return None
