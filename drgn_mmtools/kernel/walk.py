"""Bounded walks of kernel lists and of the task list.

A dump of a crashed kernel can hold a list whose ``next`` points back into
itself.  drgn's list helpers would then loop forever.  These walk with
Brent's cycle detection (constant memory, at most about twice the list's
length in steps) and raise :class:`drgn.FaultError` naming the node where
the cycle closes, after yielding every node before it.
"""

from __future__ import annotations

from typing import Callable, Iterator

import drgn
from drgn import Object, container_of

__all__ = ("all_tasks", "follow", "hlist_entries", "list_entries")


def follow(first: int, step: Callable[[int], int], end: int, what: str) -> Iterator[int]:
    """Addresses from ``first`` by ``step`` until ``end`` (or 0).

    :raises drgn.FaultError: on a cycle that does not pass through ``end``.
    """
    tortoise, power, lam = end, 1, 0
    addr = first
    while addr != end and addr != 0:
        yield addr
        if addr == tortoise:
            raise drgn.FaultError(f"{what}: cycle", addr)
        lam += 1
        if lam == power:
            tortoise, power, lam = addr, power * 2, 0
        addr = step(addr)


def _next_of(prog: drgn.Program, type_name: str, member: str) -> Callable[[int], int]:
    offset = drgn.offsetof(prog.type(type_name), member)

    def step(addr: int) -> int:
        return prog.read_word(addr + offset)
    return step


def list_entries(type_name: str, head: Object, member: str) -> Iterator[Object]:
    """``list_for_each_entry`` with cycle detection.

    :param head: ``struct list_head *``
    """
    prog = head.prog_
    step = _next_of(prog, "struct list_head", "next")
    start = head.value_()
    for pos in follow(step(start), step, start, f"list at {start:#x}"):
        yield container_of(Object(prog, "struct list_head *", pos), type_name, member)


def hlist_entries(type_name: str, head: Object, member: str) -> Iterator[Object]:
    """``hlist_for_each_entry`` with cycle detection.

    :param head: ``struct hlist_head *``
    """
    prog = head.prog_
    step = _next_of(prog, "struct hlist_node", "next")
    first = head.first.value_()
    for pos in follow(first, step, 0, f"hlist at {head.value_():#x}"):
        yield container_of(Object(prog, "struct hlist_node *", pos), type_name, member)


def all_tasks(prog: drgn.Program, problems: list[str] | None = None) -> Iterator[Object]:
    """Every thread but the idle tasks, as drgn's ``for_each_task`` gives
    them: processes from ``init_task.tasks``, threads from each
    ``signal->thread_head`` (Linux 3.14+; elsewhere ``for_each_task``).

    :param problems: when given, a thread list that breaks off (a cycle, an
        unreadable link) is described here and the walk goes on with the
        next process; otherwise it raises.
    :raises drgn.FaultError: on a cycle or an unreadable link of the process
        list (or of a thread list, without ``problems``), after yielding
        every task before it.
    """
    init = prog["init_task"].address_of_()
    try:
        prog.type("struct signal_struct").member("thread_head")
    except LookupError:
        from drgn.helpers.linux.pid import for_each_task
        yield from for_each_task(prog)
        return
    def threads(leader: Object) -> Iterator[Object]:
        return list_entries("struct task_struct", leader.signal.thread_head.address_of_(),
                            "thread_node")

    for leader in list_entries("struct task_struct", init.tasks.address_of_(), "tasks"):
        try:
            yield from threads(leader)
        except drgn.FaultError as e:
            if problems is None:
                raise
            problems.append(f"threads of the process at {leader.value_():#x}: {e}")
