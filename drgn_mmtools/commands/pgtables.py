"""``pte``: the page-table walk of one address, level by level."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from drgn.commands import argument

from ..kernel.pgtable import page_table_format, translate
from ..kernel.probe import READ_ERRORS, one_line
from ..kernel.swap_entry import decode_swap, swap_types
from ..report.output import Output, hex_field
from .registry import fail, mm_command, pluck
from .resolve import number, task_of
from .workspace import Workspace

__all__ = ("PteRecord",)


@dataclass
class PteRecord:
    """One level of the walk of ``address`` in ``pid``'s page tables."""

    pid: int
    address: int = hex_field()
    level: str = ""  #: pgd, p4d, pud, pmd, pte
    table: int = hex_field(0)  #: physical address of the table read
    index: int = 0
    entry: int = hex_field(0)  #: the raw entry
    kind: str = ""  #: table, leaf, none, swap, protnone, bad
    bits: list[str] = field(default_factory=list)  #: set bits, by the arch's names
    phys: int | None = hex_field(None)  #: next table, or the physical address mapped
    decoded: str | None = None  #: swap entries: type and offset; leaves: pfn


@mm_command(
    "pte", "walk the page tables of one address, level by level, each entry decoded for "
    "the architecture",
    arguments=(
        argument("pid", nargs="?", metavar="PID"),
        argument("address", nargs="?", metavar="ADDR", help="user virtual address"),
    ),
    examples=("pte 42 0x7f3a5c001000", "findings --check pagetable-sanity | pte"),
    accepts=("pid", "address"), completes=("pid",),
)
def _pte(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    wanted: list[tuple[int, int]] = []
    if args.pid is not None:
        if args.address is None:
            raise fail("pte: give PID and ADDR")
        wanted.append((number(args.pid, "PID"), number(args.address, "ADDR")))
    for r in records_in or ():
        pid, addr = pluck(r, "pid"), pluck(r, "address")
        if pid is not None and addr is not None:
            wanted.append((pid, addr))
    if not wanted:
        raise fail("pte: give PID and ADDR, or pipe records that have a pid and an address")
    fmt = page_table_format(ws.prog)
    out = Output("", "pte")
    for pid, addr in dict.fromkeys(wanted):
        task = task_of(ws, pid)
        mm = task.mm.read_()
        if not mm:
            out.notes.append(f"pid {pid} is a kernel thread: no user page tables")
            continue
        try:
            steps = translate(ws.prog, mm.pgd.value_(), addr)
        except READ_ERRORS as e:
            out.unreadable.append(f"page tables of pid {pid} at {addr:#x}: {one_line(e)}")
            out.status = 2
            continue
        for s in steps:
            decoded = None
            if s.kind == "swap":
                types = swap_types(ws.prog)
                readings = decode_swap(fmt.arch, s.value)
                decoded = "; ".join(
                    f"swap type {e.type} offset {e.offset:#x}"
                    + (" (special: hwpoison, migration or device)" if types.is_special(e.type)
                       else "") for e in readings)
            elif s.kind == "leaf" and s.phys is not None:
                decoded = f"pfn {s.phys >> fmt.page_shift:#x}"
            out.records.append(PteRecord(pid, addr, s.level_name, s.table, s.index, s.value,
                                         s.kind, list(s.bits), s.phys, decoded))
    return out
