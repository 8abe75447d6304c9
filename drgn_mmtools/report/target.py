"""What was inspected: the ``target`` object of every report and the shell's
prompt."""

from __future__ import annotations

import drgn

from ..kernel.summary import kernel_summary

__all__ = ("describe_target",)


def describe_target(prog: drgn.Program, description: str | None = None) -> dict:
    """``{"description", "kernel_release", "arch", "live"}`` of ``prog``; any kernel."""
    s = kernel_summary(prog)
    live = bool(prog.flags & drgn.ProgramFlags.IS_LIVE)
    if description is None:
        description = "the running kernel" if live else "core dump"
    return {"description": description, "kernel_release": s.release,
            "arch": s.machine.lower(), "live": live}
