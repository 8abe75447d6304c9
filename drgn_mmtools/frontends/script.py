"""Run checks from inside drgn: plain drgn scripts (``commands/``) and the
``%mm_*`` commands.  Both render the same typed results as the command line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import drgn

from ..checks import all_checks
from ..analysis.session import Session, Options
from ..report import jsonout, text
from ..report.term import Console
from ..checks.runner import exit_code, run_checks
from ..report.target import describe_target


def run_and_render(prog: drgn.Program, names: Sequence[str], fmt: str = "text",
                   options: Options | None = None) -> int:
    """Run checks on ``prog``, print the report, and return the exit status (0/1/2)."""
    target = describe_target(prog)
    options = options or Options()
    options.live = target["live"]
    results = run_checks(Session(prog, options), names)
    code = exit_code(results)
    if fmt == "json":
        print(jsonout.dumps(jsonout.document(results, target, code)))
    else:
        text.render(Console(), results, target)
    return code


def script_main(prog: drgn.Program, default_checks: Sequence[str] | None = None,
                argv: Sequence[str] | None = None) -> int:
    """Entry point of ``commands/check.py``: ``drgn -c CORE -s VMLINUX commands/check.py``."""
    from ..checks.base import apply_arguments, check_arguments

    parser = argparse.ArgumentParser(prog=sys.argv[0] if sys.argv else "drgn-mmtools")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--check", action="append", choices=list(all_checks()))
    for arg in check_arguments():
        parser.add_argument(*arg.args, **arg.kwargs)
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    options = Options()
    apply_arguments(options, args)
    problem = options.problem()
    if problem:
        parser.error(problem)
    return run_and_render(prog, args.check or list(default_checks or all_checks()), args.format,
                          options)


def shell_main(prog: drgn.Program, lines: Sequence[str]) -> int:
    """Entry point of ``commands/mm.py``: run shell lines (from the
    arguments, else stdin) on ``prog``; returns the shell's status."""
    from ..commands.workspace import workspace_for
    from .shell import Shell

    shell = Shell(workspace_for(prog))
    return shell.run_lines(lines if lines else sys.stdin)
