"""``page``: one struct page (or folio) decoded, and where it is mapped."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import drgn
from drgn import Object
from drgn.commands import argument
from drgn.helpers.linux.mm import pfn_to_page

from ..analysis.mismatch import in_page_cache
from ..kernel.page import page_info
from ..kernel.probe import READ_ERRORS, one_line
from ..kernel.swap_entry import swap_types
from ..report.output import Output, detail_field, hex_field
from .registry import fail, mm_command, pluck
from .resolve import number, pfn_of
from .workspace import Workspace

__all__ = ("PageRecord", "page_record")


@dataclass
class PageRecord:
    """A struct page as the kernel sees it; any kernel with struct page."""

    pfn: int = hex_field()
    page: int = hex_field()  #: address of the struct page
    flags: list[str] = field(default_factory=list)  #: named from enum pageflags
    mapping_kind: str = ""  #: "file", "anon", "ksm", "movable" or "none"
    mapping: int = hex_field(0)
    file: str | None = None  #: the mapping's host, as a path
    inode: int | None = None
    fs: str | None = None
    index: int = 0  #: page index in its file (the head's index plus the subpage)
    refcount: int = 0
    mapcount: int = 0
    head_pfn: int = hex_field(0)  #: compound head (== pfn for a base page)
    order: int = 0  #: compound order of the head
    in_page_cache: bool | None = None  #: the mapping's slot at index points here
    memcg: int | None = hex_field(None)  #: the memory cgroup (0: none; objcg pages: None)
    mapped_by: list[dict] = field(default_factory=list)  #: pid, comm, address, entry
    flags_raw: int = detail_field(0, fmt="hex")
    taken_as: str = detail_field("")  #: what the number given was taken as


def _memcg(prog: drgn.Program, page: Object) -> int | None:
    for name in ("memcg_data", "mem_cgroup"):  # memcg_data since 5.10, mem_cgroup before
        try:
            value = getattr(page, name).value_()
        except AttributeError:
            continue
        if name == "memcg_data":
            # MEMCG_DATA_OBJCGS (bit 0): slab obj_cgroup vectors; KMEM (bit 1): objcg.
            return None if value & 1 else value & ~3
        return value
    return None


def page_record(ws: Workspace, pfn: int, taken_as: str = "pfn") -> PageRecord:
    """Decode ``pfn``'s struct page.

    :raises CommandError: when the struct page cannot be read.
    """
    prog, session = ws.prog, ws.session
    if session.pfn_valid(pfn) is False:
        raise fail(f"pfn {pfn:#x} has no struct page (outside RAM)")
    try:
        info = page_info(prog, pfn)
        page = pfn_to_page(prog, pfn)
        memcg = _memcg(prog, pfn_to_page(prog, info.head_pfn))
    except READ_ERRORS as e:
        raise fail(f"struct page of pfn {pfn:#x} cannot be read: {one_line(e)}") from None
    rec = PageRecord(pfn=pfn, page=page.value_(), flags=list(info.flag_names),
                     mapping_kind=info.mapping_kind, mapping=info.mapping,
                     index=info.index + (pfn - info.head_pfn), refcount=info.refcount,
                     mapcount=info.mapcount, head_pfn=info.head_pfn, order=info.order,
                     memcg=memcg, flags_raw=info.flags, taken_as=taken_as)
    if info.mapping_kind == "file" and info.mapping:
        owner = session.owner(info.mapping)
        if owner:
            rec.file, rec.inode, rec.fs = owner.path, owner.inode, owner.fstype
        rec.in_page_cache = in_page_cache(prog, info.mapping, info.index, info.head_pfn)
    for mm, leaf in session.mappers({pfn})[pfn]:
        rec.mapped_by.append({"pid": mm.users.pids[0], "comm": mm.users.comms[0],
                              "address": leaf.vaddr + ((pfn - leaf.pfn) << session.page_shift),
                              "entry": "present"})
    types = swap_types(prog)
    for mm, va, level, swap_type in session.swap_refs({pfn})[pfn]:
        # SWP_HWPOISON is MAX_SWAPFILES; migration and device entries come after it.
        kind = ("hwpoison-entry" if swap_type == types.max_swapfiles
                else f"special swap entry (type {swap_type})")
        rec.mapped_by.append({"pid": mm.users.pids[0], "comm": mm.users.comms[0],
                              "address": va, "entry": kind})
    return rec


@mm_command(
    "page", "decode a struct page: flags, mapping, file, index, counts, compound head, "
    "memcg, and who maps it",
    arguments=(
        argument("where", nargs="*", metavar="PFN|ADDR",
                 help="a pfn, a struct page address or a direct-map kernel address "
                      "(hexadecimal with 0x)"),
        argument("--phys", action="store_true", help="the numbers are physical addresses"),
    ),
    examples=("page 0x1fd3d", "page 0xffffea00007f4f40", "page --phys 0x1fd3d000",
              "findings --check hwpoison-pagecache | page"),
    accepts=("pfn",),
)
def _page(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    wanted: list[tuple[int, str]] = []
    for text in args.where:
        wanted.append(pfn_of(ws, number(text, "PFN|ADDR"), args.phys))
    for r in records_in or ():
        pfn = pluck(r, "pfn")
        if pfn is not None:
            wanted.append((pfn, "pfn"))
    if not wanted:
        raise fail("page: give a PFN or ADDR, or pipe records that have a pfn")
    out = Output("", "page", layout="detail")
    seen = set()
    for pfn, taken in wanted:
        if pfn in seen:
            continue
        seen.add(pfn)
        try:
            out.records.append(page_record(ws, pfn, taken))
        except Exception as e:  # noqa: BLE001 - one page's failure does not stop the rest
            if records_in is None and len(wanted) == 1:
                raise
            out.unreadable.append(one_line(e))
    out.unreadable += ws.session.task_problems
    return out
