"""Find a dump's vmlinux from the dump's own VMCOREINFO (OSRELEASE and
BUILD-ID) in the places distributions install debug info.

For each debug directory (``/usr/lib/debug`` last, after every one given):
``DIR/.build-id/NN/REST.debug``, ``DIR/boot/vmlinux-RELEASE`` and
``DIR/lib/modules/RELEASE/vmlinux``; then ``/boot/vmlinux-RELEASE`` and
``/lib/modules/RELEASE/build/vmlinux``.  A candidate whose build ID is not
the dump's is passed over, so two kernels with one release string (two
arches, two builds) never get each other's debug info.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .dumpfile import dump_vmcoreinfo, elf_build_id, parse_vmcoreinfo

__all__ = ("DebugInfo", "DEFAULT_DEBUG_DIR", "candidates", "find_debug_info")

DEFAULT_DEBUG_DIR = Path("/usr/lib/debug")


@dataclass
class DebugInfo:
    """What was found for one dump."""

    release: str | None  #: OSRELEASE from the dump
    build_id: str | None  #: BUILD-ID from the dump
    vmlinux: Path | None = None
    modules: list[Path] = field(default_factory=list)  #: from a fixture manifest
    how: str = ""  #: where it was found ("build-id", "release", "manifest")
    reason: str = ""  #: why nothing was found


def candidates(release: str | None, build_id: str | None,
               debug_dirs: Sequence[Path]) -> list[tuple[Path, str]]:
    """Every place to look, in order, with how it was derived."""
    out: list[tuple[Path, str]] = []
    for d in [*debug_dirs, DEFAULT_DEBUG_DIR]:
        if build_id and len(build_id) > 2:
            out.append((d / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug", "build-id"))
        if release:
            out.append((d / "boot" / f"vmlinux-{release}", "release"))
            out.append((d / "lib" / "modules" / release / "vmlinux", "release"))
    if release:
        out.append((Path("/boot") / f"vmlinux-{release}", "release"))
        out.append((Path("/lib/modules") / release / "build" / "vmlinux", "release"))
    return out


def _from_manifest(dump: Path) -> tuple[Path, list[Path]] | None:
    """A fixture manifest next to the dump names its debug files."""
    manifest = dump.parent / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
        if (dump.parent / data["dump"]).resolve() != dump.resolve():
            return None
        base = manifest.parent
        return base / data["vmlinux"], [base / m for m in data.get("modules", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def from_debuginfod(dump: Path) -> tuple[Path | None, str]:
    """The vmlinux of ``dump`` from the debuginfod servers of
    ``DEBUGINFOD_URLS``, through drgn's own finder (drgn 0.0.28 and later,
    with libdebuginfod installed); returns (path, "") or (None, why not)."""
    import drgn

    from .kernel.probe import one_line, quiet_drgn_logs

    if not os.environ.get("DEBUGINFOD_URLS"):
        return None, ""
    prog = drgn.Program()
    quiet_drgn_logs()
    try:
        if "debuginfod" not in prog.registered_debug_info_finders():
            return None, "this drgn has no debuginfod support"
        prog.set_core_dump(str(dump))
        prog.set_enabled_debug_info_finders(["debuginfod"])
        prog.load_debug_info(main=True)
    except drgn.MissingDebugInfoError:
        pass
    except (AttributeError, OSError, ValueError, drgn.FaultError) as e:
        return None, f"debuginfod: {one_line(e)}"
    try:
        path = prog.main_module().debug_file_path
    except LookupError:
        path = None
    if path is None:
        return None, f"not on the debuginfod servers ({os.environ['DEBUGINFOD_URLS']})"
    return Path(path), ""


def find_debug_info(dump: Path, debug_dirs: Sequence[Path] = (),
                    debuginfod: bool = True) -> DebugInfo:
    """The vmlinux for ``dump``; ``reason`` says why there is none.  The local
    places come first; then, with ``debuginfod``, the servers of
    ``DEBUGINFOD_URLS``."""
    raw = dump_vmcoreinfo(dump)
    info = parse_vmcoreinfo(raw) if raw else {}
    found = DebugInfo(info.get("OSRELEASE"), (info.get("BUILD-ID") or "").lower() or None)
    manifest = _from_manifest(dump)
    if manifest is not None:
        found.vmlinux, found.modules = manifest
        found.how = "manifest"
        return found
    if found.release is None and found.build_id is None:
        found.reason = ("the dump carries no VMCOREINFO this tool can read (flattened or "
                        "not a kdump/ELF dump): give the vmlinux with drgn-mmtools check")
        return found
    mismatched = []
    for path, how in candidates(found.release, found.build_id, debug_dirs):
        if not path.is_file():
            continue
        have = elf_build_id(path)
        if found.build_id and have and have != found.build_id:
            mismatched.append(str(path))
            continue
        found.vmlinux, found.how = path, how
        return found
    fetched, why_not = from_debuginfod(dump) if debuginfod and found.build_id else (None, "")
    if fetched is not None:
        found.vmlinux, found.how = fetched, "debuginfod"
        return found
    where = ", ".join(str(d) for d in [*debug_dirs, DEFAULT_DEBUG_DIR])
    found.reason = (f"no vmlinux for {found.release or 'an unknown release'}"
                    f" (build ID {found.build_id or 'unknown'}) under {where}, /boot or "
                    f"/lib/modules")
    if mismatched:
        found.reason += f"; {len(mismatched)} with another build ID ({mismatched[0]})"
    if why_not:
        found.reason += f"; {why_not}"
    return found
