"""Page flags and page types, read from the kernel's own definitions.

``enum pageflags`` gives the bit numbers of ``page->flags`` (they depend on the
config and moved in 6.12).  Page types (buddy, slab since 6.12, page table,
offline) live in ``page->page_type``; their encoding changed three times and is
probed from ``enum pagetype`` when the kernel has one.
"""

from __future__ import annotations

from typing import NamedTuple

import drgn

from .probe import LayoutError

__all__ = (
    "ByteTest",
    "decode_page_flags",
    "page_type_tests",
    "pageflag_bit",
    "pageflag_bits",
    "primary_pageflags",
)


def pageflag_bits(prog: drgn.Program) -> dict[str, int]:
    """Map every ``enum pageflags`` enumerator (aliases included) to its bit.

    :returns: e.g. ``{"PG_locked": 0, ..., "PG_hwpoison": 22, "PG_has_hwpoisoned": 8}``
    """
    try:
        return prog.cache["mmtools_pageflags"]
    except KeyError:
        pass
    try:
        enum = prog.type("enum pageflags")
    except LookupError:
        raise LayoutError("the debug info has no enum pageflags: page flag bits are "
                          "unknown") from None
    bits = {e.name: e.value for e in enum.enumerators}
    prog.cache["mmtools_pageflags"] = bits
    return bits


def pageflag_bit(prog: drgn.Program, name: str) -> int | None:
    """The bit of one flag (``"PG_hwpoison"``), or None when the kernel lacks it."""
    return pageflag_bits(prog).get(name)


def primary_pageflags(prog: drgn.Program) -> dict[int, str]:
    """Bit -> first name for the bits below ``__NR_PAGEFLAGS`` (no aliases)."""
    try:
        return prog.cache["mmtools_primary_pageflags"]
    except KeyError:
        pass
    bits = pageflag_bits(prog)
    limit = bits.get("__NR_PAGEFLAGS", 64)
    out: dict[int, str] = {}
    for name, bit in bits.items():
        if bit < limit and bit not in out and not name.startswith("__"):
            out[bit] = name
    prog.cache["mmtools_primary_pageflags"] = out = dict(sorted(out.items()))
    return out


def decode_page_flags(prog: drgn.Program, flags: int) -> list[str]:
    """Names of the primary flags set in a ``page->flags`` value, by bit."""
    return [name for bit, name in primary_pageflags(prog).items() if flags >> bit & 1]


class ByteTest(NamedTuple):
    """One byte of a struct page, masked, compared with a value."""

    offset: int  #: byte offset within struct page
    mask: int  #: bits of that byte that are tested
    value: int  #: required value of ``byte & mask``


def _u32_tests(offset: int, mask: int, value: int, little: bool) -> list[ByteTest]:
    tests = []
    for i in range(4):
        m = (mask >> (8 * i)) & 0xFF
        if m:
            byte = i if little else 3 - i
            tests.append(ByteTest(offset + byte, m, (value >> (8 * i)) & 0xFF))
    return tests


