"""The ``drgn-mmtools`` command line.

Exit codes: 0 success, 2 the tool could not do its job (bad target, wrong
debug info), with a one-line message on stderr and never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .summary import kernel_summary
from .target import TargetError, TargetSpec, open_program, quiet_drgn_logs

CHECK_HELP = """exit status: 0 no findings, 1 findings, 2 the tool could not do its job
(the target or its debug info could not be opened, or a check failed; the
output still holds what the other checks found)."""

EXIT_OK, EXIT_ERROR = 0, 2


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments that choose the target and its debug info."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("vmcore", nargs="?", type=Path, help="crash dump (ELF or kdump-compressed)")
    which.add_argument("--live", action="store_true", help="the running kernel (/proc/kcore)")
    which.add_argument("--qemu", metavar="SOCKET", help="a live QEMU guest's QMP socket")
    which.add_argument("--manifest", type=Path,
                       help="a fixture manifest.json: its dump, vmlinux and modules")
    parser.add_argument("--vmlinux", "-s", type=Path, help="kernel debug info (vmlinux)")
    parser.add_argument("--module", "-m", type=Path, action="append", default=[],
                        help="kernel module with debug info (repeatable)")


def target_spec(args: argparse.Namespace) -> TargetSpec:
    if args.manifest is not None:
        return spec_from_manifest(args.manifest, args)
    if args.vmcore is None and not args.live and args.qemu is None:
        raise TargetError("no target: give a VMCORE, --live or --qemu SOCKET")
    return TargetSpec(core=args.vmcore, live=args.live, qemu=args.qemu,
                      vmlinux=args.vmlinux, modules=args.module)


def spec_from_manifest(path: Path, args: argparse.Namespace) -> TargetSpec:
    try:
        manifest = json.loads(path.read_text())
        base = path.parent
        return TargetSpec(core=base / manifest["dump"],
                          vmlinux=args.vmlinux or base / manifest["vmlinux"],
                          modules=args.module or [base / m for m in manifest.get("modules", [])])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TargetError(f"cannot read manifest {path}: {e}") from None


def cmd_info(args: argparse.Namespace) -> int:
    prog = open_program(target_spec(args))
    s = kernel_summary(prog)
    if args.format == "json":
        print(json.dumps(s._asdict(), indent=2))
    else:
        print(f"Linux {s.release} ({s.machine}), {s.online_cpus} CPUs online, "
              f"{s.total_ram_bytes >> 20} MiB RAM in {s.page_size}-byte pages, {s.tasks} tasks")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .context import Context, Options
    from .embedded import target_of
    from .render import jsonout, text
    from .runner import exit_code, run_checks

    spec = target_spec(args)
    prog = open_program(spec)
    target = target_of(prog, spec.describe())
    options = Options(live=target["live"], sample_seconds=args.interval, workers=args.jobs)
    err = Console(stderr=True)
    progress = (lambda name: err.print(f"running {name}", style="dim", highlight=False)
                ) if err.is_terminal else None
    results = run_checks(Context(prog, options, spec), args.check, progress)
    code = exit_code(results)
    out = open(args.output, "w") if args.output else sys.stdout
    try:
        if args.format == "json":
            out.write(jsonout.dumps(jsonout.document(results, target, code)) + "\n")
        else:
            console = Console(file=out) if args.output else Console()
            text.render(console, results, target)
    finally:
        if args.output:
            out.close()
    for r in results:
        if r.failed:
            print(f"drgn-mmtools: check {r.check} failed: {r.error}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drgn-mmtools", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="summarise the target kernel")
    add_target_arguments(info)
    info.add_argument("--format", choices=("text", "json"), default="text")
    info.set_defaults(func=cmd_info)

    from .checks import all_checks
    check = sub.add_parser("check", help="run checks; exit 0 clean, 1 findings, 2 error",
                           epilog=CHECK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_arguments(check)
    check.add_argument("--check", "-c", action="append", choices=list(all_checks()),
                       help="run only this check (repeatable); all by default")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--output", "-o", type=Path, help="write the report here")
    check.add_argument("--interval", type=float, default=0.5,
                       help="live targets: seconds between fault-counter samples")
    check.add_argument("--jobs", "-j", type=int, default=0,
                       help="processes for the mem_map scan of big compressed dumps "
                            "(default: one per CPU)")
    check.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_drgn_logs()
    try:
        return args.func(args)
    except TargetError as e:
        print(f"drgn-mmtools: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
