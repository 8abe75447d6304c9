"""The command namespace, the decorator that defines a command once, and the
pipeline runner.

A command is a function ``(workspace, args, records_in) -> Output`` declared
with :func:`mm_command`: drgn's :func:`~drgn.commands.command` registers it
in :data:`MM_NAMESPACE` with its ``argument(...)`` declarations, so the
shell, drgn's prompt and gdb parse it the same way.  ``records_in`` holds the
records of the previous stage of a pipeline (``findings | page``), else
None.  :func:`parse_line` splits a line into stages: a ``|`` followed by one
of our command names is a structured pipe; anything else after ``|`` goes to
the system shell, like ``> file`` and ``>> file``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from drgn import Program
from drgn.commands import (CommandError, CommandNamespace, ShellRedirection, argument, command,
                           parse_shell_command)

from ..report.output import Output
from .workspace import Workspace, workspace_for

__all__ = ("COMMANDS", "MM_NAMESPACE", "CommandInfo", "Plan", "mm_command", "parse_line",
           "run_line", "run_plan", "pluck")

#: Our commands, apart from drgn's default namespace (where each also
#: appears as ``mm_NAME``, see :mod:`drgn_mmtools.frontends.drgn_plugin`).
MM_NAMESPACE = CommandNamespace(
    func_name_prefix="_mm_cmd_",
    argparse_types=(("int_any", lambda s: int(s, 0)),),
)

CommandFunc = Callable[[Workspace, argparse.Namespace, "list[Any] | None"], Output]


@dataclass(frozen=True)
class CommandInfo:
    """What the help and the completer know about a command."""

    name: str
    description: str
    arguments: tuple[argument, ...]
    examples: tuple[str, ...]  #: command lines, each shown in help
    #: record attributes this command takes from a pipe, e.g. ("pfn",)
    accepts: tuple[str, ...] = ()
    #: completion kind of each positional argument: "pid", "path", "check",
    #: "finding", "command", or "" for none
    completes: tuple[str, ...] = ()


COMMANDS: dict[str, CommandInfo] = {}


def mm_command(name: str, description: str, *, arguments: Sequence[argument] = (),
               examples: Sequence[str] = (), accepts: Sequence[str] = (),
               completes: Sequence[str] = (), long_description: str | None = None
               ) -> Callable[[CommandFunc], CommandFunc]:
    """Define a command once: registered in :data:`MM_NAMESPACE` for every
    front end, with its examples in the help epilog."""
    def decorator(func: CommandFunc) -> CommandFunc:
        epilog = ("examples:\n" + "\n".join(f"  {e}" for e in examples)) if examples else None
        if accepts:
            note = f"From a pipe it takes each record's {', '.join(accepts)}."
            long = f"{long_description}\n\n{note}" if long_description else note
        else:
            long = long_description

        def run(prog: Program, cmd_name: str, args: argparse.Namespace, **kwargs: Any) -> Output:
            ws = kwargs.get("workspace") or workspace_for(prog)
            return func(ws, args, kwargs.get("records_in"))

        command(name=name, description=description, long_description=long, epilog=epilog,
                arguments=tuple(arguments), namespace=MM_NAMESPACE)(run)
        COMMANDS[name] = CommandInfo(name, description, tuple(arguments), tuple(examples),
                                     tuple(accepts), tuple(completes))
        return func
    return decorator


@dataclass
class Plan:
    """A parsed command line."""

    stages: list[tuple[str, list[str]]]  #: (command, arguments), in pipe order
    redirections: Sequence[ShellRedirection] = ()  #: of the last stage
    shell_pipeline: str | None = None  #: what follows a ``|`` to a system command


def parse_line(line: str, known: Callable[[str], bool] | None = None) -> Plan:
    """Split a command line into structured stages, the final redirections
    and a system-shell pipeline.

    :param known: whether a word names one of our commands (default:
        :data:`COMMANDS`).
    :raises SyntaxError: on unbalanced quotes or a misplaced redirection.
    """
    known = known or (lambda w: w in COMMANDS)
    stages: list[tuple[str, list[str]]] = []
    rest = line
    while True:
        parsed = parse_shell_command(rest)
        if not parsed.args:
            raise SyntaxError("expected a command name" + (" after '|'" if stages else ""))
        stages.append((parsed.args[0], list(parsed.args[1:])))
        pipeline = parsed.pipeline
        if pipeline is not None:
            head = parse_shell_command(pipeline).args[:1] if pipeline.strip() else []
            if head and known(head[0]):
                if parsed.redirections:
                    raise SyntaxError("a redirection must come after the last command")
                rest = pipeline
                continue
        return Plan(stages, parsed.redirections, pipeline)


def run_plan(ws: Workspace, plan: Plan, line: str = "") -> Output:
    """Run the stages in order, each fed the previous stage's records.

    :raises CommandError: an unknown command, bad arguments, or a command's
        own error (one line).
    """
    records: list[Any] | None = None
    out: Output | None = None
    for i, (name, argv) in enumerate(plan.stages):
        cmd = MM_NAMESPACE.lookup(ws.prog, name)
        parsed = cmd.parse(" ".join(_quote(a) for a in argv))
        out = cmd.run(ws.prog, name, parsed.args, globals={}, workspace=ws,
                      records_in=records)
        assert isinstance(out, Output)
        records = out.records
    assert out is not None
    out.command = line or " | ".join(" ".join([n, *a]) for n, a in plan.stages)
    return out


def run_line(ws: Workspace, line: str) -> tuple[Output, Plan]:
    """Parse and run one line of our commands."""
    plan = parse_line(line)
    return run_plan(ws, plan, line), plan


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'" if word == "" or any(
        c in word for c in " \t\"'\\|<>;&#()`") else word


def pluck(record: Any, *keys: str) -> Any:
    """The first of ``keys`` a record has, as an attribute, a dict key or an
    evidence key (findings); None when it has none."""
    for key in keys:
        if isinstance(record, dict):
            if record.get(key) is not None:
                return record[key]
            continue
        value = getattr(record, key, None)
        if value is not None:
            return value
        evidence = getattr(record, "evidence", None)
        if isinstance(evidence, dict) and evidence.get(key) is not None:
            return evidence[key]
    return None


def fail(message: str) -> CommandError:
    """A command's error, one line."""
    return CommandError(" ".join(message.split()))
