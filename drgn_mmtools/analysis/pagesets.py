"""The page sets several checks need, from one scan of mem_map.

One pass finds hardware-poisoned pages, first-tail pages with
PG_has_hwpoisoned, free buddy blocks (with their order, read from
``page->private`` in the same pass), slab pages, page-table pages, pages
with a zero refcount and tail pages.  Checks then test PFNs against these sorted arrays and
intervals instead of decoding a struct page per mapped page.  The arrays are
C storage (``array('Q')``), not Python sets: most free pages have a zero
refcount, and a big machine has millions of them.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from array import array
from dataclasses import dataclass

import drgn

from ..kernel.memmap import MemmapScan, flag_test
from ..kernel.page import page_layout
from ..kernel.pageflags import ByteTest, page_type_tests, pageflag_bit
from ..kernel.probe import member_offsets

__all__ = ("PageSets", "scan_predicates")


def scan_predicates(prog: drgn.Program) -> tuple[dict, dict, dict]:
    """``(predicates, capture, outside)`` for
    :func:`~drgn_mmtools.kernel.memmap.scan_pages`."""
    lay = page_layout(prog)
    little = lay.byteorder == "little"
    tail = ByteTest(lay.compound_head + (0 if little else lay.word - 1), 1, 1)
    preds: dict[str, list[ByteTest]] = {"tail": [tail]}
    for name, flag in (("hwpoison", "PG_hwpoison"), ("has_hwpoisoned", "PG_has_hwpoisoned")):
        bit = pageflag_bit(prog, flag)
        if bit is not None:
            preds[name] = [flag_test(prog, bit)]
    if "has_hwpoisoned" in preds:
        preds["has_hwpoisoned"].append(tail)  # set on the first tail page
    slab_bit = pageflag_bit(prog, "PG_slab")
    slab = [flag_test(prog, slab_bit)] if slab_bit is not None else page_type_tests(prog, "slab")
    if slab:
        preds["slab"] = slab
    buddy = page_type_tests(prog, "buddy")
    if buddy:
        preds["buddy"] = buddy
    table = page_type_tests(prog, "table")
    if table:
        preds["table"] = table
    # A zero refcount on a page that is not a tail (tails keep theirs at 0),
    # outside the free blocks (all of whose pages have one).
    preds["refcount0"] = [ByteTest(lay.refcount + i, 0xFF, 0) for i in range(4)] + [
        ByteTest(tail.offset, 1, 0)]
    private = member_offsets(prog, "struct page", "private")["private"]
    outside = {"refcount0": "buddy"} if "buddy" in preds else {}
    return preds, {"buddy": (private, lay.word)}, outside


def _set_bits(bits: bytearray, start: int, end: int) -> None:
    """Set bits ``[start, end)`` of ``bits``: whole bytes in one slice."""
    pfn = start
    while pfn < end and pfn & 7:
        bits[pfn >> 3] |= 1 << (pfn & 7)
        pfn += 1
    whole = (end - pfn) >> 3
    if whole > 0:
        bits[pfn >> 3:(pfn >> 3) + whole] = b"\xff" * whole
        pfn += whole << 3
    while pfn < end:
        bits[pfn >> 3] |= 1 << (pfn & 7)
        pfn += 1


@dataclass
class PageSets:
    """Sets of PFNs from one mem_map scan."""

    scan: MemmapScan
    hwpoison: array
    has_hwpoisoned: array
    slab: array  #: sorted PFNs
    #: sorted PFNs of non-tail pages with a zero refcount outside free blocks
    refcount0: array
    tail: array  #: sorted PFNs of tail pages
    free: list[tuple[int, int]]  #: free buddy blocks as [start, end) PFNs, sorted
    table: array = None  # type: ignore[assignment]  #: sorted PFNs of page-table pages (PageTable)
    #: PFNs of table, tail, slab and refcount-0 pages: a mapped PFN outside
    #: this set and outside free blocks has nothing to report (set after init)
    flagged: frozenset = frozenset()

    @classmethod
    def from_scan(cls, scan: MemmapScan) -> "PageSets":
        m = scan.matches
        orders = scan.values.get("buddy", [])
        free = sorted((pfn, pfn + (1 << order)) for pfn, order in zip(m.get("buddy", []), orders)
                      if order < 64)
        empty = array("Q")
        return cls(scan, m.get("hwpoison", empty), m.get("has_hwpoisoned", empty),
                   m.get("slab", empty), m.get("refcount0", empty), m.get("tail", empty), free,
                   m.get("table", empty))

    def __post_init__(self) -> None:
        # Per-mapped-page questions are answered in O(1): a bitmap of the
        # pages in free blocks (1 bit per page, one slice per aligned block),
        # and the few PFNs of the other sets in one Python set.
        top = max((e for _, e in self.free), default=0)
        bits = bytearray((top + 7) >> 3)
        for start, end in self.free:
            _set_bits(bits, start, end)
        self._free_bits = bits
        self._listed_bits: bytearray | None = None  #: see _listed_bitmap; built on use
        self.flagged = frozenset().union(self.table or (), self.tail, self.slab,
                                         self.refcount0)

    def none_listed(self, phys: array, page_shift: int, ram: list[tuple[int, int]]) -> bool:
        """Whether every page at the physical addresses ``phys``
        (page-aligned, 'Q'; 0 is passed over) is RAM with a struct page
        (in the sorted PFN ranges ``ram``), outside free blocks and in none
        of the flagged sets.  A run of page-table entries is tested in a few
        C-level passes over a bitmap of all of those (1 bit per page)."""
        bits = self._listed_bits
        if bits is None:
            bits = self._listed_bits = self._listed_bitmap(ram)
        try:
            hits = bytes(map(bits.__getitem__, map(operator.rshift, phys,
                                                   itertools.repeat(page_shift + 3))))
        except IndexError:
            return False  # a page above the last range of RAM
        if hits.count(0) == len(hits):
            return True
        # Some page shares a byte of the bitmap with a listed one: test the
        # bits of those.
        for i, byte in enumerate(hits):
            if byte and byte >> (phys[i] >> page_shift & 7) & 1:
                return False
        return True

    def _listed_bitmap(self, ram: list[tuple[int, int]]) -> bytearray:
        """1 bit per PFN up to the end of RAM: free, flagged, or in no range
        of ``ram``; PFN 0 clear (the none entries of a run read as 0)."""
        top = max((e for _, e in ram), default=0)
        bits = bytearray((top + 7) >> 3)
        free = self._free_bits[:len(bits)]
        bits[:len(free)] = free
        for pfn in self.flagged:
            if pfn < top:
                bits[pfn >> 3] |= 1 << (pfn & 7)
        done = 0
        for start, end in ram:
            _set_bits(bits, done, start)  # the hole below this range
            done = max(done, end)
        _set_bits(bits, top, len(bits) << 3)  # the last byte's bits past the end
        if bits:
            bits[0] &= 0xFE
        return bits

    def is_free(self, pfn: int) -> bool:
        """Whether ``pfn`` lies in a free buddy block."""
        i = pfn >> 3
        return i < len(self._free_bits) and bool(self._free_bits[i] >> (pfn & 7) & 1)

    @property
    def free_pages(self) -> int:
        """Pages in free buddy blocks (the kernel's NR_FREE_PAGES)."""
        return sum(e - s for s, e in self.free)

    @staticmethod
    def has(pfns: array, pfn: int) -> bool:
        """Whether sorted ``pfns`` holds ``pfn``."""
        i = bisect.bisect_left(pfns, pfn)
        return i < len(pfns) and pfns[i] == pfn

    def free_overlap(self, pfn: int, n: int = 1) -> bool:
        """Whether any of ``[pfn, pfn + n)`` lies in a free buddy block."""
        i = bisect.bisect_right(self.free, (pfn + n - 1, float("inf"))) - 1
        return i >= 0 and self.free[i][1] > pfn
