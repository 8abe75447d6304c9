"""The interactive shell: ``drgn-mmtools shell TARGET``.

It runs our commands (:mod:`drgn_mmtools.commands`) with structured pipes
between them, renders the last stage once (rich on a terminal, JSON with
``--format json``), sends ``| cmd`` to the system shell and ``> file`` /
``>> file`` to files, and passes any other command to drgn's own
namespaces (``crash``, ``sh``, then crash's ``bt``, ``ps``, ``kmem``...).
On a terminal it is a prompt_toolkit prompt with completion and history;
otherwise it reads commands line by line.  The exit status follows the
check rule: 0 nothing found, 1 findings, 2 a command failed or could not
read everything.
"""

from __future__ import annotations

import code
import io
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

import drgn
from drgn.commands import CommandError, DEFAULT_COMMAND_NAMESPACE

from ..checks import all_checks
from ..commands import COMMANDS, MM_NAMESPACE
from ..commands.registry import Plan, parse_line, run_plan
from ..commands.workspace import Workspace
from ..kernel.dcache import dentry_children
from ..kernel.probe import READ_ERRORS, one_line
from ..kernel.summary import kernel_summary
from ..kernel.tasks import task_comm
from ..kernel.walk import all_tasks
from ..report.output import Output, to_json
from ..report.safe import printable
from ..report.views import render
from .completion import CompletionData, MmCompleter

__all__ = ("Shell", "history_path", "split_commands")

BUILTINS = {
    "help": "list commands, or show one command's options and examples: help [CMD]",
    "py": "Python with prog, ws (the workspace) and drgn's Linux helpers: py [CODE]",
    "refresh": "live targets: forget everything read so far",
    "exit": "leave the shell (also quit, or Ctrl-D)",
    "quit": "leave the shell",
}


def _crash_namespace() -> Any:
    """drgn's crash-compatible commands (``bt``, ``ps``, ``kmem``...), when
    this drgn has them."""
    try:
        import drgn.commands._builtin  # noqa: F401 - registers crash, py, sh
        from drgn.commands._crash.common import CRASH_COMMAND_NAMESPACE
        import drgn.commands._crash  # noqa: F401 - registers the crash commands
        return CRASH_COMMAND_NAMESPACE
    except ImportError:  # pragma: no cover - older drgn
        return None


