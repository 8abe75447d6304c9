"""fault-retry: tasks livelocked re-entering a page fault.

A task whose ``->page_mkwrite`` (or ``->fault``) returns ``VM_FAULT_NOPAGE``
or ``VM_FAULT_RETRY`` forever spends its time everywhere in the loop: user
mode on the store, exception entry, the fault path, the handler, the way
out.  A dump freezes it at any of those, so the stack's shape proves
nothing.  The check convicts from evidence that holds wherever it was
caught (any kernel, x86_64 and aarch64):

storm
    runnable or on a CPU, with ``min_flt + maj_flt`` of at least
    :data:`STORM_MIN_FAULTS`, at least :data:`STORM_FAULTS_PER_PAGE` per
    resident page (from the page-table walk), at least
    :data:`STORM_FAULTS_PER_SWITCH` per voluntary context switch (``nvcsw``)
    and at least :data:`STORM_FAULTS_PER_CPU_SECOND` per second of CPU time
    (``se.sum_exec_runtime``).
stuck page
    a present, write-protected PTE in a ``VM_SHARED | VM_WRITE`` VMA whose
    ``vm_ops`` has ``->page_mkwrite``: a write there must go through the
    handler (at the fault address when the stack names it).  It is
    *refused* when mapping-mismatch reports that page (another file's page,
    or a truncated one): the handler's ``page->mapping`` re-check can then
    never pass.
progress
    proof that the task's writes complete: its last entry into the kernel
    was a system call (``task_pt_regs``: a looping task only ever enters by
    page faults and interrupts); the page at the fault address is mapped
    writable; a page of the same VMA (of any shared writable VMA with
    ``->page_mkwrite`` when the address is unknown) is mapped writable and
    dirty (a write fault there completed); or that VMA's file was modified
    at most
    :data:`RECENT_MTIME_SECONDS` before the dump (``->page_mkwrite`` of a
    successful write fault calls ``file_update_time``).  A refused page
    overrides progress: its handler can never let the write through.

Grades (:data:`RULES`): **error** ``refused-loop`` when the storm and a
refused page agree, or the stack shows the task in the fault path with a
refused page at its fault address (a handler that returns
``VM_FAULT_RETRY`` forever loops inside the architecture's fault handler,
and since 5.6 such faults are never counted in ``min_flt``); **error**
``stuck-no-progress`` when the storm and a stuck page agree with no
progress; **warning** ``refused-no-storm`` for a refused page without a
storm (the next write will loop).  Everything else, a storm with progress
(a busy writer that msyncs in a loop) or a storm with no stuck page (an
allocator; a ``->fault`` loop leaves no PTE either, but one snapshot cannot
tell them apart), is an ``info`` record (``candidate``) with its evidence.

Every finding carries the position where the dump caught the task, the
fault address and where it came from (a ``vmf`` or ``address`` local of the
fault path, CR2 from QEMU's CPU notes for an on-CPU task of an x86_64 QEMU
dump, the refused page, or the only stuck page), the VMA, its file and handlers named
``symbol [module]`` from debug info or kallsyms (``symbol_source``).

Live, the fault counters of every user task are sampled over an interval;
a task whose counters climb in every sample, at :attr:`Options.min_fault_rate`
or faster, while runnable, is graded with the same stuck-page and progress
evidence, taken at each sample: progress seen in any sample clears it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import drgn
from drgn import Object
from drgn.commands import argument
from drgn.helpers.linux.pid import find_task

from .base import Check
from ..analysis.mismatch import mismatches, vma_evidence
from ..analysis.session import MmMap, Session, leaves_by_vma
from ..report.findings import CheckResult
from ..kernel.pgtable import Leaf, LeafRun, iter_leaves
from ..kernel.fs import file_mtime, kernel_time
from ..kernel.probe import READ_ERRORS
from ..kernel.symbols import modules_without_debug_info
from ..kernel.task_position import last_entry, position
from ..kernel.tasks import TASK_RUNNING, Frame, on_cpu, task_comm, task_frames, task_state
from ..kernel.vma import VM_SHARED, VmaInfo
from ..kernel.walk import all_tasks
from .rules import Rule

NAME = "fault-retry"

VM_WRITE = 0x00000002
STORM_MIN_FAULTS = 10_000
STORM_FAULTS_PER_PAGE = 100
STORM_FAULTS_PER_SWITCH = 1_000
STORM_FAULTS_PER_CPU_SECOND = 1_000
RECENT_MTIME_SECONDS = 0.5

#: Frames of the fault path whose ``vmf`` or ``address`` local is the fault address.
VMF_FRAMES = ("do_page_mkwrite", "wp_page_shared", "do_wp_page", "__do_fault",
              "do_shared_fault", "do_read_fault", "do_cow_fault", "do_fault",
              "handle_pte_fault")
ADDRESS_FRAMES = ("handle_mm_fault", "__handle_mm_fault", "do_user_addr_fault",
                  "do_page_fault", "do_translation_fault", "do_mem_abort")


def fault_address_from_frames(frames: list[Frame]) -> int | None:
    """The faulting address from a ``vmf``, ``address`` or ``far`` local, if
    the debug info has one."""
    for f in frames:
        if f.frame is None:
            continue
        for name in (("vmf",) if f.name in VMF_FRAMES else
                     ("address", "addr", "far") if f.name in ADDRESS_FRAMES else ()):
            try:
                obj = f.frame[name]
                value = (obj.address if name == "vmf" else obj).value_()
            except (KeyError, LookupError, AttributeError, drgn.ObjectAbsentError,
                    drgn.FaultError):
                continue
            if value:
                return value
    return None


def fault_address_from_cr2(ctx: Session, frames: list[Frame], mm: MmMap) -> int | None:
    """CR2 of the CPU an on-CPU task runs on, from the dump's QEMU CPU notes
    (x86_64 dumps written by QEMU), matched to the task by rip and rsp; only
    when it lies in one of the task's VMAs."""
    if ctx.spec is None or ctx.spec.core is None or not frames or frames[0].frame is None:
        return None
    try:
        regs = frames[0].frame.registers()
    except (LookupError, ValueError):
        return None
    for cpu in ctx.qemu_cpu_states:
        if (cpu.rip, cpu.rsp) == (regs.get("rip"), regs.get("rsp")) and mm.vmas.at(cpu.cr2):
            return cpu.cr2
    return None


