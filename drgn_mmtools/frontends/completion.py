"""Completion for the shell, as a pure function of the text before the
cursor: command names, options from each command's argparse declarations,
option choices, PIDs (with comm), paths from the dump's dentry cache, check
names and finding numbers.  :class:`MmCompleter` wraps it for prompt_toolkit.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple, Sequence

from ..commands.registry import CommandInfo

__all__ = ("Candidate", "CompletionData", "complete", "MmCompleter")

#: Options every command takes from the shell (rendering), not from argparse.
SHELL_OPTIONS = {"--format": ("text", "json")}


class Candidate(NamedTuple):
    """One completion: replace the last ``replace`` characters with ``text``."""

    text: str
    replace: int
    meta: str = ""


@dataclass
class CompletionData:
    """What the completer may offer; the shell fills it lazily from the target."""

    commands: dict[str, CommandInfo]
    other_commands: Sequence[str] = ()  #: drgn's and crash's commands, and shell built-ins
    checks: Sequence[str] = ()
    pids: Callable[[], Iterable[tuple[int, str]]] = lambda: ()
    paths: Callable[[str], Iterable[str]] = lambda prefix: ()
    findings: Callable[[], Sequence[str]] = lambda: ()  #: summaries, numbered from 1
    help_topics: Sequence[str] = field(default_factory=tuple)


def _words(stage: str) -> tuple[list[str], str]:
    """Complete words before the cursor, and the partial word at it."""
    lex = shlex.shlex(stage, posix=True, punctuation_chars="")
    lex.whitespace_split = True
    lex.commenters = ""
    words: list[str] = []
    try:
        words = list(lex)
    except ValueError:  # an open quote: complete inside it
        words = stage.split()
    if stage and not stage[-1].isspace() and words:
        return words[:-1], words[-1]
    return words, ""


def _option_table(info: CommandInfo) -> dict[str, tuple[bool, Sequence[str] | None, str]]:
    """option string -> (takes a value, choices, help)."""
    out: dict[str, tuple[bool, Sequence[str] | None, str]] = {}
    for arg in info.arguments:
        strings = [a for a in arg.args if a.startswith("-")]
        if not strings:
            continue
        action = arg.kwargs.get("action")
        takes = action not in ("store_true", "store_false", "count", "help")
        for s in strings:
            out[s] = (takes, arg.kwargs.get("choices"), arg.kwargs.get("help", ""))
    for s, choices in SHELL_OPTIONS.items():
        out[s] = (True, choices, "output format")
    return out


def _positionals(info: CommandInfo) -> list[tuple[str, str]]:
    """(metavar, nargs) of each positional argument, in order."""
    out = []
    for arg in info.arguments:
        if arg.args and not arg.args[0].startswith("-"):
            out.append((arg.kwargs.get("metavar", arg.args[0]), str(arg.kwargs.get("nargs", ""))))
    return out


def _value_candidates(kind: str, word: str, data: CompletionData) -> list[Candidate]:
    n = len(word)
    if kind == "pid":
        return [Candidate(str(pid), n, comm) for pid, comm in data.pids()
                if str(pid).startswith(word)]
    if kind == "path":
        if not word.startswith("/"):
            return [Candidate("/", n, "path")] if not word else []
        return [Candidate(p, n, "") for p in data.paths(word)]
    if kind == "check":
        return [Candidate(c, n, "check") for c in data.checks if c.startswith(word)]
    if kind == "finding":
        return [Candidate(str(i), n, s[:60]) for i, s in enumerate(data.findings(), 1)
                if str(i).startswith(word)]
    if kind == "command":
        return [Candidate(c, n, "") for c in (*data.commands, *data.help_topics)
                if c.startswith(word)]
    return []


def complete(text: str, data: CompletionData) -> list[Candidate]:
    """Completions for ``text``, the line up to the cursor."""
    stage = text.rsplit("|", 1)[-1].lstrip()
    before, word = _words(stage)
    n = len(word)
    if not before:
        names = sorted(set(data.commands) | set(data.other_commands))
        return [Candidate(c, n, data.commands[c].description[:50] if c in data.commands else "")
                for c in names if c.startswith(word)]
    name = before[0]
    if name == "help":
        return _value_candidates("command", word, data) if len(before) == 1 else []
    info = data.commands.get(name)
    if info is None:
        return []
    options = _option_table(info)
    # The previous word is an option that takes a value: complete its value.
    if len(before) > 1 and before[-1] in options and options[before[-1]][0]:
        opt = before[-1]
        choices = options[opt][1]
        if choices:
            return [Candidate(c, n, "") for c in choices if c.startswith(word)]
        if opt == "--check":
            return _value_candidates("check", word, data)
        return []
    if word.startswith("-"):
        used = set(before)
        return [Candidate(o, n, options[o][2][:50]) for o in sorted(options)
                if o.startswith(word) and (o not in used or o in ("--check", "--rule"))]
    # A positional: which one is it?
    index = 0
    skip = False
    for w in before[1:]:
        if skip:
            skip = False
            continue
        if w.startswith("-"):
            skip = w in options and options[w][0]
            continue
        index += 1
    positionals = _positionals(info)
    if positionals and index >= len(positionals) and positionals[-1][1] in ("*", "+"):
        index = len(positionals) - 1
    if index < len(info.completes) and info.completes[index]:
        return _value_candidates(info.completes[index], word, data)
    return []


try:
    from prompt_toolkit.completion import Completer, Completion

    class MmCompleter(Completer):
        """prompt_toolkit's face of :func:`complete`."""

        def __init__(self, data: CompletionData) -> None:
            self.data = data

        def get_completions(self, document, complete_event):
            for c in complete(document.text_before_cursor, self.data):
                yield Completion(c.text, start_position=-c.replace, display_meta=c.meta)
except ImportError:  # pragma: no cover - prompt_toolkit is a dependency
    MmCompleter = None  # type: ignore[assignment,misc]
