"""Which pages a makedumpfile dump level leaves out, and why a read in a
filtered dump failed.

Dump level bits (makedumpfile ``-d``): 1 zero pages, 2 page-cache pages
without private data, 4 page-cache pages with private data, 8 user (anonymous)
pages, 16 free pages.  Page tables, struct pages (vmemmap), slab (XArray
nodes among it) and kernel stacks are kept at every level, so every check
works on a ``-d 31`` dump; what a level drops is the data pages themselves.
"""

from __future__ import annotations

import re

import drgn

from .page import page_info
from .probe import READ_ERRORS

__all__ = ("LEVEL_BITS", "dropped_by", "explain_address", "explain_line")

LEVEL_BITS = {1: "a zero page", 2: "a page-cache page", 4: "a page-cache page with private data",
              8: "a user (anonymous) page", 16: "a free page"}

_PG_PRIVATE = "PG_private"


def dropped_by(prog: drgn.Program, pfn: int) -> int | None:
    """The dump-level bit that drops ``pfn``'s page, from its struct page
    (kept at every level); None when no level drops it, or it is unknown."""
    try:
        page = page_info(prog, pfn)
    except READ_ERRORS:
        return None
    if page.buddy:
        return 16
    if page.mapping_kind in ("anon", "ksm"):
        return 8
    if page.mapping_kind == "file":
        return 4 if _PG_PRIVATE in page.flag_names else 2
    return None


def _phys(prog: drgn.Program, address: int) -> int | None:
    """The physical address the kernel maps ``address`` to, by its page tables."""
    from drgn.helpers.linux.mm import follow_phys

    try:
        return follow_phys(prog["init_mm"].address_of_(), address).value_()
    except (LookupError, ValueError, *READ_ERRORS):
        return None


def explain_address(prog: drgn.Program, level: int, address: int) -> str | None:
    """Why reading ``address`` failed in a dump filtered at ``level``, with
    the level that keeps the page; None when the level is not the reason
    (a truncated dump, say)."""
    if not level:
        return None
    try:
        prog.read(address, 1)
        return None  # the dump holds it: filtering is not why
    except drgn.FaultError:
        pass
    phys = _phys(prog, address)
    if phys is None:
        return None
    shift = prog["PAGE_SHIFT"].value_() if _has(prog, "PAGE_SHIFT") else 12
    pfn = phys >> shift
    try:
        page_info(prog, pfn)
    except READ_ERRORS:
        return None  # no struct page: not a page any level filters
    bit = dropped_by(prog, pfn)
    if bit is not None and level & bit:
        return (f"pfn {pfn:#x} is {LEVEL_BITS[bit]}, which dump level {level} leaves out; "
                f"makedumpfile -d {level & ~bit} keeps it")
    if bit is None and level & 1:
        return (f"pfn {pfn:#x} may be a zero page, which dump level {level} leaves out; "
                f"makedumpfile -d {level & ~1} keeps it")
    return None


def _has(prog: drgn.Program, name: str) -> bool:
    try:
        prog[name]
        return True
    except KeyError:
        return False


_ADDRESS = re.compile(r"0x[0-9a-f]{8,16}\b")


def explain_line(prog: drgn.Program, level: int, line: str) -> str:
    """``line`` (an "unreadable" entry ending in the failed address) with
    the dump level's part in it, when the level is why."""
    found = _ADDRESS.findall(line)
    if not found:
        return line
    why = explain_address(prog, level, int(found[-1], 16))
    return f"{line} ({why})" if why else line