@dataclass
class Counters:
    """A task's fault counters and what they are measured against."""

    faults: int
    min_flt: int
    maj_flt: int
    nvcsw: int
    nivcsw: int
    cpu_seconds: float | None
    resident_pages: int

    @property
    def storm(self) -> bool:
        per_cpu = (self.faults / self.cpu_seconds if self.cpu_seconds else float("inf"))
        return (self.faults >= STORM_MIN_FAULTS
                and self.faults >= STORM_FAULTS_PER_PAGE * max(1, self.resident_pages)
                and self.faults >= STORM_FAULTS_PER_SWITCH * (self.nvcsw + 1)
                and per_cpu >= STORM_FAULTS_PER_CPU_SECOND)

    def to_json(self) -> dict[str, Any]:
        return {"min_flt": self.min_flt, "maj_flt": self.maj_flt, "nvcsw": self.nvcsw,
                "nivcsw": self.nivcsw,
                "cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 3),
                "resident_pages": self.resident_pages,
                "faults_per_resident_page": round(self.faults / max(1, self.resident_pages)),
                "faults_per_voluntary_switch": round(self.faults / (self.nvcsw + 1)),
                "faults_per_cpu_second": (round(self.faults / self.cpu_seconds)
                                          if self.cpu_seconds else None)}


def counters(task: Object, mm: MmMap | None, page_shift: int) -> Counters:
    """The fault counters of one task; raises drgn.FaultError if unreadable."""
    min_flt, maj_flt = task.min_flt.value_(), task.maj_flt.value_()
    try:
        runtime = task.se.sum_exec_runtime.value_() / 1e9
    except AttributeError:  # no CFS statistics: user plus system time
        try:
            runtime = (task.utime.value_() + task.stime.value_()) / 1e9
        except AttributeError:
            runtime = None
    resident = mm.resident_pages(page_shift) if mm else 0
    return Counters(min_flt + maj_flt, min_flt, maj_flt, task.nvcsw.value_(),
                    task.nivcsw.value_(), runtime, resident)


