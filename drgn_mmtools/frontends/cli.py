"""The ``drgn-mmtools`` command line.

Exit codes: 0 no findings and every read succeeded, 1 findings, 2 the tool
could not do its job (bad target or options, wrong debug info, a check that
failed or timed out, or a partial result with no findings), with one line
on stderr and never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .. import __version__
from ..dumpfile import elf_section_names
from ..kernel.summary import kernel_summary
from ..kernel.probe import quiet_drgn_logs
from ..target import TargetError, TargetSpec, open_program

CHECK_HELP = """exit status: 0 no findings and every read succeeded; 1 findings; 2 the
tool could not do its job: the target or its debug info could not be opened,
a check failed or timed out, or a check could not read everything and nothing
was found (a partial result is never reported as clean).  The report still
holds what the other checks found."""

EXIT_OK, EXIT_ERROR = 0, 2


class UsageError(Exception):
    """Options that cannot work; the message is one line."""


def add_target_arguments(parser: argparse.ArgumentParser, short_core: bool = True) -> None:
    """Arguments that choose the target and its debug info, in drgn's
    spellings too (``-c CORE``, ``-s FILE`` repeated; the shell keeps ``-c``
    for its commands)."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("vmcore", nargs="?", type=Path, help="crash dump (ELF or kdump-compressed)")
    which.add_argument(*(("-c", "--core") if short_core else ("--core",)), type=Path,
                       dest="core", help="crash dump, as drgn spells it")
    which.add_argument("--live", action="store_true", help="the running kernel (/proc/kcore)")
    which.add_argument("--qemu", metavar="SOCKET", help="a live QEMU guest's QMP socket")
    which.add_argument("--manifest", type=Path,
                       help="a fixture manifest.json: its dump, vmlinux and modules")
    parser.add_argument("--vmlinux", type=Path, help="kernel debug info (vmlinux)")
    parser.add_argument("--module", "-m", type=Path, action="append", default=[],
                        help="kernel module with debug info (repeatable)")
    parser.add_argument("-s", "--symbols", type=Path, action="append", default=[],
                        help="debug info file, as drgn takes it (repeatable): the vmlinux, "
                             "and modules (.ko) by their ELF contents")
    parser.add_argument("--debug-dir", type=Path, action="append", default=[],
                        help="look for module debug info here too, in /usr/lib/debug's "
                             "layouts (repeatable)")


def is_module_file(path: Path) -> bool:
    """A kernel module's ELF file (or its debug file), by its
    ``.gnu.linkonce.this_module`` section, or by its name."""
    if path.name.endswith((".ko", ".ko.debug", ".ko.xz", ".ko.zst", ".ko.gz")):
        return True
    return ".gnu.linkonce.this_module" in elf_section_names(path)


def split_symbols(args: argparse.Namespace) -> tuple[Path | None, list[Path]]:
    """The vmlinux and module files from --vmlinux, --module and -s."""
    vmlinux, modules = args.vmlinux, list(args.module)
    for path in args.symbols:
        if is_module_file(path):
            modules.append(path)
        elif vmlinux is None:
            vmlinux = path
        else:
            raise UsageError(f"-s {path}: a kernel image was given already ({vmlinux}); "
                             f"give modules as .ko files")
    return vmlinux, modules


def target_spec(args: argparse.Namespace) -> TargetSpec:
    vmlinux, modules = split_symbols(args)
    if args.manifest is not None:
        return spec_from_manifest(args.manifest, vmlinux, modules)
    core = args.vmcore or args.core
    if core is None and not args.live and args.qemu is None:
        raise TargetError("no target: give a VMCORE (or -c VMCORE), --live or --qemu SOCKET")
    return TargetSpec(core=core, live=args.live, qemu=args.qemu, vmlinux=vmlinux,
                      modules=modules, debug_dirs=list(args.debug_dir))


def spec_from_manifest(path: Path, vmlinux: Path | None, modules: list[Path]) -> TargetSpec:
    try:
        manifest = json.loads(path.read_text())
        base = path.parent
        return TargetSpec(core=base / manifest["dump"],
                          vmlinux=vmlinux or base / manifest["vmlinux"],
                          modules=modules or [base / m for m in manifest.get("modules", [])])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TargetError(f"cannot read manifest {path}: {' '.join(str(e).split())}") from None


