"""A one-screen summary of the target kernel."""

from __future__ import annotations

from typing import NamedTuple

import drgn
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.mm import totalram_pages

from .probe import object_value
from .walk import all_tasks


#: More tasks than this in the task list means the list is corrupted.
MAX_TASKS = 1 << 22


class KernelSummary(NamedTuple):
    """What kernel the target runs, and how big it is.  A field that cannot
    be read is None (corrupted or filtered dumps)."""

    release: str  #: ``uname -r`` of the target
    machine: str  #: drgn's architecture name (``X86_64``, ``AARCH64``)
    page_size: int  #: bytes per base page
    total_ram_bytes: int | None  #: ``totalram_pages()`` in bytes
    online_cpus: int | None  #: CPUs in ``cpu_online_mask``
    tasks: int | None  #: threads, kernel threads included


def _guarded(fn):
    try:
        return fn()
    except (drgn.FaultError, LookupError, ValueError, OverflowError, NotImplementedError):
        return None


def _count_tasks(prog: drgn.Program) -> int | None:
    n = 0
    for _ in all_tasks(prog):
        n += 1
        if n > MAX_TASKS:
            return None
    return n


def kernel_summary(prog: drgn.Program) -> KernelSummary:
    """Summarise the target: release, arch, memory, CPUs, tasks. All kernels."""
    release = _guarded(lambda: prog["init_uts_ns"].name.release.string_().decode(
        errors="replace")) or "unknown"
    page_size = object_value(prog, "PAGE_SIZE", 4096) or 4096
    ram = _guarded(lambda: totalram_pages(prog))
    return KernelSummary(
        release=release,
        machine=prog.platform.arch.name if prog.platform else "unknown",
        page_size=page_size,
        total_ram_bytes=None if ram is None else ram * page_size,
        online_cpus=_guarded(lambda: sum(1 for _ in for_each_online_cpu(prog))),
        tasks=_guarded(lambda: _count_tasks(prog)),
    )

