"""``tasks``: tasks with their state and fault counters; ``--stuck`` keeps
the ones fault-retry names."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from drgn.commands import argument
from drgn.helpers.linux.sched import task_state_to_char

from ..kernel.probe import READ_ERRORS, one_line
from ..kernel.tasks import on_cpu, task_comm
from ..kernel.walk import all_tasks
from ..report.output import Output, detail_field, hex_field
from .registry import mm_command
from .workspace import Workspace

__all__ = ("TaskRecord",)


@dataclass
class TaskRecord:
    """One task; any kernel."""

    pid: int
    comm: str
    state: str  #: R, S, D, T, t, X, Z, P, I
    on_cpu: bool
    min_flt: int
    maj_flt: int
    nvcsw: int
    nivcsw: int
    mm: int = hex_field(0)  #: 0 for kernel threads
    stuck: str | None = None  #: fault-retry's verdict: "error refused-loop", ...
    task: int = detail_field(0, fmt="hex")  #: struct task_struct *


@mm_command(
    "tasks", "list tasks: state, on-CPU, fault and context-switch counters; --stuck: the "
    "tasks fault-retry suspects",
    arguments=(
        argument("--state", "-s", metavar="S", help="only tasks in these states (letters, as "
                 "ps prints them: R, S, D, T, Z, I)"),
        argument("--stuck", action="store_true",
                 help="only tasks fault-retry reports or records as candidates (runs it)"),
        argument("--user", action="store_true", help="only tasks with a user address space"),
        argument("--comm", metavar="NAME", help="only tasks whose comm contains NAME"),
    ),
    examples=("tasks", "tasks --state D", "tasks --stuck", "tasks --stuck | vma"),
)
def _tasks(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    verdicts: dict[int, str] = {}
    if args.stuck:
        if not any(r.check == "fault-retry" for r in ws.results):
            ws.run_checks(["fault-retry"])
        for r in ws.results:
            if r.check != "fault-retry":
                continue
            for f in r.findings:
                if f.evidence.get("pid") is not None:
                    verdicts[f.evidence["pid"]] = f"{f.severity} {f.rule}"
            for rec in r.records:
                if rec.get("pid") is not None:
                    verdicts.setdefault(rec["pid"], f"info {rec.get('rule')}")
    out = Output("", "task")
    problems: list[str] = []
    try:
        for task in all_tasks(ws.prog, problems):
            try:
                pid = task.pid.value_()
                if args.stuck and pid not in verdicts:
                    continue
                state = task_state_to_char(task)
                if args.state and state not in args.state:
                    continue
                comm = task_comm(task)
                if args.comm and args.comm not in comm:
                    continue
                mm = task.mm.value_()
                if args.user and not mm:
                    continue
                out.records.append(TaskRecord(pid, comm, state, on_cpu(task),
                                              task.min_flt.value_(), task.maj_flt.value_(),
                                              task.nvcsw.value_(), task.nivcsw.value_(), mm,
                                              verdicts.get(pid), task.value_()))
            except READ_ERRORS as e:
                problems.append(f"task {task.value_():#x}: {one_line(e)}")
    except READ_ERRORS as e:
        problems.append(f"task list: {one_line(e)}")
    out.unreadable = problems
    return out


@dataclass
class FrameRecord:
    """One kernel stack frame of a task."""

    pid: int
    n: int  #: 0 is the innermost frame
    pc: int = hex_field()
    function: str | None = None  #: symbol+offset [module], from debug info or kallsyms
    source: str | None = None  #: file:line, with debug info
    inlined: bool = False


@mm_command(
    "stack", "a task's kernel stack, innermost first: pc, function (with module, from debug "
    "info or kallsyms), file and line",
    arguments=(argument("pids", nargs="*", metavar="PID"),),
    examples=("stack 42", "tasks --stuck | stack", "findings --check dax-entries | stack"),
    accepts=("pid",), completes=("pid",),
)
def _stack(ws: Workspace, args: argparse.Namespace, records_in: list[Any] | None) -> Output:
    from ..kernel.tasks import task_frames
    from .resolve import pids_of, task_of

    out = Output("", "frame")
    for pid in pids_of("stack", args.pids, records_in):
        task = task_of(ws, pid)
        try:
            frames = task_frames(ws.prog, task)
        except (ValueError, *READ_ERRORS) as e:
            out.unreadable.append(f"stack of pid {pid}: {one_line(e)}")
            out.status = 2
            continue
        for i, f in enumerate(frames):
            src = None
            inlined = False
            if f.frame is not None:
                try:
                    filename, line, _ = f.frame.source()
                    src = f"{filename}:{line}"
                except LookupError:
                    pass
                inlined = bool(f.frame.is_inline)
            out.records.append(FrameRecord(pid, i, f.pc, str(f.symbol) if f.symbol.name else None,
                                           src, inlined))
    return out
