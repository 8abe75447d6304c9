"""A one-screen summary of the target kernel."""

from __future__ import annotations

from typing import NamedTuple

import drgn
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.mm import totalram_pages
from drgn.helpers.linux.pid import for_each_task

from .helpers.probe import object_value


class KernelSummary(NamedTuple):
    """What kernel the target runs, and how big it is."""

    release: str  #: ``uname -r`` of the target
    machine: str  #: drgn's architecture name (``X86_64``, ``AARCH64``)
    page_size: int  #: bytes per base page
    total_ram_bytes: int  #: ``totalram_pages()`` in bytes
    online_cpus: int  #: CPUs in ``cpu_online_mask``
    tasks: int  #: threads, kernel threads included


def kernel_summary(prog: drgn.Program) -> KernelSummary:
    """Summarise the target: release, arch, memory, CPUs, tasks. All kernels."""
    release = prog["init_uts_ns"].name.release.string_().decode(errors="replace")
    page_size = object_value(prog, "PAGE_SIZE", 4096)
    return KernelSummary(
        release=release,
        machine=prog.platform.arch.name if prog.platform else "unknown",
        page_size=page_size,
        total_ram_bytes=totalram_pages(prog) * page_size,
        online_cpus=sum(1 for _ in for_each_online_cpu(prog)),
        tasks=sum(1 for _ in for_each_task(prog)),
    )

