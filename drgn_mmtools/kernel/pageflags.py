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
    bits = pageflag_bits(prog)
    limit = bits.get("__NR_PAGEFLAGS", 64)
    out: dict[int, str] = {}
    for name, bit in bits.items():
        if bit < limit and bit not in out and not name.startswith("__"):
            out[bit] = name
    return out


def decode_page_flags(prog: drgn.Program, flags: int) -> list[str]:
    """Names of the primary flags set in a ``page->flags`` value."""
    return [name for bit, name in sorted(primary_pageflags(prog).items()) if flags >> bit & 1]


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
        legacy = {"buddy": 0x80, "offline": 0x100, "table": 0x200, "guard": 0x400}
        if kind in legacy:
            tests = _u32_tests(off, 0xF0000000 | legacy[kind], 0xF0000000, little)
        else:
            tests = None
    prog.cache[key] = tests
    return tests