def page_type_tests(prog: drgn.Program, kind: str) -> list[ByteTest] | None:
    """Byte tests on struct page that are all true iff the page has type ``kind``.

    ``kind`` is ``"buddy"``, ``"offline"``, ``"table"``, ``"guard"`` or
    ``"slab"`` (a page type only since 6.12).  Returns None when the kernel
    has no such page type.

    Encodings: up to 6.8 a type is a cleared bit under ``PAGE_TYPE_BASE``
    (0xf0000000; buddy 0x80, offline 0x100, table 0x200, guard 0x400); 6.9-6.11
    keep that form with the bits in ``enum pagetype``; since 6.12 the top byte
    of ``page_type`` holds ``PGTY_<kind>``.
    """
    key = f"mmtools_pagetype_{kind}"
    if key in prog.cache:
        return prog.cache[key]
    page = prog.type("struct page")
    try:
        off = drgn.offsetof(page, "page_type")
    except LookupError:
        prog.cache[key] = None
        return None
    little = bool(prog.platform.flags & drgn.PlatformFlags.IS_LITTLE_ENDIAN)
    try:
        enumerators = {e.name: e.value for e in prog.type("enum pagetype").enumerators}
    except LookupError:
        enumerators = {}
    tests: list[ByteTest] | None
    if f"PGTY_{kind}" in enumerators:
        # Since 6.12: the type is the top byte of page_type.
        tests = _u32_tests(off, 0xFF000000, enumerators[f"PGTY_{kind}"] << 24, little)
    elif f"PG_{kind}" in enumerators:
        base = enumerators.get("PAGE_TYPE_BASE", 0x80000000)
        bit = enumerators[f"PG_{kind}"]
        tests = _u32_tests(off, base | bit, base, little)
    else:
        # Before 6.9 the bits are macros, which debug info does not carry,
        # and they moved: 5.0-5.10 had PG_kmemcg at 0x200, so the table and
        # guard bits sat one higher than in 5.11-6.8.  The page-table bit is
        # read off real page-table pages; the others by the era's layout.
        legacy = {"buddy": 0x80, "offline": 0x100, "table": 0x200, "guard": 0x400}
        if _has_kmemcg_type(prog):
            legacy.update(table=0x400, guard=0x800)
        bit = legacy.get(kind)
        if kind == "table":
            bit = probe_table_type_bit(prog) or bit
        tests = _u32_tests(off, 0xF0000000 | bit, 0xF0000000, little) if bit else None
    prog.cache[key] = tests
    return tests


def _has_kmemcg_type(prog: drgn.Program) -> bool:
    """Whether the kernel has the PG_kmemcg page type (5.0 to 5.10): the
    debug info then describes its generated helpers (``PageKmemcg`` and
    friends, inline functions that drgn finds by name)."""
    for name in ("__SetPageKmemcg", "PageKmemcg", "__ClearPageKmemcg"):
        try:
            prog.function(name)
            return True
        except LookupError:
            pass
    return False


def probe_table_type_bit(prog: drgn.Program, tables: int = 64) -> int | None:
    """The ``page_type`` bit that marks page-table pages, read from the
    tables under the first user address spaces (PTE tables, and PMD tables
    with split PMD locks, are constructed with ``__SetPageTable``).

    :returns: the bit (e.g. 0x200 on 5.11-6.8, 0x400 on 5.10) when at least
        two tables agree on one, else None.  Kernels before 6.9 only.
    """
    from collections import Counter
    from itertools import islice

    from drgn.helpers.linux.mm import pfn_to_page
    from drgn.helpers.linux.pid import for_each_task

    from .pgtable import PageTableWalk, walk_user_page_tables

    pfns: list[int] = []

    def seen(pfn: int) -> None:
        pfns.append(pfn)
        return None

    votes: Counter = Counter()
    try:
        page = prog.type("struct page")
        off = drgn.offsetof(page, "page_type")
        # A bounded look: a corrupted task list may cycle through kernel threads.
        for task in islice(for_each_task(prog), 256):
            if len(pfns) >= tables:
                break
            if not task.mm.value_():
                continue
            for _ in walk_user_page_tables(prog, task.mm.pgd.value_(),
                                           PageTableWalk(table_problem=seen)):
                if len(pfns) >= tables:
                    break
        for pfn in pfns:
            try:
                addr = pfn_to_page(prog, pfn).value_() + off
                value = int.from_bytes(prog.read(addr, 4), "little" if prog.platform.flags
                                       & drgn.PlatformFlags.IS_LITTLE_ENDIAN else "big")
            except (drgn.FaultError, ValueError, OverflowError):
                continue
            cleared = ~value & 0x0FFFFFFF
            if value >> 28 == 0xF and cleared and cleared & (cleared - 1) == 0:
                votes[cleared] += 1
    except (drgn.FaultError, LookupError, ValueError):
        pass
    if not votes:
        return None
    bit, n = votes.most_common(1)[0]
    return bit if n >= 2 else None
