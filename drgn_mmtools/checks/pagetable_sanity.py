"""pagetable-sanity: user page-table entries that point where they must not.

Per level, as the LegoOS report and "Bad page map" splats show them:

- a present leaf outside a PFN-mapped VMA must point at RAM with struct
  pages, at a page that is not free (inside a buddy block), not slab, not a
  page-table page and not at refcount zero, and lie inside a VMA;
- a present entry must not have reserved address bits set (bits above the
  CPU's physical address width);
- a non-present, non-none PTE or PMD must be a valid swap entry (an active
  swap device, a slot below its size), or a special one (migration,
  hwpoison, device) naming a pfn with a struct page; a PMD holds migration
  entries only;
- an upper-level entry must be present, or none, and a table pointer must
  point at RAM that is neither free nor slab.  A bad one hides everything
  below it, so it is reported as "the LEVEL entry for ADDRESS is invalid".

Every test is a set or interval lookup in the shared mem_map scan
(:attr:`Session.page_sets`): no struct page is decoded per mapped page,
except for tail pages, whose slab state and refcount live in their head.
"""

from __future__ import annotations

import os
from typing import Iterator

from .base import Check
from ..analysis.session import Session, leaves_by_vma
from ..report.findings import CappedFindings, CheckResult
from ..kernel.pgtable import Leaf, LeafRun, iter_leaves, page_table_format
from ..kernel.swap_entry import decode_swap, swap_types
from ..kernel.tasks import mmap_lock_held
from .rules import Rule

NAME = "pagetable-sanity"

RULES = (
    Rule("outside-vma", "error", "a present leaf entry where no VMA is (the VMA walk being "
         "complete, and nobody holding the mmap_lock)", fires=("ptcorrupt:pte-outside",), legit=("any task",)),
    Rule("in-flux", "info", "present entries outside any VMA while the address space's "
         "mmap_lock is held (munmap takes VMAs out before it zaps their entries), or in the "
         "reading process itself on a live kernel",
         fires=("control:busy, when a dump catches it in munmap",), transient=True),
    Rule("outside-ram", "error", "a present leaf in a VMA that is not PFN-mapped points at a "
         "pfn without a struct page", fires=("ptcorrupt:pte-beyond",),
         legit=("dax_lock (pmem pages)",)),
    Rule("free-page", "error", "a present leaf points into a free buddy block",
         fires=("ptcorrupt:pte-free",), legit=("any task",)),
    Rule("slab-page", "error", "a present leaf points at a slab page",
         fires=("ptcorrupt:pte-slab",), legit=("any task",)),
    Rule("page-table-page", "error", "a present leaf points at a page-table page (PageTable)",
         fires=("ptcorrupt:pte-pagetable",), legit=("any task",)),
    Rule("refcount-zero", "error", "a present leaf points at a page with refcount 0 that is "
         "neither free nor ZONE_DEVICE", fires=("ptcorrupt:pte-refcount0",),
         legit=("dax_lock (pmem pages)",)),
    Rule("reserved-bits", "error", "a present entry has address bits set above the CPU's "
         "physical address width (arm64 with 48-bit PAs: bits 48-50)",
         fires=("ptcorrupt:pte-reserved",), legit=("any task",)),
    Rule("bad-swap-entry", "error", "a non-present, non-none PTE or PMD that is no valid swap "
         "entry (no such swap device, or a slot past its end), no special entry naming a pfn "
         "with a struct page, or a non-migration entry in a PMD",
         fires=("ptcorrupt:pte-garbage", "ptcorrupt:pte-swap-nodev", "ptcorrupt:pmd-swap"),
         legit=("control:poison-isolated", "hwpoison:tmpfs")),
    Rule("bad-table-entry", "error", "an upper-level entry that is not present but not none, "
         "a table pointer outside RAM or to a free or slab page, a cycle, or a large-page bit "
         "where the level has none: everything below it is hidden",
         fires=("ptcorrupt:pmd-beyond",), legit=("any task",)),
)


