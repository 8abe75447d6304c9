"""dax-entries: lock states of fsdax entries in i_pages, and their waiters.

Every DAX entry of every S_DAX inode is a record (locked, PMD, zero, empty,
pfn).  A locked entry with tasks waiting on it is an error: nothing will
wake them if the lock was stored by an unlock (the v4.20 regression).  A
locked entry nobody waits on is an ``info`` record: every DAX fault holds
one for a moment.  A task asleep on the DAX wait table for an entry that is
not locked missed its wake-up (a warning: an unlocker clears the bit just
before it wakes the waiters).
"""

from __future__ import annotations

import drgn

from .base import Check
from ..analysis.session import Session
from ..report.findings import CheckResult
from ..kernel.dax import dax_entries, dax_inodes, dax_waiters, verify_layout
from ..kernel.fs import mapping_owner
from .rules import Rule

NAME = "dax-entries"


def run(ctx: Session, result: CheckResult | None = None) -> CheckResult:
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
            row = {"mapping_inode": owner.inode, "mapping_file": owner.path, "fs": owner.fstype,
                   "index": e.index,
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
            if not ws:
                result.record("locked_entry", "locked-idle", **row)
                continue
            result.add("error", f"DAX {kind} entry of {owner.path} (ino {owner.inode}) at index "
                       f"{e.index} is locked{who}", rule="locked-with-waiters", **row,
                       pid=ws[0].pid, comm=ws[0].comm,
                       waiters=[{"pid": w.pid, "comm": w.comm, "state": w.state} for w in ws])
    for key, ws in by_key.items():
        if key in matched:
            continue
        for w in ws:
            result.add("warning", f"pid {w.pid} ({w.comm}) waits on a DAX entry (xarray "
                       f"{w.xa:#x}, index {w.index}) that is not locked: a lost wake-up",
                       rule="lost-wakeup", pid=w.pid, comm=w.comm, index=w.index, xarray=w.xa)
    result.notes.append(f"DAX entry layout (fs/dax.c since 4.20) checked on {agree + disagree} "
                        f"entries: {agree} agree with their struct page, {disagree} do not")
    if unread:
        result.unreadable.append(f"struct pages of {unread} DAX entries: their layout is "
                                 f"unverified")
    if disagree:
        result.unreadable.append(f"{disagree} DAX entries do not match their struct page: "
                                 f"the bit layout may differ on this kernel")
    return result


RULES = (
    Rule("locked-with-waiters", "error", "a locked DAX entry with tasks asleep on it in the "
         "DAX wait table", kernels="4.20+ entry layout", fires=("dax_lock:locked",),
         legit=("dax_lock (unlocked entries)",)),
    Rule("lost-wakeup", "warning", "a task asleep in the DAX wait table for an entry that is "
         "not locked", fires=("dax_lock:lost-wakeup",), legit=("dax_lock:locked",)),
    Rule("locked-idle", "info", "a locked DAX entry nobody waits on (every DAX fault holds "
         "one for a moment)", fires=("dax_lock:locked-idle",)),
)


CHECK = Check(
    name=NAME,
    description="locked / PMD / zero / empty fsdax entries and their waiters",
    run=run,
    rules=RULES,
    order=40,
)