@dataclass
class PageEvidence:
    """Write-protected shared pages with ``->page_mkwrite`` in one address space."""

    stuck: list[tuple[Leaf, VmaInfo]] = field(default_factory=list)
    refused: list[tuple[Leaf, VmaInfo, str]] = field(default_factory=list)
    written_beside: int = 0  #: writable dirty pages in the VMAs below
    fault_page_writable: bool = False  #: the page at the known fault address is writable
    vmas: list[VmaInfo] = field(default_factory=list)  #: the VMAs the evidence is about


def _mkwrite_vma(vma: VmaInfo | None) -> bool:
    return (vma is not None and vma.flags & (VM_SHARED | VM_WRITE) == VM_SHARED | VM_WRITE
            and vma.page_mkwrite.address != 0)


def _spans(items: list, address: int) -> bool:
    """Whether ``address`` lies between the first and the last address that
    ``items`` (leaves and runs, in address order) map."""
    last = items[-1]
    end = (last.vaddr + (len(last.entries) << last.decoder.page_shift)
           if type(last) is LeafRun else last.vaddr + last.size)
    return items[0].vaddr <= address < end


def page_evidence(ctx: Session, mm: MmMap, address: int | None) -> PageEvidence:
    """Stuck and refused pages of mm, at ``address`` if known, else anywhere.

    The VMAs the progress evidence looks at are the one at ``address`` when
    it is known, else every shared writable VMA with ``->page_mkwrite``.
    """
    ev = PageEvidence()
    refused_at = {leaf.vaddr: kind for leaf, _, kind in mismatches(ctx, mm)
                  if kind in ("other-file", "truncated")}
    if address is not None:
        vma = mm.vmas.at(address)
        vmas = {vma.start: vma} if vma is not None and _mkwrite_vma(vma) else {}
    else:
        vmas = {v.start: v for v in mm.vmas if _mkwrite_vma(v)}
    for vma, items in leaves_by_vma(mm):
        mkwrite = _mkwrite_vma(vma)
        if not mkwrite and (address is None or not _spans(items, address)):
            continue  # only the leaf at the fault address counts here: not in this group
        leaves = list(iter_leaves(items))
        for leaf in leaves:
            at_address = address is not None and leaf.vaddr <= address < leaf.vaddr + leaf.size
            if address is not None and not at_address:
                continue
            if leaf.writable:
                ev.fault_page_writable = at_address
                continue
            if not mkwrite:
                continue
            ev.stuck.append((leaf, vma))
            if leaf.vaddr in refused_at:
                ev.refused.append((leaf, vma, refused_at[leaf.vaddr]))
        if vma is not None and vma.start in vmas:
            ev.written_beside += sum(1 for leaf in leaves if leaf.writable and leaf.dirty)
    ev.vmas = list(vmas.values())
    return ev


def grade(storm: bool, pages: PageEvidence, progress: list[str],
          faulting_refused: bool = False) -> tuple[str, str]:
    """(severity, rule) from the evidence (see :data:`RULES`).

    ``faulting_refused``: the stack shows the task inside the fault path
    with a refused page at its fault address.
    """
    if pages.refused and (storm or faulting_refused):
        return "error", "refused-loop"
    if storm and pages.stuck and not progress:
        return "error", "stuck-no-progress"
    if pages.refused:
        return "warning", "refused-no-storm"
    return "info", "candidate"