def problem(ctx: Session, pfn: int, pages: int, devmap: bool) -> tuple[str, str] | None:
    """(rule, what) is wrong with mapping ``pages`` pages from ``pfn``, or None."""
    sets = ctx.page_sets
    if pages == 1 and pfn not in sets.flagged and not sets.is_free(pfn):
        return None  # the common case, in O(1)
    if sets.free_overlap(pfn, pages):
        return "free-page", "a free (buddy) page"
    if sets.table and sets.has(sets.table, pfn):
        return "page-table-page", "a page-table page"
    if sets.has(sets.tail, pfn):
        head = ctx.page(pfn)
        if head is None:
            return None  # counted as unreadable by the caller
        if head.slab:
            return "slab-page", "a slab page"
        if head.refcount == 0 and not devmap:
            return "refcount-zero", "a page with refcount 0"
        return None
    if sets.has(sets.slab, pfn):
        return "slab-page", "a slab page"
    if not devmap and sets.has(sets.refcount0, pfn):
        return "refcount-zero", "a page with refcount 0"
    return None


def still_wrong(ctx: Session, rule: str, pfn: int) -> bool:
    """Live: whether a fresh read of pfn's struct page still shows ``rule``'s
    problem (the mem_map scan is seconds older than the page-table walk)."""
    from ..kernel.page import page_info
    from ..kernel.probe import READ_ERRORS

    if rule in ("outside-ram", "outside-vma"):
        return True  # nothing to read: the second walk confirmed the entry
    try:
        page = page_info(ctx.prog, pfn)
        head = page_info(ctx.prog, page.head_pfn) if page.is_tail else page
    except READ_ERRORS:
        return False
    if rule in ("free-page", "refcount-zero"):
        return head.refcount == 0
    if rule == "slab-page":
        return head.slab
    if rule == "page-table-page":
        return page.table
    return True


def confirmed(ctx: Session, mm, found: list[tuple[str, str, dict]]
              ) -> tuple[list[tuple[str, str, dict]], bool]:
    """Live: the findings of one address space that a second walk of its VMAs
    and page tables, and a fresh read of each struct page, still show.  A
    task that maps and unmaps memory changes both under the reader.

    :returns: the confirmed findings, and whether the mmap_lock was seen
        held just before or after the second walk (munmap in progress).
    """
    if not ctx.options.live or not found:
        return found, False
    held = bool(mmap_lock_held(mm.users.mm))
    fresh = ctx.walk_mm(mm.users)
    held = held or bool(mmap_lock_held(mm.users.mm))
    leaves = {leaf.vaddr: leaf for leaf in fresh.leaves}
    entries = {(c.vaddr, c.level, c.value) for c in fresh.corrupt}
    entries |= set(fresh.nonpresent)
    out = []
    for rule, summary, ev in found:
        if "pfn" not in ev or rule in ("reserved-bits", "bad-table-entry", "bad-swap-entry"):
            if (ev["address"], ev["level"], ev["entry"]) in entries:
                out.append((rule, summary, ev))
            continue
        leaf = leaves.get(ev["address"])
        if leaf is None or leaf.pfn != ev["pfn"]:
            continue
        if rule == "outside-vma" and fresh.vmas.at(leaf.vaddr) is not None:
            continue
        if still_wrong(ctx, rule, leaf.pfn):
            out.append((rule, summary, ev))
    return out, held


def _unplain_leaves(ctx: Session, sets, items: list, shift: int) -> Iterator[Leaf]:
    """The leaves of ``items`` that need a closer look: all of them, except
    runs whose pages all are RAM with struct pages, in no page set and
    outside free blocks (tested a table at a time)."""
    ram = ctx.pfn_ranges
    for item in items:
        if type(item) is LeafRun:
            if ram is not None and sets.none_listed(item.phys, shift, ram):
                continue
            yield from item.leaves()
        else:
            yield item


def _corrupt_rule(why: str) -> str:
    return "reserved-bits" if why.startswith("reserved address bits") else "bad-table-entry"


