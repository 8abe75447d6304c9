"""Tasks: state, stack frames, and the user address spaces they share."""

from __future__ import annotations

from typing import NamedTuple

import drgn
from drgn import Object
from drgn.helpers.linux.sched import task_on_cpu

from .symbols import SymbolRef, symbolize
from .walk import all_tasks

__all__ = ("Frame", "MmUsers", "TASK_RUNNING", "mmap_lock_held", "task_frames", "task_state",
           "user_mms")

TASK_RUNNING = 0


def task_state(task: Object) -> int:
    """``task->__state`` (since 5.14) or ``task->state``."""
    try:
        return task.__state.value_()
    except AttributeError:
        return task.state.value_()


def task_comm(task: Object) -> str:
    return task.comm.string_().decode(errors="replace")


def on_cpu(task: Object) -> bool:
    try:
        return bool(task_on_cpu(task))
    except (AttributeError, LookupError):
        return bool(task.on_cpu)


class Frame(NamedTuple):
    """One stack frame, named."""

    pc: int
    symbol: SymbolRef
    frame: drgn.StackFrame | None  #: for reading locals; not serialized

    @property
    def name(self) -> str | None:
        return self.symbol.name


def task_frames(prog: drgn.Program, task: Object) -> list[Frame]:
    """The task's kernel stack, innermost first; inlined frames named too.

    :raises ValueError: if the stack cannot be unwound (e.g. running live).
    """
    out = []
    for f in prog.stack_trace(task):
        pc = f.pc
        ref = symbolize(prog, pc)
        if f.name and f.name != ref.name:
            ref = SymbolRef(pc, f.name, 0, ref.module, "debuginfo")
        out.append(Frame(pc, ref, f))
    return out


class MmUsers(NamedTuple):
    """One user address space and the threads that share it."""

    mm: Object
    pids: list[int]
    comms: list[str]


def user_mms(prog: drgn.Program, problems: list[str] | None = None) -> list[MmUsers]:
    """Every distinct ``mm_struct`` of a user task, with its threads.

    A task that cannot be read, or a task list that breaks off, is described
    in ``problems``; the tasks read before it are kept.
    """
    mms: dict[int, MmUsers] = {}
    problems = problems if problems is not None else []
    try:
        for task in all_tasks(prog, problems):
            try:
                mm = task.mm
                if not mm:
                    continue
                key = mm.value_()
                pid, comm = task.pid.value_(), task_comm(task)
            except drgn.FaultError as e:
                problems.append(f"task {task.value_():#x}: {e}")
                continue
            if key not in mms:
                mms[key] = MmUsers(mm, [], [])
            mms[key].pids.append(pid)
            mms[key].comms.append(comm)
    except drgn.FaultError as e:
        problems.append(f"task list: {e}")
    return list(mms.values())


def mmap_lock_held(mm: Object) -> bool | None:
    """Whether anyone holds ``mm->mmap_lock`` (``mmap_sem`` before 5.8), for
    read or write: the rw_semaphore's count is non-zero.  None if unreadable.

    While it is held, VMAs and page tables may disagree for a moment: munmap
    removes the VMAs first and zaps their entries after (since 4.20 with the
    lock downgraded to read)."""
    try:
        sem = mm.mmap_lock if hasattr(mm, "mmap_lock") else mm.mmap_sem
        return sem.count.counter.value_() != 0
    except (AttributeError, LookupError, drgn.FaultError):
        return None
