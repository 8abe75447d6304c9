"""fsdax entries in i_pages, and the tasks waiting on them (Linux 4.20+).

fs/dax.c keeps its entry layout in ``#define``s, which debug info does not
carry: bit 0 DAX_LOCKED, bit 1 DAX_PMD, bit 2 DAX_ZERO_PAGE, bit 3 DAX_EMPTY,
the pfn above DAX_SHIFT (4), all inside an XArray value entry.
:func:`verify_layout` checks that layout against the kernel at hand: for a
plain DAX entry, the struct page of the decoded pfn must name the same
mapping and index (true since 4.19).  Waiters sleep on fs/dax.c's static
``wait_table`` in ``struct wait_exceptional_entry_queue``, whose key names
the XArray and the entry's first index.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import drgn
from drgn import Object, container_of

from .dcache import cached_inodes
from .page import page_info
from .tasks import task_comm, task_state
from .walk import list_entries
from .xarray import xa_entries

__all__ = ("DaxEntry", "DaxWaiter", "dax_entries", "dax_inodes", "dax_waiters", "verify_layout")

DAX_LOCKED, DAX_PMD, DAX_ZERO_PAGE, DAX_EMPTY = 1, 2, 4, 8
DAX_SHIFT = 4
S_DAX = 1 << 13  # include/linux/fs.h, with CONFIG_FS_DAX


class DaxEntry(NamedTuple):
    """One decoded DAX value entry."""

    index: int  #: first file page index it covers
    order: int  #: 9 for a 2 MiB PMD entry with 4 KiB pages
    value: int  #: xa_to_value(entry)
    pfn: int
    locked: bool
    pmd: bool
    zero: bool
    empty: bool


def decode(index: int, order: int, value: int) -> DaxEntry:
    return DaxEntry(index, order, value, value >> DAX_SHIFT, bool(value & DAX_LOCKED),
                    bool(value & DAX_PMD), bool(value & DAX_ZERO_PAGE), bool(value & DAX_EMPTY))


def dax_entries(mapping: Object) -> Iterator[tuple[DaxEntry | None, int]]:
    """Each i_pages entry as ``(DaxEntry, raw)``; non-value entries give ``(None, raw)``.

    :param mapping: ``struct address_space *``
    """
    for e in xa_entries(mapping.i_pages.address_of_()):
        if e.kind == "value":
            yield decode(e.index, e.order, e.entry >> 1), e.entry
        else:
            yield None, e.entry


def dax_inodes(prog: drgn.Program, problems: list[str]) -> Iterator[Object]:
    """Inodes with S_DAX set, over every super block (see
    :func:`~.dcache.cached_inodes`)."""
    for inode in cached_inodes(prog, problems):
        try:
            dax = inode.i_flags.value_() & S_DAX
        except drgn.FaultError as e:
            problems.append(f"inode {inode.value_():#x}: {e}")
            continue
        if dax:
            yield inode


def verify_layout(prog: drgn.Program, mapping: Object,
                  entries: list[DaxEntry]) -> tuple[int, int, int]:
    """Check the assumed bit layout on plain entries of one mapping.

    :returns: ``(agreeing, disagreeing, unreadable)`` counts of plain (not
        zero, not empty) entries, by whether their page's mapping and index
        match, or the struct page could not be read.
    """
    good = bad = unreadable = 0
    for e in entries:
        if e.zero or e.empty:
            continue
        try:
            info = page_info(prog, e.pfn)
        except (drgn.FaultError, ValueError):
            unreadable += 1
            continue
        if info.mapping == mapping.value_() and info.index == e.index:
            good += 1
        else:
            bad += 1
    return good, bad, unreadable


class DaxWaiter(NamedTuple):
    """A task queued on the DAX wait table."""

    pid: int
    comm: str
    state: int
    xa: int  #: the ``struct xarray *`` of the awaited entry
    index: int  #: first index of the awaited entry
    bucket: int  #: wait_table slot


def dax_waiters(prog: drgn.Program, problems: list[str] | None = None) -> list[DaxWaiter]:
    """Every task sleeping on fs/dax.c's wait_table; a waiter that cannot be
    read is described in ``problems``.

    :raises LookupError: if the kernel has no fsdax wait table.
    """
    table = prog.object("wait_table", filename="fs/dax.c")
    out = []
    for bucket in range(len(table)):
        head = table[bucket].head.address_of_()
        if head.next.value_() == head.value_():
            continue
        for wq in list_entries("struct wait_queue_entry", head, "entry"):
            try:
                ewait = container_of(wq, "struct wait_exceptional_entry_queue", "wait")
                task = Object(prog, "struct task_struct *", wq.private.value_())
                out.append(DaxWaiter(task.pid.value_(), task_comm(task), task_state(task),
                                     ewait.key.xa.value_(), ewait.key.entry_start.value_(),
                                     bucket))
            except drgn.FaultError as e:
                if problems is not None:
                    problems.append(f"DAX waiter {wq.value_():#x}: {e}")
    return out