def history_path() -> Path:
    """``$XDG_STATE_HOME/drgn-mmtools/history`` (``~/.local/state`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "drgn-mmtools" / "history"


def split_commands(text: str) -> list[str]:
    """Split ``-c`` text at ``;`` and newlines outside quotes."""
    out, cur, quote = [], [], None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch in ";\n":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [c.strip() for c in out if c.strip()]


def _take_format(plan: Plan) -> str:
    """Remove ``--format X`` from the last stage; return X (default "text")."""
    name, argv = plan.stages[-1]
    fmt = "text"
    for i, a in enumerate(argv):
        if a == "--format" and i + 1 < len(argv):
            fmt = argv[i + 1]
            del argv[i:i + 2]
            break
        if a.startswith("--format="):
            fmt = a.split("=", 1)[1]
            del argv[i]
            break
    if fmt not in ("text", "json"):
        raise CommandError(f"--format {fmt}: choose text or json")
    return fmt


class Shell:
    """One shell on one workspace.

    :param console: where results go (a rich Console); stderr gets errors
        and progress.
    """

    def __init__(self, ws: Workspace, console: Any = None, err_console: Any = None) -> None:
        from rich.console import Console

        self.ws = ws
        # Off a terminal, keep rows whole for grep and files.
        self.console = console or (Console() if sys.stdout.isatty() else
                                   Console(width=int(os.environ.get("COLUMNS") or 240)))
        self.err = err_console or Console(stderr=True)
        self.status = 0  #: the worst status so far: 0, 1 (findings) or 2
        self.crash = _crash_namespace()
        self._pids: list[tuple[int, str]] | None = None
        self._dirs: dict[str, list[str]] = {}
        self.ws.progress = None

    # -- what the prompt and the first screen show --------------------------

    def prompt(self) -> str:
        t = self.ws.target
        return f"mm {t['arch']} {t['kernel_release']} {'live' if t['live'] else 'dump'}> "

    def summary(self) -> str:
        """One line: the kernel, its size and what it is."""
        s = kernel_summary(self.ws.prog)

        def n(v: int | None, scale: int = 1) -> str:
            return "?" if v is None else str(v // scale)
        arch = self.ws.target["arch"]
        return printable(f"Linux {s.release} ({arch}), {n(s.online_cpus)} CPUs, "
                         f"{n(s.total_ram_bytes, 1 << 20)} MiB, {n(s.tasks)} tasks; "
                         f"{self.ws.target['description']}")

    def banner(self) -> None:
        """The first screen: the summary line and the numbered findings."""
        from rich.text import Text

        self.console.print(Text(self.summary(), style="bold"))
        self.execute("findings")
        self.console.print(Text("help lists the commands; show N drills into finding N; "
                                "Tab completes; Ctrl-C stops a scan; Ctrl-D leaves", style="dim"))

    # -- running one line ---------------------------------------------------

    def execute(self, line: str, raise_errors: bool = False) -> int:
        """Run one command line and render its result; returns its status
        (0, 1 findings, 2 error) and folds it into :attr:`status`.  Errors
        are one line on stderr, or a :class:`CommandError` with
        ``raise_errors`` (drgn's prompt)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return 0
        message = None
        try:
            status = self._execute(line)
        except KeyboardInterrupt:
            # The user stopped it: nothing was found or failed, so the
            # session's status is left as it was.
            self.err.print("interrupted", style="yellow")
            return 130
        except EOFError:
            raise  # exit, quit
        except (CommandError, SyntaxError) as e:
            message = str(e) if isinstance(e, CommandError) else f"syntax error: {e.msg}"
        except READ_ERRORS as e:
            message = self.ws.session.explain(f"cannot read: {one_line(e)}")
        except Exception as e:  # noqa: BLE001 - the session survives any command
            message = f"internal error: {type(e).__name__}: {one_line(e)}"
        if message is not None:
            if raise_errors:
                raise CommandError(message)
            self._error(message)
            status = 2
        self.status = max(self.status, status)
        try:
            self.console.file.flush()
        except (AttributeError, OSError, ValueError):
            pass
        return status

    def _error(self, message: str) -> None:
        from rich.text import Text
        self.err.print(Text(printable(f"error: {message}"), style="red"), soft_wrap=True)

    def _execute(self, line: str) -> int:
        name = line.split(None, 1)[0]
        rest = line[len(name):].strip()
        if name in ("exit", "quit"):
            raise EOFError
        if name == "help":
            return self._help(rest)
        if name == "py":
            return self._py(rest)
        if name == "refresh":
            self.ws.session.refresh()
            self.ws.results = []
            self._pids, self._dirs = None, {}
            return 0
        if name in COMMANDS:
            plan = parse_line(line)
            fmt = _take_format(plan)
            if self.ws.live:  # a live kernel has moved on since the last command
                self.ws.session.refresh()
                self._pids, self._dirs = None, {}
            with self._progress():  # gone from the screen before the result is drawn
                out = run_plan(self.ws, plan, line)
            self._emit(out, plan, fmt)
            return out.status
        return self._drgn(name, line)

    def _drgn(self, name: str, line: str) -> int:
        """A command of drgn's: its default namespace (crash, sh, py,
        mm_*), then crash's commands."""
        prog = self.ws.prog
        globals_ = self._py_namespace()
        for namespace in (DEFAULT_COMMAND_NAMESPACE, self.crash):
            if namespace is None:
                continue
            try:
                namespace.lookup(prog, name)
            except CommandError:
                continue
            sys.stdout.flush()
            namespace.run(prog, line, globals=globals_)
            sys.stdout.flush()
            return 0
        raise CommandError(f"{name}: command not found (help lists the commands)")

    def _emit(self, out: Output, plan: Plan, fmt: str) -> None:
        """Render once: to the console, a redirection, or a system pipe."""
        from rich.console import Console

        def draw(console: Any) -> None:
            if fmt == "json":
                console.file.write(to_json(out) + "\n")
            else:
                render(console, out)

        targets = [r for r in plan.redirections if r.fd == 1]
        if any(r.fd not in (1,) or r.op == "<" for r in plan.redirections):
            raise CommandError("only > FILE and >> FILE redirect our commands")
        if targets:
            r = targets[-1]
            with open(r.path, "a" if r.op == ">>" else "w") as f:
                draw(Console(file=f, width=200, no_color=True, highlight=False))
            return
        if plan.shell_pipeline:
            buf = io.StringIO()
            draw(Console(file=buf, width=self.console.width, no_color=True, highlight=False))
            sys.stdout.flush()
            subprocess.run(plan.shell_pipeline, shell=True, input=buf.getvalue(), text=True,
                           stdout=self.console.file if _has_fileno(self.console.file)
                           else None, check=False)
            return
        if fmt == "json":
            self.console.file.write(to_json(out) + "\n")
            self.console.file.flush()
        else:
            render(self.console, out)

    @contextmanager
    def _progress(self) -> Iterator[None]:
        """A progress bar on stderr while a command runs checks (terminal only)."""
        if not self.err.is_terminal:
            yield
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=self.err, transient=True) as bar:
            task = bar.add_task("", total=None, visible=False)

            def update(what: str, done: int, total: int) -> None:
                bar.update(task, description=what, completed=done, total=total or None,
                           visible=True)
            self.ws.progress = update
            try:
                yield
            finally:
                self.ws.progress = None

    # -- built-ins ----------------------------------------------------------

    def _help(self, topic: str) -> int:
        from rich.table import Table
        from rich.text import Text

        topic = topic.strip()
        if not topic:
            table = Table(show_edge=False, box=None, header_style="bold")
            table.add_column("command", no_wrap=True, style="cyan")
            table.add_column("what it does")
            for name, info in COMMANDS.items():
                table.add_row(name, info.description)
            for name, what in BUILTINS.items():
                table.add_row(name, what)
            self.console.print(table)
            self.console.print(Text(
                "Pipes: findings --check hwpoison-pagecache | page; tasks --stuck | vma. "
                "'| cmd' and '> file' work on the last stage; --format json on any command. "
                "Other names go to drgn: bt PID, ps, kmem -p, crash CMD, sh CMD.", style="dim"))
            return 0
        if topic in BUILTINS:
            self.console.print(Text(f"{topic}: {BUILTINS[topic]}"))
            return 0
        if topic not in COMMANDS:
            raise CommandError(f"help: no command {topic!r} (help lists them)")
        cmd = MM_NAMESPACE.lookup(self.ws.prog, topic)
        self.console.print(Text(f"usage: {cmd.format_usage()}", style="bold"))
        self.console.print(Text(COMMANDS[topic].description))
        self.console.print(Text(cmd.format_help()))
        return 0

    def _py_namespace(self) -> dict[str, Any]:
        ns: dict[str, Any] = {}
        for module in ("drgn.helpers.common", "drgn.helpers.linux"):
            try:
                mod = __import__(module, fromlist=["__all__"])
                for key in getattr(mod, "__all__", ()):
                    ns[key] = getattr(mod, key)
            except ImportError:  # pragma: no cover
                pass
        ns.update(drgn=drgn, prog=self.ws.prog, ws=self.ws, session=self.ws.session,
                  Object=drgn.Object)
        return ns

    def _py(self, source: str) -> int:
        ns = self._py_namespace()
        if not source:
            if not sys.stdin.isatty():
                raise CommandError("py: give the code on the line (py prog['jiffies'])")
            code.interact(banner="Python: prog, ws, session and drgn's Linux helpers; "
                                 "Ctrl-D returns to the shell", local=ns, exitmsg="")
            return 0
        try:
            compiled = compile(source, "<py>", "eval")
        except SyntaxError:
            exec(compile(source, "<py>", "exec"), ns)
            return 0
        value = eval(compiled, ns)
        if value is not None:
            from rich.text import Text
            self.console.print(Text(printable(repr(value) if not isinstance(value, drgn.Object)
                                              else str(value))))
        return 0

    # -- completion data ----------------------------------------------------

    def pids(self) -> list[tuple[int, str]]:
        if self._pids is None:
            out = []
            try:
                for task in all_tasks(self.ws.prog):
                    try:
                        out.append((task.pid.value_(), task_comm(task)))
                    except READ_ERRORS:
                        continue
            except READ_ERRORS:
                pass
            self._pids = out
        return self._pids

    def paths(self, prefix: str) -> list[str]:
        """Cached paths under ``prefix``'s directory that start with it."""
        from drgn.helpers.linux.fs import path_lookup

        head, _, tail = prefix.rpartition("/")
        directory = head or "/"
        if directory not in self._dirs:
            names = []
            try:
                found = path_lookup(self.ws.prog, directory)
                for child in dentry_children(found.dentry):
                    name = child.d_name.name.string_().decode(errors="replace")
                    inode = child.d_inode.read_()
                    if not inode:
                        continue
                    is_dir = (inode.i_mode.value_() & 0o170000) == 0o040000
                    names.append(name + ("/" if is_dir else ""))
            except (LookupError, *READ_ERRORS):
                pass
            self._dirs[directory] = sorted(names)
        base = head + "/"
        return [base + n for n in self._dirs[directory] if n.startswith(tail)]

    def completion_data(self) -> CompletionData:
        others = sorted(set(BUILTINS) | {n for n, _ in DEFAULT_COMMAND_NAMESPACE.enabled(
            self.ws.prog)} | ({n for n, _ in self.crash.enabled(self.ws.prog)}
                              if self.crash else set()))
        return CompletionData(
            commands=COMMANDS, other_commands=others, checks=list(all_checks()),
            pids=self.pids, paths=self.paths,
            findings=lambda: [f.summary for f in self.ws.findings()],
            help_topics=tuple(BUILTINS))

    # -- loops --------------------------------------------------------------

    def run_lines(self, lines: Iterable[str]) -> int:
        """Batch mode: run each line; the status is the worst seen."""
        for line in lines:
            try:
                self.execute(line)
            except EOFError:
                break
        return self.status

    def interact(self, input: Any = None, output: Any = None, history: bool = True) -> int:
        """The prompt_toolkit loop, until Ctrl-D, ``exit`` or the end of input."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        hist: Any = InMemoryHistory()
        if history:
            path = history_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(exist_ok=True)
                hist = FileHistory(str(path))
            except OSError:
                pass
        session: PromptSession = PromptSession(
            history=hist, completer=MmCompleter(self.completion_data()),
            complete_while_typing=False, input=input, output=output)
        while True:
            try:
                line = session.prompt(self.prompt())
            except KeyboardInterrupt:
                continue  # Ctrl-C abandons the line
            except EOFError:
                break
            try:
                self.execute(line)
            except EOFError:
                break
        return self.status


def _has_fileno(f: TextIO) -> bool:
    try:
        f.fileno()
        return True
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False
