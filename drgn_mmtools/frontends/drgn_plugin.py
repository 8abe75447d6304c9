"""drgn plugin: our commands at drgn's prompt.

Registered through the ``drgn.plugins`` entry point group; drgn imports this
module when a program is set.  ``%mm LINE`` runs any line of the shell,
structured pipes included (``%mm findings --check hwpoison-pagecache |
page``); ``%mm_NAME ARGS`` runs one command (``%mm_page 0x1fd3d``,
``%mm_check dax-entries --format json``).  Both parse with the same
declarations as the shell and gdb, render with rich, and raise drgn's
:class:`~drgn.commands.CommandError` on bad input.
"""

from __future__ import annotations

from typing import Any

from drgn import Program, ProgramFlags
from drgn.commands import CommandError
from drgn.commands.linux import linux_kernel_raw_command

from ..commands import COMMANDS
from ..commands.workspace import workspace_for

__all__ = ("run_at_prompt",)


def run_at_prompt(prog: Program, line: str) -> int:
    """Run one shell line on ``prog``'s workspace, printing to stdout.

    :raises CommandError: the line's error, one line.
    """
    from .shell import Shell

    ws = workspace_for(prog)
    if prog.flags & ProgramFlags.IS_LIVE:
        ws.session.refresh()
        ws.results = []
    shell = Shell(ws)
    status = shell.execute(line, raise_errors=True)
    return status


def _register(name: str, description: str, prefix: str, usage: str) -> None:
    def run(prog: Program, cmd_name: str, args: str, **kwargs: Any) -> None:
        run_at_prompt(prog, f"{prefix}{args}".strip())

    linux_kernel_raw_command(name=name, description=description, usage=usage,
                             long_description=description + ". 'mm help' lists the commands, "
                             "'mm help CMD' shows one with examples.")(run)


def _usage(name: str) -> str:
    from ..commands import MM_NAMESPACE
    cmd = MM_NAMESPACE._commands[name]
    return cmd.format_usage().replace(name, f"**mm_{name.replace('-', '_')}**", 1)


_register("mm", "drgn-mmtools: run a line of the mm shell (structured pipes included)", "",
          "**mm** COMMAND [ARGS] [| COMMAND [ARGS]]... [| SHELL-COMMAND] [> FILE]")
for _name, _info in COMMANDS.items():
    _register("mm_" + _name.replace("-", "_"), f"drgn-mmtools: {_info.description}",
              _name + " ", _usage(_name))


def drgn_prog_set(prog: Program) -> None:
    """Plugin hook; the commands are registered at import time."""


_ = CommandError  # re-exported for callers that catch it
