"""One inspection session: the program, and lazily computed views of it that
checks and commands share.

Walking every task's page tables and scanning mem_map are the costly parts
of the checks; the :class:`Session` walks each address space once and scans
mem_map once (:attr:`Session.page_sets`), and hands the results to every
check and command.  Every cache is a typed attribute; a live session drops
them all with :meth:`Session.refresh`.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Mapping, NamedTuple, Sequence

import drgn

from ..dumpfile import dump_level, read_header
from ..kernel.dumplevel import explain_line
from ..kernel.probe import one_line
from ..kernel.cpu_notes import qemu_cpu_states
from ..kernel.fs import MappingOwner, mapping_owner
from ..kernel.memmap import (MemmapScan, PendingScan, scan_pages, scan_pages_parallel,
                             start_scan_parallel, uncovered_zones, valid_page_ranges)
from ..kernel.pageflags import ByteTest
from .pagesets import PageSets, scan_predicates
from ..kernel.page import PageInfo, page_info
from ..kernel.pgtable import (Corrupt, Leaf, LeafRun, PageTableWalk, iter_leaves,
                              page_table_format, reserved_address_bits, walk_user_page_runs)
from ..kernel.swap_entry import decode_swap, swap_types
from ..kernel.tasks import MmUsers, user_mms
from ..kernel.vma import VmaInfo, VmaMap, mm_vmas
from ..target import TargetSpec

#: From this many struct pages (4 GiB of 4 KiB pages) the scan of a
#: compressed dump is split across forked workers, which start in about
#: 20 ms (bench/memmap_scan.py: at 4 Mi pages, 0.68 s in one process, 0.43 s
#: in two).
PARALLEL_MIN_PAGES = 1 << 20


class MmMap(NamedTuple):
    """One address space: its threads, VMAs and present leaf mappings."""

    users: MmUsers
    vmas: VmaMap
    #: the present mappings in address order: a :class:`LeafRun` per
    #: page-level table of plain entries, a :class:`Leaf` for anything else
    mapped: list[Leaf | LeafRun]
    unreadable: list[str]
    vmas_complete: bool  #: False when the VMA walk broke off: "no VMA here" is unknown
    corrupt: list[Corrupt]  #: page-table entries the walk refused to follow
    #: (vaddr, level, value) of non-present, non-none PTEs and PMDs
    nonpresent: list[tuple[int, int, int]]

    @property
    def leaves(self) -> Iterator[Leaf]:
        """Every present leaf, one :class:`Leaf` each (costly on a big
        address space: prefer :attr:`mapped`)."""
        return iter_leaves(self.mapped)

    def resident_pages(self, page_shift: int) -> int:
        """Base pages mapped."""
        return sum(item.present if type(item) is LeafRun else item.size >> page_shift
                   for item in self.mapped)


def leaves_by_vma(mm: MmMap) -> list[tuple[VmaInfo | None, list[Leaf | LeafRun]]]:
    """The present mappings of ``mm`` grouped by the VMA that holds them, in
    address order, runs cut at VMA bounds; mappings outside every VMA come in
    groups with None.  A :class:`Leaf` belongs where its first address is.
    A few searches per VMA, nothing per mapped page.  Any kernel."""
    items = mm.mapped
    starts = [item.vaddr for item in items]
    out: list[tuple[VmaInfo | None, list[Leaf | LeafRun]]] = []

    def add(vma: VmaInfo | None, lo: int, hi: int) -> None:
        i = max(0, bisect.bisect_right(starts, lo) - 1)
        j = bisect.bisect_left(starts, hi, i)
        part: list[Leaf | LeafRun] = []
        for item in items[i:j]:
            if type(item) is LeafRun:
                cut = item.part(lo, hi)
                if cut is not None:
                    part.append(cut)
            elif item.vaddr >= lo:
                part.append(item)
        if part:
            out.append((vma, part))

    if not items:
        return out
    done = 0
    for vma in mm.vmas:
        if vma.end <= done:
            continue  # overlaps one before it: only a corrupted tree does that
        if vma.start > done:
            add(None, done, vma.start)
        add(vma, max(vma.start, done), vma.end)
        done = vma.end
    add(None, done, 1 << 64)
    return out


@dataclass
class Options:
    """Knobs of a run."""

    live: bool = False
    sample_seconds: float = 0.5  #: fault-retry: interval between live samples
    samples: int = 4  #: fault-retry: live samples taken
    min_fault_rate: float = 50.0  #: fault-retry: faults/s that count as a loop
    workers: int = 0  #: mem_map scan processes for compressed dumps (0: one per CPU)

    def problem(self) -> str | None:
        """Why these options cannot work (one line), or None."""
        if not 0 < self.sample_seconds <= 3600:
            return (f"--interval {self.sample_seconds}: give seconds between samples, more "
                    f"than 0 and at most 3600")
        if not 2 <= self.samples <= 1000:
            return f"--samples {self.samples}: give 2 to 1000 samples"
        if not self.min_fault_rate > 0:
            return f"--min-fault-rate {self.min_fault_rate}: give faults per second above 0"
        return None


class Session:
    """The program under inspection plus caches shared by checks and commands."""

    _CACHED = ("page_sets", "mm_maps", "pfn_ranges", "mm_by_pid", "qemu_cpu_states",
               "_shared_walks")

    def __init__(self, prog: drgn.Program, options: Options | None = None,
                 spec: TargetSpec | None = None) -> None:
        self.prog = prog
        self.options = options or Options()
        self.spec = spec  #: how prog was opened, for worker processes
        self.refresh()

    def refresh(self) -> None:
        """Forget everything read so far (a live target has moved on)."""
        for name in self._CACHED:
            self.__dict__.pop(name, None)
        pending = getattr(self, "_pending", None)
        if pending is not None:
            pending.cancel()
        self._pending: PendingScan | None = None  #: a scan started by start_scan
        self.task_problems: list[str] = []  #: what the task list walk could not read
        self._pages: dict[int, PageInfo | None] = {}
        self._owners: dict[int, MappingOwner | None] = {}
        #: mapping-mismatch's verdicts per shared address-space walk (by id)
        self.mismatch_cache: dict[int, list] = {}
        #: hugetlbfs mappings seen in VMAs: address_space -> huge page order
        self.huge_orders: dict[int, int] = {}

    @cached_property
    def dump_level(self) -> int | None:
        """makedumpfile's dump level of a kdump-compressed target, else None."""
        if self.spec is None or self.spec.core is None:
            return None
        return dump_level(self.spec.core)

    def explain(self, line: str) -> str:
        """An "unreadable" line, with the dump level that left the page out
        and the level that would keep it, when filtering is why."""
        if not self.dump_level:
            return line
        return explain_line(self.prog, self.dump_level, line)

    @cached_property
    def _shared_walks(self) -> set[int]:
        return {id(m) for m in self.mm_maps}

    def is_shared_walk(self, mm: MmMap) -> bool:
        """Whether ``mm`` is one of :attr:`mm_maps` (not a fresh live re-walk)."""
        return id(mm) in self._shared_walks

    @cached_property
    def mm_by_pid(self) -> dict[int, MmMap]:
        """The shared walk of each task's address space, by pid."""
        return {p: mm for mm in self.mm_maps for p in mm.users.pids}

    @cached_property
    def qemu_cpu_states(self) -> list:
        """CPU registers from a QEMU-written dump's notes (x86_64), else []."""
        if self.spec is None or self.spec.core is None:
            return []
        return qemu_cpu_states(self.spec.core)

    def start_scan(self) -> None:
        """Start the shared mem_map scan now, in worker processes, when it
        runs in them (see :meth:`scan_pages`), and return at once: what does
        not need it (the page-table walks, first of all) overlaps it, and
        :attr:`page_sets` collects it.  Otherwise nothing happens here."""
        if "page_sets" in self.__dict__ or self._pending is not None:
            return
        workers = self._scan_workers()
        if not workers:
            return
        preds, capture, outside = scan_predicates(self.prog)
        try:
            self._pending = start_scan_parallel(self.prog, self.spec, preds, workers, capture,
                                                outside)
        except drgn.FaultError:
            return  # mem_section unreadable: page_sets says so

    @cached_property
    def page_sets(self) -> PageSets:
        """Poisoned, free, slab, refcount-0 and tail pages, from one mem_map scan
        shared by every check."""
        preds, capture, outside = scan_predicates(self.prog)
        pending, self._pending = self._pending, None
        try:
            scan = (pending.result() if pending is not None
                    else self.scan_pages(preds, capture, outside))
        except drgn.FaultError as e:
            # mem_section or vmemmap itself is unreadable: nothing was scanned.
            scan = MemmapScan.empty(preds, capture,
                                    [f"mem_map (mem_section, vmemmap): {one_line(e)}"])
        else:
            scan.problems += uncovered_zones(self.prog, self.pfn_ranges or [])
        return PageSets.from_scan(scan)

    def scan_pages(self, preds: Mapping[str, Sequence[ByteTest]],
                   capture: Mapping[str, tuple[int, int]] | None = None,
                   outside: Mapping[str, str] | None = None) -> MemmapScan:
        """A mem_map scan; split across processes for big kdump-compressed dumps,
        where zlib decompression bounds a single process."""
        workers = self._scan_workers()
        if workers:
            return scan_pages_parallel(self.prog, self.spec, preds, workers, capture, outside)
        return scan_pages(self.prog, preds, capture=capture, outside=outside)

    def _scan_workers(self) -> int:
        """Worker processes for a mem_map scan: one per CPU (or the option)
        for a kdump-compressed dump of at least :data:`PARALLEL_MIN_PAGES`,
        else 0 (the scan runs here)."""
        workers = self.options.workers or os.cpu_count() or 1
        pages = sum(e - s for s, e in self.pfn_ranges or [])
        spec = self.spec
        if (workers > 1 and pages >= PARALLEL_MIN_PAGES and spec is not None
                and spec.core is not None and read_header(spec.core).format == "kdump"):
            return workers
        return 0

    @property
    def page_shift(self) -> int:
        return page_table_format(self.prog).page_shift

    @cached_property
    def mm_maps(self) -> list[MmMap]:
        """Every user address space, walked once.  What the task list walk
        could not read is in :attr:`task_problems`.  The walks need no
        mem_map scan until the end, where the tables they followed are
        judged (see :meth:`walk_mm`): a scan started with
        :meth:`start_scan` runs meanwhile."""
        walks = [self._walk(users) for users in user_mms(self.prog, self.task_problems)]
        return [self._judged(mm, walk) for mm, walk in walks]

    def walk_mm(self, users: MmUsers) -> MmMap:
        """Walk one address space now: its VMAs and page tables.  Live, a
        fresh walk sees what the cached :attr:`mm_maps` saw seconds ago.
        A table pointer to a page outside RAM is refused as it is met; one
        to a free or slab page (which needs the mem_map scan) once the walk
        is over, and what the walk read below it is dropped: the result is
        the walk that never followed it."""
        return self._judged(*self._walk(users))

    def _walk(self, users: MmUsers) -> tuple[MmMap, PageTableWalk]:
        """The walk, with the page tables it could not read and the table
        pointers it followed still in the :class:`PageTableWalk`."""
        unreadable: list[str] = []
        pid = users.pids[0]
        vmas, problem = mm_vmas(users.mm)
        if problem:
            unreadable.append(f"VMAs of pid {pid}: {problem}")
        walk = PageTableWalk(reserved_mask=reserved_address_bits(self.prog),
                             table_problem=self._table_outside_ram, followed=[])
        leaves: list[Leaf | LeafRun] = []
        try:
            leaves.extend(walk_user_page_runs(self.prog, users.mm.pgd.value_(), walk))
        except drgn.FaultError as e:
            unreadable.append(f"page tables of pid {pid}: {e}")
        return MmMap(users, vmas, leaves, unreadable, problem is None, walk.corrupt,
                     walk.nonpresent), walk

    def _judged(self, mm: MmMap, walk: PageTableWalk) -> MmMap:
        """``mm`` less what lies below the table pointers the walk followed
        to free or slab pages, which become :class:`Corrupt` entries; with
        the page tables it could not read."""
        fmt = page_table_format(self.prog)
        bad: list[tuple[int, int, Corrupt]] = []
        for va, level, value, pfn in sorted(walk.followed or (), key=lambda f: -f[1]):
            if any(lo <= va < hi for lo, hi, _ in bad):
                continue  # below a pointer already refused
            why = self._table_in_bad_page(pfn)
            if why:
                bad.append((va, va + (1 << fmt.shift(level)),
                            Corrupt(va, level, value, f"table pointer to {why}")))

        def kept(va: int) -> bool:
            return not any(lo <= va < hi for lo, hi, _ in bad)

        if bad:
            mm.mapped[:] = [item for item in mm.mapped if kept(item.vaddr)]
            mm.nonpresent[:] = [n for n in mm.nonpresent if kept(n[0])]
            mm.corrupt[:] = sorted([c for c in mm.corrupt if kept(c.vaddr)]
                                   + [c for _, _, c in bad], key=lambda c: (c.vaddr, -c.level))
        pid = mm.users.pids[0]
        mm.unreadable.extend(f"page table at phys {phys:#x} (address {va:#x}) of pid {pid}"
                             for va, phys in walk.unreadable if kept(va))
        return mm

    def table_problem(self, pfn: int) -> str | None:
        """Why a page-table pointer to ``pfn`` cannot be right, or None: a
        table lies in RAM with a struct page, and is neither free nor slab."""
        return self._table_outside_ram(pfn) or self._table_in_bad_page(pfn)

    def _table_outside_ram(self, pfn: int) -> str | None:
        if self.pfn_valid(pfn) is False:
            return f"pfn {pfn:#x}, outside RAM with struct pages"
        return None

    def _table_in_bad_page(self, pfn: int) -> str | None:
        sets = self.page_sets
        if sets.free_overlap(pfn):
            return f"pfn {pfn:#x}, a free (buddy) page"
        if sets.has(sets.slab, pfn):
            return f"pfn {pfn:#x}, a slab page"
        return None

    def page(self, pfn: int) -> PageInfo | None:
        """Decoded struct page of ``pfn``, None when unreadable; cached."""
        if pfn not in self._pages:
            try:
                self._pages[pfn] = page_info(self.prog, pfn)
            except (drgn.FaultError, ValueError, LookupError):
                self._pages[pfn] = None
        return self._pages[pfn]

    def owner(self, mapping: int) -> MappingOwner | None:
        """The inode behind ``struct address_space *`` mapping, None when
        unreadable; cached for every check."""
        if mapping not in self._owners:
            try:
                self._owners[mapping] = mapping_owner(self.prog, mapping)
            except drgn.FaultError:
                self._owners[mapping] = None
        return self._owners[mapping]

    def unreadable_pages(self, mm: MmMap) -> list[str]:
        """One line on the struct pages mapped in ``mm`` that could not be read."""
        failed = {p for p, page in self._pages.items() if page is None}  # the few failed reads
        if not failed:
            return []
        shift = self.page_shift
        phys = {p << shift for p in failed}
        mapped: set[int] = set()
        for item in mm.mapped:
            if type(item) is not LeafRun:
                mapped.add(item.pfn)
            elif not phys.isdisjoint(item.phys):
                mapped.update(leaf.pfn for leaf in item.leaves())
        bad = sorted(failed & mapped)
        if not bad:
            return []
        return [f"struct pages of {len(bad)} mapped pfns (first {bad[0]:#x}, last {bad[-1]:#x})"]

    @cached_property
    def pfn_ranges(self) -> list[tuple[int, int]] | None:
        """Valid PFN ranges with struct pages, sorted; None if mem_section is unreadable."""
        try:
            return sorted((s, e) for s, e, _ in valid_page_ranges(self.prog))
        except drgn.FaultError:
            return None

    def pfn_range(self, pfn: int) -> tuple[int, int] | None:
        """The valid PFN range ``[start, end)`` that holds pfn, or None."""
        ranges = self.pfn_ranges
        if ranges is None:
            return None
        i = bisect.bisect_right(ranges, (pfn, float("inf"))) - 1
        return ranges[i] if i >= 0 and ranges[i][0] <= pfn < ranges[i][1] else None

    def pfn_valid(self, pfn: int) -> bool | None:
        """Whether pfn has a struct page; None when that cannot be known."""
        if self.pfn_ranges is None:
            return None
        return self.pfn_range(pfn) is not None

    def swap_refs(self, pfns: set[int]) -> dict[int, list[tuple[MmMap, int, int, int]]]:
        """Non-present entries that name each of ``pfns`` as a special swap
        entry (hwpoison, migration, device): ``(mm, vaddr, level, type)``."""
        out: dict[int, list[tuple[MmMap, int, int, int]]] = {p: [] for p in pfns}
        if not pfns:
            return out
        arch = page_table_format(self.prog).arch
        types = swap_types(self.prog)
        for mm in self.mm_maps:
            for va, level, value in mm.nonpresent:
                for entry in decode_swap(arch, value):
                    if entry.offset in out and types.is_special(entry.type):
                        out[entry.offset].append((mm, va, level, entry.type))
                        break
        return out

    def mappers(self, pfns: set[int]) -> dict[int, list[tuple[MmMap, Leaf]]]:
        """Who maps each of ``pfns``: the address spaces and leaves."""
        out: dict[int, list[tuple[MmMap, Leaf]]] = {p: [] for p in pfns}
        if not pfns:
            return out
        shift = self.page_shift
        phys = {p << shift for p in pfns}
        for mm in self.mm_maps:
            for item in mm.mapped:
                if type(item) is LeafRun:
                    if phys.isdisjoint(item.phys):
                        continue  # the whole table, in one pass over its addresses
                    leaves = [leaf for leaf in item.leaves() if leaf.pfn in out]
                else:
                    leaves = [item]
                for leaf in leaves:
                    n = leaf.size >> shift
                    if n == 1:
                        if leaf.pfn in out:
                            out[leaf.pfn].append((mm, leaf))
                    else:
                        for p in pfns:
                            if leaf.pfn <= p < leaf.pfn + n:
                                out[p].append((mm, leaf))
        return out
