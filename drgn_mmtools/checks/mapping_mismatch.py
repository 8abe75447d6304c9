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
from drgn.helpers.linux.mm import page_to_pfn

from .base import Check
from ..analysis.mismatch import in_page_cache, mismatches, vma_evidence
from ..analysis.session import Session
from ..report.findings import CappedFindings, CheckResult
from ..kernel.probe import one_line
from ..kernel.probe import READ_ERRORS
from ..kernel.xarray import xa_entries
from .rules import Rule

NAME = "mapping-mismatch"

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


def check_slots(ctx: Session, mapping: int, result: CheckResult) -> None:
    """Report page-cache slots of ``mapping`` whose page names another mapping or index."""
    prog = ctx.prog
    m = Object(prog, "struct address_space *", mapping)
    try:
        entries = list(xa_entries(m.i_pages.address_of_()))
    except drgn.FaultError as e:
        result.unreadable.append(f"i_pages of mapping {mapping:#x}: {e}")
        return
    o = ctx.owner(mapping)
    huge_order = ctx.huge_orders.get(mapping, 0)
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


def run(ctx: Session, result: CheckResult | None = None) -> CheckResult:
    result = result or CheckResult(NAME)
    files_seen: set[int] = set()
    for mm in ctx.mm_maps:
        result.unreadable.extend(mm.unreadable)
        pids, comm = mm.users.pids, mm.users.comms[0]
        found = mismatches(ctx, mm)
        for line in ctx.unreadable_pages(mm):
            result.unreadable.append(f"pid {pids[0]}: {line}")
        capped = CappedFindings(result, pids[0], comm)
        # hugetlbfs page caches are small (huge pages) and count their
        # indices differently: their slots are always checked.
        for v in mm.vmas:
            if v.huge_order and v.mapping:
                files_seen.add(v.mapping)
                ctx.huge_orders[v.mapping] = v.huge_order
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


CHECK = Check(
    name=NAME,
    description="pages mapped in a file VMA whose page->mapping is another file",
    run=run,
    rules=RULES,
    order=10,
)
