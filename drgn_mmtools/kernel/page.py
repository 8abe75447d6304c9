"""One struct page (or the folio it belongs to), decoded from a single read.

``page->mapping``'s low bits say what it points to (``PAGE_MAPPING_ANON`` 1,
``PAGE_MAPPING_MOVABLE`` 2, both for KSM; unchanged since 2.6); a tail page's
``compound_head`` has bit 0 set and points at the head.  Offsets come from
the debug info.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

import drgn
from drgn import Object
from drgn.helpers.linux.mm import compound_order, pfn_to_page

from .pageflags import decode_page_flags, page_type_tests, pageflag_bit
from .probe import member_offsets

__all__ = ("PageInfo", "PageLayout", "page_info", "page_layout", "page_mapping_index",
           "struct_page_address")

PAGE_MAPPING_ANON = 1
PAGE_MAPPING_MOVABLE = 2
PAGE_MAPPING_KSM = PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE
MAPPING_KINDS = {0: "file", 1: "anon", 2: "movable", 3: "ksm"}


class PageLayout(NamedTuple):
    """Where the fields of struct page are, for decoding raw bytes."""

    size: int
    flags: int
    compound_head: int
    mapping: int
    index: int
    mapcount: int
    refcount: int
    word: int  #: sizeof(unsigned long)
    byteorder: str


def page_layout(prog: drgn.Program) -> PageLayout:
    """Offsets of the struct page fields the checks read. All kernels since 4.20."""
    if "mmtools_page_layout" in prog.cache:
        return prog.cache["mmtools_page_layout"]
    off = member_offsets(prog, "struct page", "flags", "compound_head", "mapping", "index",
                         "_mapcount", "_refcount")
    little = bool(prog.platform.flags & drgn.PlatformFlags.IS_LITTLE_ENDIAN)
    layout = PageLayout(
        size=prog.type("struct page").size,
        flags=off["flags"],
        compound_head=off["compound_head"],
        mapping=off["mapping"],
        index=off["index"],
        mapcount=off["_mapcount"],
        refcount=off["_refcount"],
        word=prog.type("unsigned long").size,
        byteorder="little" if little else "big",
    )
    prog.cache["mmtools_page_layout"] = layout
    return layout


class PageInfo(NamedTuple):
    """A decoded struct page.  Plain values only, so it serializes."""

    pfn: int
    address: int  #: address of the struct page
    flags: int  #: raw ``page->flags``
    flag_names: tuple[str, ...]
    head_pfn: int  #: PFN of the compound head (== pfn for head and base pages)
    mapping: int  #: ``mapping`` of the head page with the type bits cleared
    mapping_kind: str  #: "file", "anon", "ksm", "movable" or "none"
    index: int  #: ``index`` of the head page
    refcount: int  #: ``_refcount`` of the head page
    mapcount: int  #: ``_mapcount + 1`` of this page (meaningless for typed pages)
    buddy: bool  #: a free page at the head of a buddy block
    slab: bool
    order: int  #: compound order of the head (0 for base pages)
    table: bool = False  #: a page-table page (PageTable)

    @property
    def is_tail(self) -> bool:
        return self.head_pfn != self.pfn


def struct_page_address(prog: drgn.Program, pfn: int) -> int:
    """The address of ``pfn``'s struct page: from the valid mem_map ranges
    (read once per program), else drgn's ``pfn_to_page``.  Any memory model;
    live, a section added after the first call takes the second way."""
    ranges = prog.cache.get("mmtools_memmap_ranges")
    if ranges is None:
        from .memmap import valid_page_ranges
        try:
            ranges = valid_page_ranges(prog)
        except (drgn.FaultError, LookupError, ValueError):
            ranges = []
        prog.cache["mmtools_memmap_ranges"] = ranges
    i = bisect.bisect_right(ranges, (pfn, float("inf"))) - 1
    if i >= 0 and ranges[i][0] <= pfn < ranges[i][1]:
        lay = page_layout(prog)
        # Wraps as the kernel's pointer arithmetic does (a corrupted
        # mem_section can give any base): the read then faults.
        return (ranges[i][2] + (pfn - ranges[i][0]) * lay.size) & ((1 << 8 * lay.word) - 1)
    return pfn_to_page(prog, pfn).value_()


def page_mapping_index(prog: drgn.Program, pfn: int) -> tuple[int, int, bool] | None:
    """``(raw mapping, index, is a tail)`` of ``pfn``'s own struct page from
    one read, or None when it cannot be read: the cheap question of whether
    a page belongs where it is mapped (a tail's mapping lives in its head;
    ask :func:`page_info`)."""
    lay = page_layout(prog)
    try:
        buf = prog.read(struct_page_address(prog, pfn), lay.size)
    except (drgn.FaultError, ValueError, OverflowError):
        return None
    o = lay.byteorder
    return (_int(buf, lay.mapping, lay.word, o), _int(buf, lay.index, lay.word, o),
            bool(_int(buf, lay.compound_head, lay.word, o) & 1))


def _int(buf: bytes, off: int, size: int, order: str, signed: bool = False) -> int:
    return int.from_bytes(buf[off:off + size], order, signed=signed)


def _passes(buf: bytes, tests) -> bool:
    return bool(tests) and all(buf[t.offset] & t.mask == t.value for t in tests)


def page_info(prog: drgn.Program, pfn: int) -> PageInfo:
    """Decode the struct page of ``pfn`` and its compound head.

    :raises drgn.FaultError: if the struct page cannot be read.
    """
    lay = page_layout(prog)
    addr = struct_page_address(prog, pfn)
    buf = prog.read(addr, lay.size)
    o = lay.byteorder
    ch = _int(buf, lay.compound_head, lay.word, o)
    head_addr, head_buf, head_pfn = addr, buf, pfn
    if ch & 1:
        head_addr = ch - 1
        head_pfn = pfn - (addr - head_addr) // lay.size
        head_buf = prog.read(head_addr, lay.size)
    flags = _int(buf, lay.flags, lay.word, o)
    raw_mapping = _int(head_buf, lay.mapping, lay.word, o)
    kind = MAPPING_KINDS[raw_mapping & 3] if raw_mapping else "none"
    slab_bit = pageflag_bit(prog, "PG_slab")
    head_flags = _int(head_buf, lay.flags, lay.word, o)
    slab = bool(head_flags >> slab_bit & 1) if slab_bit is not None else \
        _passes(head_buf, page_type_tests(prog, "slab"))
    head_bit = pageflag_bit(prog, "PG_head")
    order = 0
    if head_bit is not None and head_flags >> head_bit & 1:
        order = compound_order(Object(prog, "struct page *", head_addr)).value_()
    return PageInfo(
        pfn=pfn,
        address=addr,
        flags=flags,
        flag_names=tuple(decode_page_flags(prog, flags)),
        head_pfn=head_pfn,
        mapping=raw_mapping & ~3,
        mapping_kind=kind,
        index=_int(head_buf, lay.index, lay.word, o),
        refcount=_int(head_buf, lay.refcount, 4, o, signed=True),
        mapcount=_int(buf, lay.mapcount, 4, o, signed=True) + 1,
        buddy=_passes(buf, page_type_tests(prog, "buddy")),
        slab=slab,
        order=order,
        table=_passes(buf, page_type_tests(prog, "table")),
    )
