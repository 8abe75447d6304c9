"""Open the thing under inspection as a :class:`drgn.Program`.

Targets: a vmcore (ELF or kdump-compressed), the running kernel, or a live
QEMU guest over QMP.  Every failure becomes a :class:`TargetError` whose
message is one line a user can act on.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import drgn

from .dumpfile import elf_platform, read_header
from .kernel.probe import object_value, one_line


class TargetError(Exception):
    """The target or its debug info cannot be opened; the message is one line."""


@dataclass
class TargetSpec:
    """What to open: exactly one of ``core``, ``live`` or ``qemu``."""

    core: Path | None = None
    live: bool = False
    qemu: str | None = None
    vmlinux: Path | None = None
    modules: Sequence[Path] = field(default_factory=list)
    #: where module debug info is looked for, before /usr/lib/debug (same layouts)
    debug_dirs: Sequence[Path] = field(default_factory=list)

    def describe(self) -> str:
        if self.core is not None:
            return str(self.core)
        if self.qemu is not None:
            return f"QEMU guest at {self.qemu}"
        return "the running kernel"


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise TargetError(f"{what} {path}: no such file")
    if path.is_dir():
        raise TargetError(f"{what} {path}: is a directory")
    if not os.access(path, os.R_OK):
        raise TargetError(f"{what} {path}: permission denied")
    if path.stat().st_size == 0:
        raise TargetError(f"{what} {path}: empty file")


def open_program(spec: TargetSpec) -> drgn.Program:
    """Open the target and load its debug info.

    :returns: a program whose ``vmlinux`` debug info is loaded.
    :raises TargetError: on a missing or unreadable target or debug info.
    """
    for path in ([spec.vmlinux] if spec.vmlinux else []) + list(spec.modules):
        _check_file(Path(path), "debug info")
    prog = drgn.Program()
    try:
        with _drgn_plugins_for(spec):
            if spec.core is not None:
                _check_file(spec.core, "vmcore")
                prog = _open_core(spec)
            else:
                _set_target(prog, spec)
    except TargetError:
        raise
    except Exception as e:  # noqa: BLE001 - drgn reports libkdumpfile errors as Exception
        raise TargetError(f"cannot open {spec.describe()}: {one_line(e)}") from None
    if not (prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL):
        raise TargetError(f"{spec.describe()} is not a Linux kernel core dump")
    finish_program(prog, spec)
    return prog


@contextmanager
def _drgn_plugins_for(spec: TargetSpec) -> Iterator[None]:
    """drgn loads the ``drgn.plugins`` entry points when the first program of
    a process is set: a scan of every installed package's metadata, then
    the imports (160 ms here, half of it ours).  Ours only adds the mm
    commands to drgn's prompt, which a program opened here does not need.
    With explicit debug info (a vmlinux, no debug directories) drgn's
    finders are not used, so no plugin loads; otherwise the others (debug
    info finders, say) do.  ``DRGN_PLUGINS`` or ``DRGN_DISABLE_PLUGINS``
    set by the user are left as they are."""
    old = os.environ.get("DRGN_DISABLE_PLUGINS")
    if old is None and not os.environ.get("DRGN_PLUGINS"):
        explicit = spec.vmlinux is not None and not spec.debug_dirs
        os.environ["DRGN_DISABLE_PLUGINS"] = "*" if explicit else "drgn_mmtools"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("DRGN_DISABLE_PLUGINS", None)
        else:
            os.environ["DRGN_DISABLE_PLUGINS"] = old


def _set_target(prog: drgn.Program, spec: TargetSpec) -> None:
    """Attach ``prog`` to a live target: QEMU's QMP socket, or this machine."""
    if spec.qemu is not None:
        if not hasattr(prog, "set_qemu_qmp"):
            _qemu_unsupported()
        prog.set_qemu_qmp(spec.qemu)
    else:
        prog.set_kernel()


def finish_program(prog: drgn.Program, spec: TargetSpec) -> None:
    """Load the debug info of an opened kernel program and read what every
    check needs first.  Also for programs made another way (a custom memory
    source, ``set_linux_kernel_custom``).

    :raises TargetError: when the debug info does not fit or the kernel's
        first objects cannot be read.
    """
    _load_debug_info(prog, spec)
    _sanity_read(prog, spec)