def run(ctx: Session, result: CheckResult | None = None) -> CheckResult:
    result = result or CheckResult(NAME)
    if ctx.pfn_ranges is None:
        result.unreadable.append("mem_section: which pfns are RAM is unknown; "
                                 "'outside RAM' is not checked")
    sets = ctx.page_sets
    result.unreadable += sets.scan.describe_unreadable()
    fmt = page_table_format(ctx.prog)
    shift = ctx.page_shift
    types = swap_types(ctx.prog)
    for mm in ctx.mm_maps:
        result.unreadable.extend(mm.unreadable)
        pid, comm = mm.users.pids[0], mm.users.comms[0]
        capped = CappedFindings(result, pid, comm)
        found: list[tuple[str, str, dict]] = []
        for c in mm.corrupt:
            name = fmt.level_name(c.level)
            found.append((_corrupt_rule(c.why), f"pid {pid} ({comm}): the {name} entry for "
                          f"{c.vaddr:#x} is invalid: {c.why}",
                          dict(pid=pid, comm=comm, address=c.vaddr, level=c.level,
                               level_name=name, entry=c.value, why=c.why)))
        for va, level, value in mm.nonpresent:
            readings = decode_swap(fmt.arch, value)
            whys = [types.problem(r, level, ctx.pfn_valid) for r in readings]
            if any(w is None for w in whys):
                continue
            name = fmt.level_name(level)
            found.append(("bad-swap-entry", f"pid {pid} ({comm}): the {name} entry for {va:#x} "
                          f"is invalid: {whys[0]}",
                          dict(pid=pid, comm=comm, address=va, level=level, level_name=name,
                               entry=value, why=whys[0], swap_type=readings[0].type,
                               swap_offset=readings[0].offset)))

        def evidence(leaf, vma) -> dict:
            level = (leaf.size >> shift).bit_length() - 1
            level = level // fmt.bits_per_level if level else 0
            return {"pid": pid, "pids": mm.users.pids, "comm": comm, "address": leaf.vaddr,
                    "pfn": leaf.pfn, "entry": leaf.entry, "size": leaf.size, "level": level,
                    "level_name": fmt.level_name(level), "vma_file": vma.file if vma else None}

        ram = (0, 0)  # the last valid PFN range a leaf fell in
        flagged, is_free = sets.flagged, sets.is_free
        for vma, items in leaves_by_vma(mm):
            if vma is None:
                # With the VMA walk broken off, "outside any VMA" is unknown.
                if mm.vmas_complete:
                    found += [("outside-vma", f"pid {pid} ({comm}) has a present page-table "
                               f"entry at {leaf.vaddr:#x} outside any VMA", evidence(leaf, vma))
                              for leaf in iter_leaves(items)]
                continue
            if vma.special:
                continue
            for leaf in _unplain_leaves(ctx, sets, items, shift):
                pfn = leaf.pfn
                if (ram[0] <= pfn < ram[1] and leaf.size >> shift == 1 and pfn not in flagged
                        and not is_free(pfn)) or leaf.special:
                    continue  # a page of RAM in no page set, or no struct page semantics
                if not ram[0] <= pfn < ram[1]:
                    if ctx.pfn_valid(pfn) is False:
                        found.append(("outside-ram", f"pid {pid} ({comm}) maps pfn {pfn:#x} "
                                      f"at {leaf.vaddr:#x}, outside RAM with struct pages",
                                      evidence(leaf, vma)))
                        continue
                    ram = ctx.pfn_range(pfn) or (0, 0)
                bad = problem(ctx, pfn, leaf.size >> shift, leaf.devmap)
                if bad:
                    rule, what = bad
                    page = ctx.page(pfn)
                    extra = ({"refcount": page.refcount, "mapcount": page.mapcount,
                              "flags": list(page.flag_names)} if page else {})
                    found.append((rule, f"pid {pid} ({comm}) maps {what} at {leaf.vaddr:#x} "
                                  f"(pfn {pfn:#x})", {**evidence(leaf, vma), **extra}))
        kept, held = confirmed(ctx, mm, found)
        # Why entries outside VMAs may be a passing state: "lock" (munmap in
        # progress), or "reader" (this very process, live on /proc/kcore,
        # maps and unmaps as it reads).
        flux = "lock" if held else ("reader" if ctx.spec is not None and ctx.spec.live
                                    and os.getpid() in mm.users.pids else None)
        for rule, summary, ev in kept:
            if rule == "outside-vma":
                if flux is None and mmap_lock_held(mm.users.mm):
                    flux = "lock"
                if flux:
                    result.record("entry_outside_vma", "in-flux",
                                  mmap_lock_held=flux == "lock", **ev)
                    continue
            capped.add(rule, summary, **ev)
        capped.close()
        for line in ctx.unreadable_pages(mm):
            result.unreadable.append(f"pid {pid}: {line}")
    result.unreadable += ctx.task_problems
    return result


CHECK = Check(
    name=NAME,
    description="page-table entries to outside RAM, free / slab / table / refcount-0 pages, "
                "bad swap entries, reserved bits and invalid upper levels",
    run=run,
    rules=RULES,
    order=50,
)