def page_progress(ctx: Session, pages: PageEvidence, now: float | None) -> list[str]:
    """Progress that the page tables and the VMAs' files show."""
    progress = []
    if pages.fault_page_writable:
        progress.append("the page at the fault address is mapped writable")
    if pages.written_beside:
        progress.append(f"{pages.written_beside} writable dirty pages in the same VMA")
    if now is not None:
        for vma in pages.vmas:
            mtime = file_mtime(ctx.prog, vma)
            if mtime is not None and 0 <= now - mtime <= RECENT_MTIME_SECONDS:
                progress.append(f"{vma.file} was modified {now - mtime:.3f} s before this reading")
    return progress


def progress_of(ctx: Session, task: Object, pages: PageEvidence,
                now: float | None) -> tuple[list[str], dict[str, Any]]:
    """Progress evidence of a task and its last kernel entry, as JSON."""
    progress = []
    entry = last_entry(task)
    if entry is not None and entry.kind == "syscall":
        progress.append(f"last kernel entry was system call {entry.syscall_nr}")
    progress += page_progress(ctx, pages, now)
    entry_ev = None if entry is None else {"kind": entry.kind, "user_pc": entry.user_pc,
                                           "syscall": entry.syscall_nr}
    return progress, {"last_entry": entry_ev}


def _mm_of(ctx: Session, pid: int) -> MmMap | None:
    """The shared walk of pid's address space; one index for all tasks."""
    return ctx.mm_by_pid.get(pid)


def _describe_address(ctx: Session, mm: MmMap, pages: PageEvidence,
                      address: int | None, source: str | None) -> dict[str, Any]:
    """Fault address, its VMA, handlers and the page's own file."""
    if address is None and pages.refused:
        address, source = pages.refused[0][0].vaddr, "mapping-mismatch"
    elif address is None and len(pages.stuck) == 1:
        address, source = pages.stuck[0][0].vaddr, "stuck-page"
    ev: dict[str, Any] = {"address": address, "address_from": source}
    vma = mm.vmas.at(address) if address is not None else None
    if vma is None:
        return ev
    ev.update(vma_evidence(vma))
    for leaf, _, kind in pages.refused:
        if leaf.vaddr <= address < leaf.vaddr + leaf.size:
            ev.update(pfn=leaf.pfn, mismatch=kind)
            page = ctx.page(leaf.pfn)
            o = ctx.owner(page.mapping) if page is not None and page.mapping else None
            if o is not None:
                ev.update(page_file=o.path, page_inode=o.inode)
    return ev


def _summary(pid: int, comm: str, severity: str, ev: dict[str, Any]) -> str:
    if severity == "error":
        head = "is livelocked in a page fault"
    elif ev["storm"]:
        head = "takes a storm of page faults with no stuck page to explain it"
    else:
        head = "is faulting on a page its handler refuses"
    text = (f"pid {pid} ({comm}) {head}: {ev['faults']} faults over "
            f"{ev['counters']['resident_pages']} resident pages, caught in "
            f"{ev['position']['where']}")
    if ev.get("address") is not None:
        text += f", address {ev['address']:#x}"
    if ev.get("vma_file"):
        text += f" in {ev['vma_file']}"
    if ev.get("page_mkwrite_handler"):
        text += f" (->page_mkwrite {ev['page_mkwrite_handler']})"
    if ev.get("page_file"):
        text += f"; the page belongs to {ev['page_file']}"
    return text


