"""dax-entries: lock states of fsdax entries in i_pages, and their waiters.

Every DAX entry of every S_DAX inode is a record (locked, PMD, zero, empty,
pfn).  A locked entry is a finding: an error when tasks wait on it, since
nothing will wake them if the lock was stored by an unlock (the v4.20
regression), a warning otherwise.  Tasks on the DAX wait table whose entry is
not locked are reported too.
"""

from __future__ import annotations

import drgn

from . import CheckSpec
from ..context import Context
from ..findings import CheckResult
from ..helpers.dax import dax_entries, dax_inodes, dax_waiters, verify_layout
from ..helpers.fs import mapping_owner

NAME = "dax-entries"


def run(ctx: Context, result: CheckResult | None = None) -> CheckResult:
    prog = ctx.prog
    result = result or CheckResult(NAME)
    try:
        waiters = dax_waiters(prog, result.unreadable)
    except LookupError:
        result.notes.append("kernel has no fsdax wait table (CONFIG_FS_DAX off)")
        return result
    except drgn.FaultError as e:
        waiters = []
        result.unreadable.append(f"DAX wait table: {e}; waiters are unknown")
    by_key: dict[tuple[int, int], list] = {}
    for w in waiters:
        by_key.setdefault((w.xa, w.index), []).append(w)
    matched: set[tuple[int, int]] = set()
    agree = disagree = unread = 0
    for inode in dax_inodes(prog, result.unreadable):
        try:
            mapping = inode.i_mapping
            entries = [e for e, _ in dax_entries(mapping) if e is not None]
            owner = mapping_owner(prog, mapping.value_())
        except drgn.FaultError as e:
            result.unreadable.append(f"i_pages of inode {inode.value_():#x}: {e}")
            continue
        good, bad, lost = verify_layout(prog, mapping, entries)
        agree, disagree, unread = agree + good, disagree + bad, unread + lost
        xa = mapping.i_pages.address_of_().value_()
        for e in entries:
            key = (xa, e.index)
            ws = by_key.get(key, [])
            row = {"inode": owner.inode, "file": owner.path, "fs": owner.fstype, "index": e.index,
                   "order": e.order, "value": e.value, "pfn": e.pfn, "locked": e.locked,
                   "pmd": e.pmd, "zero": e.zero, "empty": e.empty,
                   "waiter_pids": sorted(w.pid for w in ws)}
            result.records.append(row)
            if not e.locked:
                continue
            matched.add(key)
            kind = "PMD" if e.pmd else "zero-page" if e.zero else "empty" if e.empty else "PTE"
            who = (f"; {len(ws)} task(s) wait on it: "
                   + ", ".join(f"{w.pid} ({w.comm})" for w in ws)) if ws else ""
            result.add("error" if ws else "warning",
                       f"DAX {kind} entry of {owner.path} (ino {owner.inode}) at index "
                       f"{e.index} is locked{who}", **row,
                       waiters=[{"pid": w.pid, "comm": w.comm, "state": w.state} for w in ws])
    for key, ws in by_key.items():
        if key in matched:
            continue
        for w in ws:
            result.add("warning", f"pid {w.pid} ({w.comm}) waits on a DAX entry (xarray "
                       f"{w.xa:#x}, index {w.index}) that is not locked",
                       pid=w.pid, comm=w.comm, index=w.index, xarray=w.xa)
    result.notes.append(f"DAX entry layout (fs/dax.c since 4.20) checked on {agree + disagree} "
                        f"entries: {agree} agree with their struct page, {disagree} do not")
    if unread:
        result.unreadable.append(f"struct pages of {unread} DAX entries: their layout is "
                                 f"unverified")
    if disagree:
        result.unreadable.append(f"{disagree} DAX entries do not match their struct page: "
                                 f"the bit layout may differ on this kernel")
    return result


SPEC = CheckSpec(NAME, "locked / PMD / zero / empty fsdax entries and their waiters", run)
