"""drgn plugin: the checks as commands at drgn's prompt (``%mm_check``).

Registered through the ``drgn.plugins`` entry point group; drgn imports this
module when a program is set, which registers the commands below.
"""

from __future__ import annotations

import argparse
from typing import Any

from drgn import Program
from drgn.commands import CommandError, argument
from drgn.commands.linux import linux_kernel_command

from ..checks import all_checks
from .script import run_and_render

_CHECKS = list(all_checks())
_FORMAT = argument("--format", choices=("text", "json"), default="text", help="output format")


@linux_kernel_command(
    description="run drgn-mmtools checks on this kernel",
    long_description="Runs the memory-management checks (all by default) and prints "
                     "their findings. Exit status of the pipeline tool: 0 clean, 1 findings.",
    arguments=(
        argument("checks", nargs="*", metavar="CHECK",
                 help="checks to run (all by default): " + ", ".join(_CHECKS)),
        _FORMAT,
        argument("--interval", type=float, default=0.5,
                 help="live targets: seconds between fault-counter samples"),
    ),
)
def _cmd_mm_check(prog: Program, name: str, args: argparse.Namespace, **kwargs: Any) -> None:
    unknown = [c for c in args.checks if c not in _CHECKS]
    if unknown:
        raise CommandError(f"unknown check {unknown[0]!r}; choose from {', '.join(_CHECKS)}")
    if not 0 < args.interval <= 3600:
        raise CommandError(f"--interval {args.interval}: give seconds between samples, more "
                           f"than 0 and at most 3600")
    run_and_render(prog, args.checks or _CHECKS, args.format, args.interval)


def _single(check: str):
    def cmd(prog: Program, name: str, args: argparse.Namespace, **kwargs: Any) -> None:
        run_and_render(prog, [check], args.format)
    return cmd


for _check in _CHECKS:
    linux_kernel_command(
        name="mm_" + _check.replace("-", "_"),
        description=all_checks()[_check].description,
        arguments=(_FORMAT,),
    )(_single(_check))


def drgn_prog_set(prog: Program) -> None:
    """Plugin hook; the commands are registered at import time."""
