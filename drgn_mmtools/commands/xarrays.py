"""``xa`` and ``dax``: an address_space's XArray as entries or as a tree of
nodes, and the lock state of fsdax entries with their waiters."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import drgn
from drgn import Object
from drgn.commands import argument
from drgn.helpers.linux.mm import page_to_pfn

from ..kernel.dax import S_DAX, dax_waiters, decode
from ..kernel.probe import READ_ERRORS, one_line
from ..kernel.xarray import entry_kind, xa_entries, xa_node_slots, _layout
from ..report.output import Output, detail_field, hex_field
from .registry import fail, mm_command, pluck
from .resolve import mapping_of
from .workspace import Workspace

__all__ = ("XaRecord", "XaNodeRecord", "DaxRecord")

_TARGET = argument("target", nargs="?", metavar="MAPPING|INODE|PATH",
                   help="an address_space or inode address (0x...), an inode number, or an "
                        "absolute path in the dentry cache")


@dataclass
class XaRecord:
    """One entry of an address_space's i_pages."""

    index: int
    kind: str  #: page, shadow, swap, dax, value, zero, retry
    order: int  #: the entry covers 1 << order indices (siblings folded in)
    entry: int = hex_field()  #: the raw slot
    pfn: int | None = hex_field(None)  #: page entries: the page; DAX entries: the pfn
    note: str | None = None  #: a page whose own mapping or index disagrees; DAX bits
    node: int = hex_field(0)  #: the xa_node holding it (0: xa_head)
    offset: int = 0  #: slot within the node
    mapping: int = detail_field(0, fmt="hex")


@dataclass
class XaNodeRecord:
    """One xa_node (``--nodes``)."""

    depth: int
    node: int = hex_field()
    shift: int = 0
    offset: int = 0  #: slot in the parent
    count: int = 0  #: non-NULL slots
    nr_values: int = 0
    first_index: int = 0
    slots: str = ""  #: slot kinds, counted
    marks: list[str] = field(default_factory=list)  #: XA_MARK_n: slot bitmap


def _mapping_info(ws: Workspace, mapping: int) -> tuple[Object, str, str]:
    prog = ws.prog
    m = Object(prog, "struct address_space *", mapping)
    owner = ws.session.owner(mapping)
    name = (owner.path or f"ino {owner.inode}") if owner else f"{mapping:#x}"
    try:
        dax = bool(m.host.i_flags.value_() & S_DAX)
    except READ_ERRORS:
        dax = False
    try:
        shmem = str(prog.symbol(m.a_ops.value_()).name) == "shmem_aops"
    except (LookupError, READ_ERRORS):
        shmem = bool(owner and owner.fstype in ("tmpfs", "shmem"))
    value_kind = "dax" if dax else "swap" if shmem else "shadow"
    return m, name, value_kind


def _targets(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None,
             what: str) -> list[int]:
    out = []
    if args.target is not None:
        out.append(mapping_of(ws, args.target))
    for r in records_in or ():
        m = pluck(r, "mapping", "page_mapping")
        if m:
            out.append(m)
    if not out:
        raise fail(f"{what}: give a MAPPING, INODE or PATH, or pipe records that have a "
                   f"mapping")
    return list(dict.fromkeys(out))


