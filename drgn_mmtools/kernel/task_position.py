"""Where a task was when the dump froze it, and how it last entered the kernel.

A task's kernel stack names the code it is in; the ``struct pt_regs`` at the
top of its kernel stack (``task_pt_regs``) holds the user registers saved by
its last entry from user mode: the current one when the task is in the
kernel, the previous one when it runs in user mode.  Both work on x86_64 and
aarch64 dumps of any kernel since 4.x; nothing here reads live registers of
a running task.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import drgn
from drgn import Object

from .probe import object_value

__all__ = ("LastEntry", "Position", "last_entry", "position", "task_pt_regs")

#: Frames of the page-fault path proper (mm/memory.c).
FAULT_PATH = frozenset({
    "handle_mm_fault", "__handle_mm_fault", "handle_pte_fault", "do_wp_page",
    "wp_page_shared", "do_page_mkwrite", "do_fault", "do_read_fault", "do_shared_fault",
    "do_cow_fault", "__do_fault", "finish_fault", "fault_dirty_shared_page",
})
#: Architecture fault entry: x86_64 and aarch64.
FAULT_ENTRY = frozenset({
    "asm_exc_page_fault", "exc_page_fault", "handle_page_fault", "do_user_addr_fault",
    "el0_da", "el0_ia", "el0t_64_sync", "el0t_64_sync_handler", "do_mem_abort",
    "do_page_fault", "do_translation_fault", "__do_page_fault", "vectors",
})
#: Return to user mode after any entry.
EXIT = frozenset({
    "irqentry_exit_to_user_mode", "exit_to_user_mode_prepare", "exit_to_user_mode_loop",
    "exit_to_user_mode", "prepare_exit_to_user_mode", "ret_to_user", "do_notify_resume",
    "exit_to_user_mode_work", "arch_exit_to_user_mode_work", "asm_exit_to_user_mode",
})
SYSCALL = frozenset({
    "do_syscall_64", "entry_SYSCALL_64", "entry_SYSCALL_64_after_hwframe", "el0_svc",
    "el0_svc_common", "do_el0_svc", "invoke_syscall", "el0t_64_sync_handler_svc",
})
SYSCALL_PREFIXES = ("__x64_sys_", "__arm64_sys_", "__se_sys_", "__do_sys_", "ksys_")
SCHEDULE = frozenset({"__schedule", "schedule", "preempt_schedule_irq",
                      "preempt_schedule", "preempt_schedule_common"})

#: x86_64 user code segment selectors (64-bit and compat); aarch64 EL0 mode.
X86_USER_CS = (0x33, 0x23)


class Position(NamedTuple):
    """Where a stack shows the task."""

    where: str  #: "user", "handler", "fault-path", "exception-entry", "exception-exit", "syscall", "interrupt", "kernel" or "unknown" (no stack)
    preempted: bool  #: switched out by the scheduler (not running on a CPU)
    detail: str | None  #: the frame that decided ``where``


class LastEntry(NamedTuple):
    """The task's last entry from user mode, from ``task_pt_regs``."""

    kind: str  #: "syscall", or "exception" (a fault, another exception or an interrupt)
    user_pc: int
    syscall_nr: int | None


def _user_address(prog: drgn.Program, pc: int) -> bool:
    # Both architectures put the kernel in the upper half of the address space.
    return 0 < pc < (1 << 63) if prog.platform.flags & drgn.PlatformFlags.IS_64_BIT else pc < 0xC0000000


def position(prog: drgn.Program, names: Sequence[str | None], pcs: Sequence[int],
             handlers: set[str], on_cpu: bool) -> Position:
    """Classify a stack (innermost first) by the code it shows.

    ``handlers`` are the names of the VMA's ``vm_ops`` functions.
    """
    if not pcs:
        return Position("unknown", False, None)
    if _user_address(prog, pcs[0]):
        return Position("user", False, hex(pcs[0]))
    present = [n for n in names if n]
    preempted = not on_cpu and any(n in SCHEDULE for n in present)
    for n in present:
        if n in handlers:
            return Position("handler", preempted, n)
    for n in present:
        if n in FAULT_PATH:
            return Position("fault-path", preempted, n)
    for n in present:
        if n in SYSCALL or n.startswith(SYSCALL_PREFIXES):
            return Position("syscall", preempted, n)
    entry = next((n for n in present if n in FAULT_ENTRY), None)
    if entry is not None:
        leaving = next((n for n in present if n in EXIT), None)
        return (Position("exception-exit", preempted, leaving) if leaving
                else Position("exception-entry", preempted, entry))
    for n in present:
        if "interrupt" in n or n.startswith(("asm_sysvec_", "sysvec_", "el0_interrupt", "el0t_64_irq")):
            return Position("interrupt", preempted, n)
    return Position("kernel", preempted, present[0] if present else None)


def _thread_size(prog: drgn.Program) -> int | None:
    """THREAD_SIZE: drgn knows it for Linux; else the size of init_stack."""
    size = object_value(prog, "THREAD_SIZE")
    if size:
        return size
    for name in ("init_stack", "init_thread_union"):
        try:
            return prog.symbol(name).size or None
        except LookupError:
            continue
    return None


def task_pt_regs(task: Object) -> Object | None:
    """``task_pt_regs(task)``: the user registers at the top of its kernel
    stack, or None when they cannot be located or do not look like user
    registers (kernel threads, unknown stack layout)."""
    prog = task.prog_
    size = _thread_size(prog)
    if size is None:
        return None
    try:
        regs_type = prog.type("struct pt_regs")
        top = task.stack.value_() + size
        # x86_64 kernels with FRED reserve 16 bytes above pt_regs; others none.
        for pad in (0, 16):
            regs = Object(prog, regs_type, address=top - pad - regs_type.size)
            if _looks_like_user(prog, regs):
                return regs
    except (drgn.FaultError, LookupError, AttributeError):
        return None
    return None


def _looks_like_user(prog: drgn.Program, regs: Object) -> bool:
    arch = prog.platform.arch
    if arch == drgn.Architecture.X86_64:
        return regs.cs.value_() & 0xFFFF in X86_USER_CS
    if arch == drgn.Architecture.AARCH64:
        return regs.pstate.value_() & 0xF == 0  # EL0t
    return False


def last_entry(task: Object) -> LastEntry | None:
    """How the task last entered the kernel from user mode, or None.

    aarch64 stores ``NO_SYSCALL`` (-1) in ``syscallno`` on every entry from
    EL0, and ``el0_svc`` the syscall number.  x86_64's ``SYSCALL`` leaves the
    return address in rcx and the flags in r11, which the entry code saves
    beside the syscall number in ``orig_ax``; exception and interrupt entries
    leave -1 there (a page fault moves its error code out first).
    """
    regs = task_pt_regs(task)
    if regs is None:
        return None
    prog = task.prog_
    try:
        if prog.platform.arch == drgn.Architecture.AARCH64:
            nr = regs.syscallno.value_()
            pc = regs.pc.value_()
            return LastEntry("syscall", pc, nr) if nr >= 0 else LastEntry("exception", pc, None)
        ip, orig = regs.ip.value_(), regs.orig_ax.value_()
        if orig >= 1 << 63:
            orig -= 1 << 64
        if orig >= 0 and regs.cx.value_() == ip and regs.r11.value_() == regs.flags.value_():
            return LastEntry("syscall", ip, orig)
        return LastEntry("exception", ip, None)
    except (drgn.FaultError, AttributeError, LookupError):
        return None