def evaluate(ctx: Session, task: Object) -> tuple[str, str, dict[str, Any]] | None:
    """Grade one user task of a dump: (severity, rule, evidence); None when
    nothing points at a loop."""
    prog = ctx.prog
    pid, comm = task.pid.value_(), task_comm(task)
    mm = _mm_of(ctx, pid)
    if mm is None:
        return None
    c = counters(task, mm, ctx.page_shift)
    storm = c.storm
    probe = page_evidence(ctx, mm, None)
    if not storm and not probe.refused:
        return None
    try:
        frames = task_frames(prog, task)
    except READ_ERRORS:
        frames = []  # no saved registers for its CPU, or an unwindable stack
    address, source = fault_address_from_frames(frames), "stack"
    if address is None and on_cpu(task):
        address, source = fault_address_from_cr2(ctx, frames, mm), "cr2"
    pages = page_evidence(ctx, mm, address) if address is not None else probe
    progress, entry_ev = progress_of(ctx, task, pages, kernel_time(prog))
    ev = _describe_address(ctx, mm, pages, address, source if address is not None else None)
    vma = mm.vmas.at(ev["address"]) if ev.get("address") is not None else None
    handlers = {r.name for r in (vma.page_mkwrite, vma.fault) if r.name} if vma else set()
    pos = position(prog, [f.name for f in frames], [f.pc for f in frames], handlers,
                   on_cpu(task))
    faulting_refused = (address is not None and bool(pages.refused)
                        and pos.where in ("handler", "fault-path"))
    severity, rule = grade(storm, pages, progress, faulting_refused)
    ev.update(
        pid=pid, comm=comm, state=task_state(task), on_cpu=on_cpu(task),
        min_flt=c.min_flt, maj_flt=c.maj_flt, faults=c.faults, counters=c.to_json(),
        storm=storm, stuck_pages=len(pages.stuck), refused_pages=len(pages.refused),
        progress=progress, **entry_ev,
        position={"where": pos.where, "preempted": pos.preempted, "frame": pos.detail},
        in_handler=pos.detail if pos.where == "handler" else None,
        stack=[str(f.symbol) for f in frames],
    )
    return severity, rule, ev


def _tasks_or_note(prog: drgn.Program, result: CheckResult):
    """The task list; a walk that breaks off is noted as unreadable."""
    try:
        yield from all_tasks(prog, result.unreadable)
    except drgn.FaultError as e:
        result.unreadable.append(f"task list: {e}")


def report_refused_sleepers(ctx: Session, result: CheckResult, graded: set[int]) -> None:
    """Warn of address spaces none of whose threads was graded (none was
    runnable, or faulting) that hold a refused page: the next write there
    loops.  One warning per address space."""
    for mm in ctx.mm_maps:
        if graded & set(mm.users.pids):
            continue
        pages = page_evidence(ctx, mm, None)
        if not pages.refused:
            continue
        pid, comm = mm.users.pids[0], mm.users.comms[0]
        ev = _describe_address(ctx, mm, pages, None, None)
        ev.update(pid=pid, comm=comm, storm=False, stuck_pages=len(pages.stuck),
                  refused_pages=len(pages.refused), progress=[])
        result.record("fault_candidate", "refused-no-storm", grade="warning", **ev)
        result.add("warning", f"pid {pid} ({comm}) maps a page its ->page_mkwrite refuses "
                   f"at {ev['address']:#x} in {ev.get('vma_file')}: its next write there "
                   f"loops", rule="refused-no-storm", **ev)


def run_dump(ctx: Session, result: CheckResult) -> None:
    runnable: set[int] = set()
    for task in _tasks_or_note(ctx.prog, result):
        try:
            if not task.mm or (task_state(task) != TASK_RUNNING and not on_cpu(task)):
                continue
            runnable.add(task.pid.value_())
            graded = evaluate(ctx, task)
        except READ_ERRORS as e:
            result.unreadable.append(f"task {task.value_():#x}: {e}")
            continue
        if graded is None:
            continue
        severity, rule, ev = graded
        result.record("fault_candidate", rule, grade=severity, **ev)
        if severity != "info":
            result.add(severity, _summary(ev["pid"], ev["comm"], severity, ev), rule=rule, **ev)
    report_refused_sleepers(ctx, result, runnable)
    # The stuck-page evidence of runnable tasks rests on their VMAs and page
    # tables: what could not be read there makes this result partial too.
    for mm in ctx.mm_maps:
        if runnable & set(mm.users.pids):
            result.unreadable.extend(mm.unreadable)
    result.unreadable += ctx.task_problems


