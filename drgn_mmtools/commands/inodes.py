"""``inode``: an inode, its address_space and a summary of its page cache."""

from __future__ import annotations

import argparse
import stat
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from drgn import Object
from drgn.commands import argument

from ..kernel.dax import S_DAX
from ..kernel.fs import inode_full_path
from ..kernel.probe import READ_ERRORS, one_line
from ..kernel.symbols import symbolize
from ..kernel.xarray import xa_entries
from ..report.output import Output, hex_field
from .registry import fail, mm_command, pluck
from .resolve import mapping_of
from .workspace import Workspace

__all__ = ("InodeRecord",)

#: Page-cache entries listed in the record (``xa`` lists them all).
LISTED = 32


@dataclass
class InodeRecord:
    """An inode and its page cache; any kernel."""

    ino: int
    path: str | None
    fs: str | None
    type: str  #: regular, directory, block device, ...
    size: int
    inode: int = hex_field()  #: struct inode *
    mapping: int = hex_field(0)  #: struct address_space * (i_mapping)
    a_ops: str | None = None  #: address_space operations, named
    nrpages: int = 0
    dax: bool = False
    entries: dict[str, int] = field(default_factory=dict)  #: i_pages entries by kind
    pages: list[str] = field(default_factory=list)  #: "index: pfn" of the first pages


_TYPES = ((stat.S_ISREG, "regular"), (stat.S_ISDIR, "directory"), (stat.S_ISBLK, "block device"),
          (stat.S_ISCHR, "character device"), (stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"),
          (stat.S_ISSOCK, "socket"))


@mm_command(
    "inode", "an inode and its address_space: type, size, a_ops, nrpages, DAX, and its "
    "page cache by entry kind",
    arguments=(argument("target", nargs="?", metavar="PATH|INO|ADDR",
                        help="an absolute path in the dentry cache, an inode number, or an "
                             "inode or address_space address (0x...)"),),
    examples=("inode /tmp/hwp/shmem_file", "inode 5", "findings | inode"),
    accepts=("mapping", "page_mapping"), completes=("path",),
)
def _inode(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    from drgn.helpers.linux.mm import page_to_pfn

    prog = ws.prog
    mappings = []
    if args.target is not None:
        mappings.append(mapping_of(ws, args.target))
    mappings += [m for m in (pluck(r, "mapping", "page_mapping") for r in records_in or ()) if m]
    if not mappings:
        raise fail("inode: give a PATH, INO or ADDR, or pipe records that have a mapping")
    out = Output("", "inode", layout="detail")
    for mapping in dict.fromkeys(mappings):
        try:
            m = Object(prog, "struct address_space *", mapping)
            inode = m.host.read_()
            mode = inode.i_mode.value_()
            kind = next((name for test, name in _TYPES if test(mode)), f"mode {mode:#o}")
            try:
                path = inode_full_path(inode)
            except READ_ERRORS:
                path = None
            ops = m.a_ops.value_()
            rec = InodeRecord(inode.i_ino.value_(), path,
                              inode.i_sb.s_type.name.string_().decode(errors="replace"), kind,
                              inode.i_size.value_(), inode.value_(), mapping,
                              str(symbolize(prog, ops)) if ops else None, m.nrpages.value_(),
                              bool(inode.i_flags.value_() & S_DAX))
            kinds: Counter = Counter()
            for e in xa_entries(m.i_pages.address_of_()):
                kinds[e.kind if e.kind != "pointer" else "page"] += 1
                if e.kind == "pointer" and len(rec.pages) < LISTED:
                    try:
                        pfn = page_to_pfn(Object(prog, "struct page *", e.entry)).value_()
                        rec.pages.append(f"{e.index}: pfn {pfn:#x}")
                    except READ_ERRORS:
                        rec.pages.append(f"{e.index}: {e.entry:#x}")
            rec.entries = dict(kinds)
            if sum(kinds.values()) > LISTED:
                out.notes.append(f"xa {mapping:#x} lists every entry")
            out.records.append(rec)
        except READ_ERRORS as e:
            out.unreadable.append(f"inode of address_space {mapping:#x}: {one_line(e)}")
            out.status = 2
    return out