def check_output_path(path: Path | None) -> None:
    """Refuse an --output that cannot be written, before any work is done."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"--output {path}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--output {path}: no such directory {parent}")
    if not os.access(path if path.exists() else parent, os.W_OK):
        raise UsageError(f"--output {path}: permission denied")


def check_sampling(args: argparse.Namespace) -> None:
    from ..analysis.session import Options
    from ..checks.base import apply_arguments

    options = Options()
    apply_arguments(options, args)
    problem = options.problem()
    if problem:
        raise UsageError(problem)
    for name in ("timeout", "check_timeout"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise UsageError(f"--{name.replace('_', '-')} {value}: give a number of seconds "
                             f"above 0")


def cmd_info(args: argparse.Namespace) -> int:
    prog = open_program(target_spec(args))
    s = kernel_summary(prog)
    if args.format == "json":
        print(json.dumps(s._asdict(), indent=2))
    else:
        def n(v, scale=1):
            return "?" if v is None else v // scale
        print(f"Linux {s.release} ({s.machine}), {n(s.online_cpus)} CPUs online, "
              f"{n(s.total_ram_bytes, 1 << 20)} MiB RAM in {s.page_size}-byte pages, "
              f"{n(s.tasks)} tasks")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from ..analysis.session import Session, Options
    from ..report.target import describe_target
    from ..report import jsonout
    from ..checks.base import apply_arguments
    from ..checks.runner import CHECK_TIMEOUT, exit_code, run_checks

    check_sampling(args)
    check_output_path(args.output)
    spec = target_spec(args)
    prog = open_program(spec)
    target = describe_target(prog, spec.describe())
    options = Options(live=target["live"], workers=args.jobs)
    apply_arguments(options, args)
    progress = None
    if sys.stderr.isatty():  # rich only for a terminal or a text report (20 ms of imports)
        from ..report.term import Console
        err = Console(stderr=True)
        progress = (lambda name: err.print(f"running {name}", style="dim", highlight=False)
                    ) if err.is_terminal else None
    session = Session(prog, options, spec)
    session.start_scan()  # the page-table walks overlap it
    results = run_checks(session, args.check, progress,
                         check_timeout=args.check_timeout or CHECK_TIMEOUT,
                         run_timeout=args.timeout)
    code = exit_code(results)
    try:
        out = open(args.output, "w") if args.output else sys.stdout
    except OSError as e:
        raise UsageError(f"--output {args.output}: {e.strerror}") from None
    try:
        if args.format == "json":
            out.write(jsonout.dumps(jsonout.document(results, target, code)) + "\n")
        else:
            from ..report import text
            from ..report.term import Console
            console = Console(file=out) if args.output else Console()
            text.render(console, results, target, verbose=args.verbose)
    finally:
        if args.output:
            out.close()
    for r in results:
        if r.failed:
            print(f"drgn-mmtools: check {r.check} failed: {r.error}", file=sys.stderr)
        elif r.timed_out:
            print(f"drgn-mmtools: check {r.check} timed out", file=sys.stderr)
    named = sorted({str(f.evidence.get("handler_module")) for r in results for f in r.findings
                    if f.evidence.get("symbol_source") == "kallsyms"})
    if named:
        print(f"drgn-mmtools: no debug info for module {', '.join(named)}: handler names come "
              f"from kallsyms (give the .ko with --module or -s for types and lines)",
              file=sys.stderr)
    if code == EXIT_ERROR and not any(r.failed or r.timed_out for r in results):
        print("drgn-mmtools: no findings, but some reads failed: the result is partial "
              "(see 'unreadable')", file=sys.stderr)
    return code


def cmd_shell(args: argparse.Namespace) -> int:
    from ..commands.workspace import Workspace
    from .shell import Shell, split_commands

    spec = target_spec(args)
    prog = open_program(spec)
    shell = Shell(Workspace.open(prog, spec))
    if args.commands is not None:
        return shell.run_lines(split_commands(args.commands))
    if not sys.stdin.isatty():
        return shell.run_lines(sys.stdin)
    shell.banner()
    return shell.interact(history=not args.no_history)


def cmd_triage(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .. import triage
    from ..checks import all_checks
    from ..report.safe import printable
    from ..report.term import Console

    if not args.dir.exists():
        raise UsageError(f"{args.dir}: no such file or directory")
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: give at least 1")
    unknown = [c for c in args.check if c not in all_checks()]
    if unknown:
        raise UsageError(f"--check {unknown[0]}: no such check")
    if args.report_dir is not None:
        args.report_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for result in triage.triage(args.dir, args.debug_dir, args.check, args.jobs, args.force,
                                args.report_dir, args.timeout,
                                args.memory_limit << 20 if args.memory_limit else None,
                                args.debuginfod):
        results.append(result)
        print(triage.line(result), flush=True)
    err = Console(stderr=True)
    table = Table(title=f"{len(results)} dumps under {printable(args.dir)}", box=None,
                  header_style="bold")
    table.add_column("finding", no_wrap=True)
    table.add_column("dumps", justify="right")
    table.add_column("findings", justify="right")
    for name, dumps, n in triage.summary_rows(results):
        table.add_row(printable(name), str(dumps), str(n))
    err.print(table)
    if not results:
        print(f"drgn-mmtools: no dumps under {args.dir}", file=sys.stderr)
        return EXIT_OK
    if any(r.exit_code == 2 for r in results):
        return EXIT_ERROR
    return 1 if any(r.rules for r in results) else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drgn-mmtools", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"drgn-mmtools {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="summarise the target kernel")
    add_target_arguments(info)
    info.add_argument("--format", choices=("text", "json"), default="text")
    info.set_defaults(func=cmd_info)

    from ..checks import all_checks
    check = sub.add_parser("check", help="run checks; exit 0 clean, 1 findings, 2 error",
                           epilog=CHECK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_arguments(check)
    check.add_argument("--check", action="append", choices=list(all_checks()),
                       help="run only this check (repeatable); all by default")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--output", "-o", type=Path, help="write the report here")
    check.add_argument("--verbose", "-v", action="store_true",
                       help="text: list every check's records too (DAX entries, candidates)")
    from ..checks.base import check_arguments
    for arg in check_arguments():  # declared by the checks themselves (fault-retry's)
        check.add_argument(*arg.args, **arg.kwargs)
    check.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="stop the whole run after this long; checks cut short report "
                            "what they had, as timed out")
    check.add_argument("--check-timeout", type=float, metavar="SECONDS",
                       help="stop any one check after this long (default 600)")
    check.add_argument("--jobs", "-j", type=int, default=0,
                       help="processes for the mem_map scan of big compressed dumps "
                            "(default: one per CPU)")
    check.set_defaults(func=cmd_check)

    shell = sub.add_parser(
        "shell", help="explore the target at a prompt (or run commands from -c or stdin)",
        description="An interactive shell over the target: checks, findings, pages, XArrays, "
                    "VMAs, page tables, DAX entries; 'help' lists the commands.",
        epilog="exit status (batch use): 0 nothing found, 1 findings, 2 a command failed or "
               "could not read everything")
    add_target_arguments(shell, short_core=False)
    shell.add_argument("-c", "--commands", metavar="'CMD; CMD'",
                       help="run these commands (separated by ; or newlines) and exit")
    shell.add_argument("--no-history", action="store_true",
                       help="do not read or write the history file")
    shell.set_defaults(func=cmd_shell)

    tri = sub.add_parser(
        "triage", help="check every dump under a directory (kdump-tools and kexec-tools "
                       "layouts); one JSON line per dump",
        description="Runs the checks on every crash dump under DIR, a few at a time, finds "
                    "each dump's vmlinux from its own VMCOREINFO, writes DUMP.mmtools.json "
                    "next to it, prints one JSON line per dump and a summary table on stderr.",
        epilog="exit status: 0 every dump clean; 1 findings; 2 a dump could not be checked")
    tri.add_argument("dir", type=Path, metavar="DIR", help="e.g. /var/crash")
    tri.add_argument("--debug-dir", type=Path, action="append", default=[],
                     help="debug info in /usr/lib/debug's layouts (.build-id/, boot/, "
                          "lib/modules/); repeatable, searched before /usr/lib/debug")
    tri.add_argument("--no-debuginfod", dest="debuginfod", action="store_false",
                     help="do not fetch a vmlinux found nowhere local from the servers "
                          "of DEBUGINFOD_URLS (fetched by default, through drgn)")
    tri.add_argument("--check", action="append", default=[], metavar="CHECK",
                     help="run only this check (repeatable)")
    tri.add_argument("--jobs", "-j", type=int, default=2, help="dumps checked at once")
    tri.add_argument("--force", action="store_true", help="check dumps already reported again")
    tri.add_argument("--report-dir", type=Path,
                     help="write reports here instead of next to each dump")
    tri.add_argument("--timeout", type=float, metavar="SECONDS",
                     help="stop each dump's check after this long")
    tri.add_argument("--memory-limit", type=int, metavar="MIB",
                     help="address space of each check (default: RAM / jobs, at least 2 GiB)")
    tri.set_defaults(func=cmd_triage)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_drgn_logs()
    try:
        return args.func(args)
    except (TargetError, UsageError) as e:
        print(f"drgn-mmtools: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a pipeline gets one line and exit 2, never a traceback
        print(f"drgn-mmtools: internal error: {type(e).__name__}: {' '.join(str(e).split())} "
              f"(set DRGN_MMTOOLS_DEBUG=1 for the traceback)", file=sys.stderr)
        if os.environ.get("DRGN_MMTOOLS_DEBUG"):
            raise
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