def run_live(ctx: Session, result: CheckResult) -> None:
    prog, opt = ctx.prog, ctx.options
    samples: dict[int, list[tuple[float, int]]] = {}
    progress_seen: dict[int, list[str]] = {}
    for i in range(opt.samples):
        now = time.monotonic()
        for task in _tasks_or_note(prog, result):
            try:
                if not task.mm:
                    continue
                pid = task.pid.value_()
                samples.setdefault(pid, []).append((now, task.min_flt.value_()
                                                    + task.maj_flt.value_()))
                if task_state(task) == TASK_RUNNING:
                    entry = last_entry(task)
                    if entry is not None and entry.kind == "syscall":
                        progress_seen.setdefault(pid, []).append(
                            f"sample {i}: last kernel entry was system call {entry.syscall_nr}")
            except drgn.FaultError:
                continue
        if i + 1 < opt.samples:
            time.sleep(opt.sample_seconds)
    graded: set[int] = set()
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
        cached = _mm_of(ctx, pid)
        if cached is None:
            continue
        # The page tables as they are now, not as the first check saw them.
        mm = ctx.walk_mm(cached.users)
        pages = page_evidence(ctx, mm, None)
        progress = progress_seen.get(pid, []) + page_progress(ctx, pages, kernel_time(prog))
        severity, rule = grade(True, pages, progress)
        graded.add(pid)
        ev = _describe_address(ctx, mm, pages, None, None)
        ev.update(pid=pid, comm=comm, fault_rate=round(rate, 1),
                  fault_samples=[c for _, c in s], interval_seconds=opt.sample_seconds,
                  stuck_pages=len(pages.stuck), refused_pages=len(pages.refused),
                  progress=progress)
        result.record("fault_candidate", rule, grade=severity, **ev)
        if severity == "info":
            continue
        result.add(severity, f"pid {pid} ({comm}) takes {rate:.0f} page faults/s without "
                   f"sleeping" + (f"; {ev['vma_file']} maps a page of {ev['page_file']}"
                                  if ev.get("page_file") else ""), rule=rule, **ev)
    report_refused_sleepers(ctx, result, graded)


def run(ctx: Session, result: CheckResult | None = None) -> CheckResult:
    result = result or CheckResult(NAME)
    if ctx.options.live:
        run_live(ctx, result)
    else:
        run_dump(ctx, result)
    missing = modules_without_debug_info(ctx.prog)
    if missing:
        result.notes.append(f"no debug info for modules {', '.join(missing)}: their symbols "
                            f"are named from kallsyms (pass --module FILE.ko for more)")
    return result


RULES = (
    Rule("refused-loop", "error",
         "a storm, or the task in the fault path at the address, with a refused page: a "
         "write-protected page in a shared writable ->page_mkwrite VMA that mapping-mismatch "
         "reports as another file's or truncated",
         fires=("pcc_retry:device", "pccfs_retry:data"),
         legit=("busy_writer", "control:busy", "control:udmabuf")),
    Rule("stuck-no-progress", "error",
         "a storm and a write-protected page in a shared writable ->page_mkwrite VMA, with no "
         "progress: no system call as last kernel entry, no writable dirty page in the VMA, "
         "no recent mtime",
         fires=("pccfs_retry:frozen",), legit=("busy_writer",)),
    Rule("refused-no-storm", "warning",
         "a refused page (see refused-loop) in a task that is not storming: its next write "
         "will loop", fires=("pccfs_retry:data-read-only",), legit=("control:udmabuf",)),
    Rule("candidate", "info",
         "a storm with progress, or a storm with no write-protected page to explain it "
         "(an allocator): recorded with its evidence, not reported",
         fires=("busy_writer", "control:busy")),
)


ARGUMENTS = (
    argument("--interval", dest="sample_seconds", type=float, default=0.5, metavar="SECONDS",
             help="live targets: seconds between fault-counter samples (more than 0, at most "
                  "3600)"),
    argument("--samples", type=int, default=4,
             help="live targets: fault-counter samples to take (2 to 1000)"),
    argument("--min-fault-rate", type=float, default=50.0, metavar="PER_SECOND",
             help="live targets: faults per second that count as a loop"),
)


CHECK = Check(
    name=NAME,
    description="tasks livelocked re-entering ->page_mkwrite or ->fault",
    run=run,
    rules=RULES,
    arguments=ARGUMENTS,
    order=20,
)
