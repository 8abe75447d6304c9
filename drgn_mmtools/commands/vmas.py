"""``vma``: the VMAs of a task, with flags, file and named vm_ops."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from drgn.commands import argument

from ..kernel.probe import READ_ERRORS, one_line
from ..kernel.tasks import task_comm
from ..kernel.vma import VmaInfo, mm_vmas
from ..report.output import Output, detail_field, hex_field
from .registry import mm_command
from .resolve import number, pids_of, task_of
from .workspace import Workspace

__all__ = ("VmaRecord", "vma_flags_text")

# include/linux/mm.h: VM_READ, VM_WRITE, VM_EXEC, VM_SHARED and friends.
_VM_NAMES = ((0x1, "read"), (0x2, "write"), (0x4, "exec"), (0x8, "shared"),
             (0x100, "growsdown"), (0x400, "pfnmap"), (0x2000, "locked"), (0x4000, "io"),
             (0x20000, "dontcopy"), (0x40000, "dontexpand"), (0x80000, "lockonfault"),
             (0x100000, "account"), (0x200000, "noreserve"), (0x400000, "hugetlb"),
             (0x1000000, "hugepage"), (0x2000000, "nohugepage"), (0x4000000, "mergeable"))


def vma_flags_text(flags: int) -> str:
    """``rw-s`` as /proc/PID/maps prints it."""
    return ("r" if flags & 1 else "-") + ("w" if flags & 2 else "-") + \
        ("x" if flags & 4 else "-") + ("s" if flags & 8 else "p")


@dataclass
class VmaRecord:
    """One VMA of one task; any kernel (maple tree since 6.1, rbtree before)."""

    pid: int
    comm: str
    start: int = hex_field()
    end: int = hex_field()
    perms: str = ""  #: rwxs / rwxp
    pgoff: int = hex_field(0)
    file: str | None = None
    vm_ops: str | None = None  #: symbol [module]
    fault: str | None = None
    page_mkwrite: str | None = None
    vma: int = detail_field(0, fmt="hex")  #: struct vm_area_struct *
    flags: int = detail_field(0, fmt="hex")
    flag_names: list[str] = detail_field(None)
    inode: int | None = detail_field(None)
    mapping: int = detail_field(0, fmt="hex")
    page_cache: bool = detail_field(False)


def vma_record(pid: int, comm: str, v: VmaInfo) -> VmaRecord:
    def name(ref) -> str | None:
        return str(ref) if ref.address else None
    return VmaRecord(pid, comm, v.start, v.end, vma_flags_text(v.flags), v.pgoff, v.file,
                     name(v.vm_ops), name(v.fault), name(v.page_mkwrite), v.address, v.flags,
                     [n for bit, n in _VM_NAMES if v.flags & bit], v.inode, v.mapping,
                     v.page_cache)


@mm_command(
    "vma", "list a task's VMAs: range, permissions, file, vm_ops and handlers (named, with "
    "module)",
    arguments=(
        argument("pids", nargs="*", metavar="PID", help="task ids"),
        argument("--address", "-a", metavar="ADDR",
                 help="only the VMA that contains this address"),
    ),
    examples=("vma 42", "vma 42 --address 0x7f0000001000", "tasks --stuck | vma"),
    accepts=("pid",), completes=("pid",),
)
def _vma(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    address = number(args.address, "ADDR") if args.address else None
    out = Output("", "vma")
    for pid in pids_of("vma", args.pids, records_in):
        try:
            task = task_of(ws, pid)
            mm = task.mm.read_()
            if not mm:
                out.notes.append(f"pid {pid} is a kernel thread: no VMAs")
                continue
            vmas, problem = mm_vmas(mm)
            comm = task_comm(task)
        except READ_ERRORS as e:
            out.unreadable.append(f"VMAs of pid {pid}: {one_line(e)}")
            continue
        if problem:
            out.unreadable.append(f"VMAs of pid {pid}: {problem}")
        for v in vmas:
            if address is None or v.start <= address < v.end:
                out.records.append(vma_record(pid, comm, v))
    if out.unreadable:
        out.status = 2
    return out