@mm_command(
    "xa", "list an address_space's XArray entries (page, shadow, swap, DAX, zero, retry), "
    "or its tree of nodes",
    arguments=(_TARGET, argument("--nodes", action="store_true",
                                 help="the tree of xa_nodes: shift, offset, count, nr_values, "
                                      "marks and slot kinds")),
    examples=("xa /tmp/hwp/shmem_file", "xa 0xffff888003a1c5f8 --nodes", "xa 5",
              "findings --check mapping-mismatch | xa"),
    accepts=("mapping", "page_mapping"), completes=("path",),
)
def _xa(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    prog = ws.prog
    mappings = _targets(ws, args, records_in, "xa")
    out = Output("", "xa-node" if args.nodes else "xa-entry",
                 layout="tree" if args.nodes else "table")
    for mapping in mappings:
        try:
            m, name, value_kind = _mapping_info(ws, mapping)
            xa = m.i_pages.address_of_()
            out.title = f"i_pages of {name} (address_space {mapping:#x})"
            if args.nodes:
                lay = _layout(prog)
                for node, slots in xa_node_slots(xa):
                    kinds = Counter(entry_kind(s, lay.chunk) for s in slots)
                    kinds.pop("null", None)
                    marks = [f"{i}:{bits:#x}" for i, bits in enumerate(node.marks) if bits]
                    out.records.append(XaNodeRecord(
                        node.depth, node.address, node.shift, node.offset, node.count,
                        node.nr_values, node.first_index,
                        ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())), marks))
                if not out.records:
                    out.notes.append("no nodes: the XArray holds at most one entry, at xa_head")
                continue
            for e in xa_entries(xa):
                rec = XaRecord(e.index, e.kind, e.order, e.entry, node=e.node, offset=e.offset,
                               mapping=mapping)
                if e.kind == "pointer":
                    rec.kind = "page"
                    try:
                        page = Object(prog, "struct page *", e.entry)
                        rec.pfn = page_to_pfn(page).value_()
                        info = ws.session.page(rec.pfn)
                        if info is None:
                            rec.note = "struct page unreadable"
                        elif info.mapping != mapping:
                            rec.note = f"page's mapping is {info.mapping:#x}"
                        elif not info.index <= e.index < info.index + (1 << max(info.order,
                                                                                 e.order)):
                            rec.note = f"page's index is {info.index}"
                    except READ_ERRORS as err:
                        rec.note = f"not a struct page: {one_line(err)}"
                elif e.kind == "value":
                    rec.kind = value_kind
                    if value_kind == "dax":
                        d = decode(e.index, e.order, e.entry >> 1)
                        rec.pfn = d.pfn
                        rec.note = " ".join(n for n, on in (("locked", d.locked), ("pmd", d.pmd),
                                                            ("zero", d.zero), ("empty", d.empty))
                                            if on) or None
                out.records.append(rec)
        except READ_ERRORS as e:
            out.unreadable.append(f"i_pages of {mapping:#x}: {one_line(e)}")
            out.status = 2
    return out


@dataclass
class DaxRecord:
    """One fsdax entry: its lock state and the tasks waiting on it."""

    index: int
    order: int
    pfn: int = hex_field()
    locked: bool = False
    pmd: bool = False
    zero: bool = False
    empty: bool = False
    waiters: list[str] = field(default_factory=list)  #: "pid (comm)"
    value: int = hex_field(0)  #: xa_to_value(entry)
    mapping: int = detail_field(0, fmt="hex")


@mm_command(
    "dax", "fsdax entries of a file: lock state, PMD, zero, empty, pfn, and the tasks "
    "waiting on each",
    arguments=(_TARGET,),
    examples=("dax /mnt/dax/pmd_file", "dax 13", "findings --check dax-entries | dax"),
    accepts=("mapping",), completes=("path",),
)
def _dax(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    prog = ws.prog
    mappings = _targets(ws, args, records_in, "dax")
    out = Output("", "dax-entry")
    problems: list[str] = []
    try:
        waiters = dax_waiters(prog, problems)
    except LookupError:
        waiters = []
        out.notes.append("this kernel has no fsdax wait table (CONFIG_FS_DAX off)")
    except READ_ERRORS as e:
        waiters = []
        problems.append(f"DAX wait table: {one_line(e)}")
    for mapping in mappings:
        try:
            m, name, value_kind = _mapping_info(ws, mapping)
            out.title = f"DAX entries of {name} (address_space {mapping:#x})"
            if value_kind != "dax":
                out.notes.append(f"{name} is not a DAX inode (S_DAX clear)")
            xa = m.i_pages.address_of_().value_()
            for e in xa_entries(m.i_pages.address_of_()):
                if e.kind != "value":
                    continue
                d = decode(e.index, e.order, e.entry >> 1)
                who = [f"{w.pid} ({w.comm})" for w in waiters
                       if w.xa == xa and d.index <= w.index < d.index + (1 << d.order)]
                out.records.append(DaxRecord(d.index, d.order, d.pfn, d.locked, d.pmd, d.zero,
                                             d.empty, who, d.value, mapping))
            stray = [w for w in waiters if w.xa == xa and not any(
                r.index <= w.index < r.index + (1 << r.order) for r in out.records
                if r.mapping == mapping)]
            for w in stray:
                out.notes.append(f"pid {w.pid} ({w.comm}) waits on index {w.index}, which has "
                                 f"no entry")
        except (drgn.FaultError, *READ_ERRORS) as e:
            out.unreadable.append(f"i_pages of {mapping:#x}: {one_line(e)}")
    out.unreadable += problems
    if out.unreadable:
        out.status = 2
    return out
