"""Turn what a user types (or what a pipe carries) into kernel objects:
numbers, tasks, pages and address_spaces.  Every failure is a one-line
:class:`~drgn.commands.CommandError`."""

from __future__ import annotations

import drgn
from drgn import Object
from drgn.helpers.linux.mm import page_to_pfn, virt_to_pfn
from drgn.helpers.linux.pid import find_task

from ..kernel.dcache import inodes_by_number, lookup_inode
from ..kernel.probe import READ_ERRORS, one_line
from .registry import fail, pluck
from .workspace import Workspace

__all__ = ("number", "pids_of", "task_of", "pfn_of", "mapping_of")


def number(text: str | int, what: str) -> int:
    """An integer: decimal, or hexadecimal with ``0x``."""
    if isinstance(text, int):
        return text
    try:
        return int(text, 0)
    except ValueError:
        try:
            return int(text, 16)
        except ValueError:
            raise fail(f"{what} {text!r}: not a number") from None


def pids_of(command: str, given: list[str], records_in: list | None) -> list[int]:
    """The pids given on the line, then those of piped records, each once.

    :raises CommandError: when there are none.
    """
    pids = [number(p, "PID") for p in given]
    pids += [p for p in (pluck(r, "pid") for r in records_in or ()) if p is not None]
    if not pids:
        raise fail(f"{command}: give a PID, or pipe records that have a pid")
    return list(dict.fromkeys(pids))


def task_of(ws: Workspace, pid: int) -> Object:
    """``struct task_struct *`` of a pid in the initial namespace."""
    try:
        task = find_task(ws.prog, pid)
    except READ_ERRORS as e:
        raise fail(f"pid {pid}: the pid hash cannot be read: {one_line(e)}") from None
    if not task:
        raise fail(f"pid {pid}: no such task")
    return task


def pfn_of(ws: Workspace, value: int, phys: bool = False) -> tuple[int, str]:
    """The pfn a number stands for, and what it was taken as: a physical
    address (``phys``), a pfn (below the end of RAM), the address of a
    ``struct page``, or a direct-map kernel address."""
    shift = ws.session.page_shift
    if phys:
        return value >> shift, "physical address"
    ranges = ws.session.pfn_ranges or []
    end = ranges[-1][1] if ranges else 1 << 40
    if value < end:
        return value, "pfn"
    prog = ws.prog
    try:
        size = prog.type("struct page").size
        pfn = page_to_pfn(Object(prog, "struct page *", value)).value_()
        if ws.session.pfn_valid(pfn) and (value - _vmemmap_start(ws)) % size == 0:
            return pfn, "struct page"
    except (drgn.FaultError, LookupError, ValueError, OverflowError):
        pass
    try:
        pfn = virt_to_pfn(Object(prog, "void *", value)).value_()
        if ws.session.pfn_valid(pfn):
            return pfn, "kernel virtual address"
    except Exception:  # noqa: BLE001 - drgn raises a bare Exception without a direct map
        pass
    raise fail(f"{value:#x}: neither a pfn, a struct page nor a direct-map address "
               f"(give --phys for a physical address)")


def _vmemmap_start(ws: Workspace) -> int:
    from drgn.helpers.linux.mm import pfn_to_page
    return pfn_to_page(ws.prog, 0).value_()


def mapping_of(ws: Workspace, text: str | int) -> int:
    """``struct address_space *`` named by an address (``0x...``: an
    address_space, or an inode whose ``i_mapping`` it is), an inode number,
    or an absolute path in the dentry cache."""
    prog = ws.prog
    if isinstance(text, str) and text.startswith("/"):
        try:
            inode = lookup_inode(prog, text)
        except LookupError as e:
            raise fail(f"{text}: not in the dentry cache ({one_line(e)})") from None
        except READ_ERRORS as e:
            raise fail(f"{text}: the dentry cache cannot be read: {one_line(e)}") from None
        return inode.i_mapping.value_()
    if isinstance(text, str) and not text.lower().startswith("0x"):
        ino = number(text, "inode number")
        problems: list[str] = []
        found = list(inodes_by_number(prog, ino, problems))
        if not found:
            raise fail(f"no cached inode numbered {ino}" +
                       (f" ({problems[0]})" if problems else ""))
        if len(found) > 1:
            where = ", ".join(f"{i.value_():#x} ({i.i_sb.s_type.name.string_().decode()})"
                              for i in found[:4])
            raise fail(f"{len(found)} inodes numbered {ino}: {where}; give one by address")
        return found[0].i_mapping.value_()
    addr = number(text, "address")
    try:
        host = Object(prog, "struct address_space *", addr).host.read_()
        if host and host.i_mapping.value_() == addr:
            return addr
        inode = Object(prog, "struct inode *", addr)
        if inode.i_mapping.value_() and inode.i_mapping.host.value_() == addr:
            return inode.i_mapping.value_()
    except READ_ERRORS as e:
        raise fail(f"{addr:#x}: cannot be read: {one_line(e)}") from None
    raise fail(f"{addr:#x}: neither an address_space nor an inode")
