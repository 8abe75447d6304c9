"""fault-retry: tasks stuck re-entering a page fault.

In a dump, a runnable (or on-CPU) task whose kernel stack is inside the fault
path (``handle_mm_fault`` down to ``do_wp_page``, ``->page_mkwrite`` or
``->fault``) is reported with its fault address, VMA, the handler symbols and
their module, and the mapping mismatch at that address if there is one.  A
single dump cannot show a loop, so without a mismatch it is a warning.

Live, the fault counters of runnable tasks are sampled over an interval; a
task whose counters climb in every sample at the minimum rate or faster is
reported with the rate.
"""

from __future__ import annotations

import time

import drgn
from drgn.helpers.linux.pid import find_task, for_each_task

from . import CheckSpec
from .mapping_mismatch import mismatches, vma_evidence
from ..context import Context, MmMap
from ..findings import CheckResult
from ..helpers.vma import VmaInfo
from ..helpers.tasks import TASK_RUNNING, Frame, on_cpu, task_comm, task_frames, task_state

NAME = "fault-retry"

#: Frames that put a task inside the page-fault path.
FAULT_ENTRY = {"handle_mm_fault", "__handle_mm_fault"}
#: Frames of the fault path whose ``vmf`` local names the fault.
VMF_FRAMES = ("do_page_mkwrite", "wp_page_shared", "do_wp_page", "__do_fault",
              "do_shared_fault", "do_read_fault", "do_fault", "handle_pte_fault")
#: Frames that show the task is in a handler of the VMA, or about to call one.
HANDLER_CALLERS = {"do_page_mkwrite", "__do_fault", "do_wp_page", "wp_page_shared",
                   "do_shared_fault", "do_read_fault", "do_cow_fault"}


def fault_address(frames: list[Frame]) -> int | None:
    """The faulting address, from a ``vmf`` or ``address`` local if DWARF has it."""
    for f in frames:
        if f.frame is None:
            continue
        if f.name in VMF_FRAMES:
            try:
                return f.frame["vmf"].address.value_()
            except (KeyError, LookupError, drgn.ObjectAbsentError, drgn.FaultError):
                pass
        if f.name in FAULT_ENTRY:
            try:
                return f.frame["address"].value_()
            except (KeyError, LookupError, drgn.ObjectAbsentError, drgn.FaultError):
                pass
    return None


def mm_of(ctx: Context, pid: int) -> MmMap | None:
    for mm in ctx.mm_maps:
        if pid in mm.users.pids:
            return mm
    return None


def describe(ctx: Context, pid: int, address: int | None) -> tuple[dict, VmaInfo | None]:
    """Evidence about the fault address of pid (VMA, handlers, mapping
    mismatch), and the VMA."""
    ev: dict = {"address": address}
    mm = mm_of(ctx, pid)
    if mm is None:
        return ev, None
    if address is None:
        # No fault address in the debug info: a mismatch in this mm names it.
        found = mismatches(ctx, mm)
        if len(found) == 1:
            address = found[0][0].vaddr
            ev["address"] = address
            ev["address_from"] = "mapping-mismatch"
    if address is None:
        return ev, None
    vma = mm.vmas.at(address)
    if vma is None:
        return ev, None
    ev.update(vma_evidence(vma))
    ev["file"] = vma.file
    ev["inode"] = vma.inode
    for leaf, v, kind in mismatches(ctx, mm):
        if leaf.vaddr <= address < leaf.vaddr + leaf.size:
            page = ctx.page(leaf.pfn)
            ev.update(pfn=leaf.pfn, mismatch=kind)
            o = ctx.owner(page.mapping) if page is not None and page.mapping else None
            if o is not None:
                ev.update(page_file=o.path, page_inode=o.inode)
    return ev, vma


def counters(task) -> int:
    return task.min_flt.value_() + task.maj_flt.value_()


def run_dump(ctx: Context, result: CheckResult) -> None:
    prog = ctx.prog
    for task in for_each_task(prog):
        if not task.mm:
            continue
        state = task_state(task)
        if state != TASK_RUNNING and not on_cpu(task):
            continue
        pid, comm = task.pid.value_(), task_comm(task)
        try:
            frames = task_frames(prog, task)
        except (ValueError, drgn.FaultError) as e:
            result.unreadable.append(f"stack of pid {pid} ({comm}): {e}")
            continue
        names = [f.name for f in frames]
        if not FAULT_ENTRY & set(names):
            continue
        ev, vma = describe(ctx, pid, fault_address(frames))
        handlers = {vma.page_mkwrite.name, vma.fault.name} - {None} if vma else set()
        in_handler = [f for f in frames if f.name in handlers]
        if not in_handler and not HANDLER_CALLERS & set(names):
            continue
        where = (str(in_handler[0].symbol) if in_handler
                 else next(n for n in names if n in HANDLER_CALLERS))
        ev.update(pid=pid, comm=comm, state=state, on_cpu=on_cpu(task),
                  min_flt=task.min_flt.value_(), maj_flt=task.maj_flt.value_(),
                  stack=[str(f.symbol) for f in frames], in_handler=where)
        severity = "error" if ev.get("mismatch") else "warning"
        addr = ev.get("address")
        summary = (f"pid {pid} ({comm}) is {'on CPU' if ev['on_cpu'] else 'runnable'} in the "
                   f"page-fault path at {where}"
                   + (f", address {addr:#x}" if addr is not None else "")
                   + (f" in {ev['vma_file']}" if ev.get("vma_file") else "")
                   + (f"; the page belongs to {ev['page_file']}" if ev.get("page_file") else ""))
        result.add(severity, summary, **ev)


def run_live(ctx: Context, result: CheckResult) -> None:
    prog, opt = ctx.prog, ctx.options
    samples: dict[int, list[tuple[float, int]]] = {}
    for i in range(opt.samples):
        now = time.monotonic()
        for task in for_each_task(prog):
            if not task.mm:
                continue
            try:
                samples.setdefault(task.pid.value_(), []).append((now, counters(task)))
            except drgn.FaultError:
                continue
        if i + 1 < opt.samples:
            time.sleep(opt.sample_seconds)
    for pid, s in sorted(samples.items()):
        if len(s) < 2:
            continue
        deltas = [b[1] - a[1] for a, b in zip(s, s[1:])]
        rate = (s[-1][1] - s[0][1]) / max(1e-9, s[-1][0] - s[0][0])
        if min(deltas) <= 0 or rate < opt.min_fault_rate:
            continue
        task = find_task(prog, pid)
        if not task or task_state(task) != TASK_RUNNING:
            continue
        comm = task_comm(task)
        ev, _ = describe(ctx, pid, None)
        ev.update(pid=pid, comm=comm, fault_rate=round(rate, 1), fault_samples=[c for _, c in s],
                  interval_seconds=opt.sample_seconds)
        severity = "error" if ev.get("mismatch") else "warning"
        result.add(severity, f"pid {pid} ({comm}) takes {rate:.0f} page faults/s without "
                   f"sleeping" + (f"; {ev['vma_file']} maps a page of {ev['page_file']}"
                                  if ev.get("page_file") else ""), **ev)


def run(ctx: Context) -> CheckResult:
    result = CheckResult(NAME)
    if ctx.options.live:
        run_live(ctx, result)
    else:
        run_dump(ctx, result)
    return result


SPEC = CheckSpec(NAME, "tasks stuck re-entering ->page_mkwrite or ->fault", run)