def _open_core(spec: TargetSpec) -> drgn.Program:
    """A Program on a core dump.

    drgn (libkdumpfile) cannot tell the architecture of QEMU's kdump-compressed
    dumps ("KDUMP_ATTR_ARCH_NAME: Key has no value"); the vmlinux's ELF header
    names it.
    """
    assert spec.core is not None
    prog = drgn.Program()
    try:
        prog.set_core_dump(str(spec.core))
        return prog
    except Exception:
        header = read_header(spec.core)
        platform = elf_platform(spec.vmlinux) if spec.vmlinux else None
        if header.format != "kdump" or platform is None:
            raise
    prog = drgn.Program(platform)
    prog.set_core_dump(str(spec.core))
    return prog


def _dump_hint(prog: drgn.Program, spec: TargetSpec) -> str:
    """Advice for dumps drgn is known to misread, or ""."""
    if spec.core is None:
        return ""
    header = read_header(spec.core)
    page_size = object_value(prog, "PAGE_SIZE", 4096)
    if header.format == "kdump" and header.block_size not in (0, page_size):
        return (f"; the kdump header's block size is {header.block_size} but the kernel's pages "
                f"are {page_size} bytes, which drgn cannot translate (QEMU writes such "
                f"kdump-compressed dumps of aarch64 guests): take an ELF dump instead "
                f"(dump-guest-memory without a format, or virsh dump --memory-only) and "
                f"compress it with makedumpfile -c if needed")
    return ""


def _sanity_read(prog: drgn.Program, spec: TargetSpec) -> None:
    """Read what every check needs first; a dump that fails here is unusable."""
    for what in ("init_uts_ns", "init_task"):
        try:
            obj = prog[what]
            prog.read(obj.address_, min(obj.type_.size, 256))
        except (drgn.FaultError, drgn.BadDataError) as e:  # BadDataError: bad VMCOREINFO
            hint = _dump_hint(prog, spec) or " (truncated or filtered dump?)"
            raise TargetError(f"cannot read {what} from {spec.describe()}: {one_line(e)}"
                              f"{hint}") from None
        except (KeyError, LookupError):
            raise TargetError(f"the debug info has no {what}: is it a Linux vmlinux?") from None


def _qemu_unsupported() -> None:
    raise TargetError(f"this drgn ({drgn.__version__}) cannot attach to QEMU guests")


def _build_id(prog: drgn.Program) -> str:
    try:
        bid = prog.main_module().build_id
    except LookupError:
        return "unknown"
    return bid.hex() if bid else "unknown"


def _load_debug_info(prog: drgn.Program, spec: TargetSpec) -> None:
    """Load explicit files only when given, else search the way drgn does.

    With an explicit vmlinux, drgn's own finders stay out of it: a vmlinux that
    does not match is an error, never a silent fallback to another file.
    """
    explicit = [str(p) for p in ([spec.vmlinux] if spec.vmlinux else []) + list(spec.modules)]
    if spec.debug_dirs:
        options = prog.debug_info_options
        options.directories = (*map(str, spec.debug_dirs), *options.directories)
    try:
        if spec.vmlinux is not None and spec.debug_dirs:
            # The vmlinux given; modules wherever the debug directories have them.
            prog.load_debug_info(explicit, default=True)
        elif spec.vmlinux is not None:
            prog.load_debug_info(explicit)
        else:
            prog.load_debug_info(explicit, main=True)
    except drgn.MissingDebugInfoError:
        pass  # judged below: only the kernel's own debug info is required
    except Exception as e:  # noqa: BLE001 - libelf/libdw errors arrive as Exception
        raise TargetError(f"cannot load debug info: {one_line(e)}") from None
    try:
        missing = prog.main_module().wants_debug_file()
    except LookupError:
        missing = True
    if missing:
        if spec.vmlinux is not None:
            raise TargetError(f"{spec.vmlinux} does not match the kernel of {spec.describe()} "
                              f"(kernel build ID {_build_id(prog)})")
        raise TargetError(f"no debug info found for the kernel of {spec.describe()} "
                          f"(build ID {_build_id(prog)}): pass --vmlinux")
