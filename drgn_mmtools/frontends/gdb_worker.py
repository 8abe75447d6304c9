"""The drgn side of the gdb front end: a process that builds a drgn
Program over memory that gdb serves, and runs shell lines on it.

Started by :mod:`drgn_mmtools.frontends.gdb` as ``python -m
drgn_mmtools.frontends.gdb_worker ARCH VMLINUX [FILE...]`` with the link on
the two file descriptors ``$MM_GDB_FDS`` names (from gdb, to gdb).  It finds the kernel's KASLR offset and
VMCOREINFO through gdb's virtual reads (x86_64: ``linux_banner`` probed
every 2 MiB of the 1 GiB image range; aarch64: the VBAR_EL1 value gdb
passes), then gives drgn only physical memory and lets it translate
(:meth:`drgn.Program.set_linux_kernel_custom`).
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
from pathlib import Path
from typing import Callable

import drgn

from ..dumpfile import elf_symbols
from ..kernel.probe import one_line, quiet_drgn_logs
from .memory_link import recv, send

__all__ = ("Link", "find_kaslr_offset", "read_vmcoreinfo", "build_program", "main")

BANNER = b"Linux version "
_WANTED = {"linux_banner", "vmcoreinfo_data", "vmcoreinfo_size", "vectors", "_text",
           "memstart_addr"}
#: Where arm64 boards put RAM (QEMU virt at 1 GiB first); the kernel image
#: (2 MiB aligned) is looked for in the first GiB of each.
ARM64_RAM_BASES = (0x40000000, 0x80000000, 0x0, 0x800000000, 0x8000000000)


class WorkerError(Exception):
    """The target cannot be used; one line."""


class Link:
    """Reads memory through gdb."""

    def __init__(self, rx, tx) -> None:
        self.rx, self.tx = rx, tx

    def read(self, space: str, address: int, size: int) -> bytes | None:
        send(self.tx, b"R", space.encode() + struct.pack("<QI", address, size))
        tag, payload = recv(self.rx)
        if tag != b"M" or not payload[:1] == b"\1":
            return None
        return payload[1:]

    def physical(self, address: int, count: int, offset: int, physical: bool) -> bytes:
        data = self.read("p", address, count)
        if data is None or len(data) != count:
            raise drgn.FaultError("gdb cannot read this physical memory", address)
        return data


def find_kaslr_offset(read: Callable[[int, int], bytes | None], banner: int,
                      candidates) -> int | None:
    """The first offset in ``candidates`` at which ``linux_banner`` (link
    address ``banner``) reads "Linux version "; None when none does."""
    for off in candidates:
        if read(banner + off, len(BANNER)) == BANNER:
            return off
    return None


def read_vmcoreinfo(read: Callable[[int, int], bytes | None], arch: str, vmlinux: Path,
                    vbar: int | None = None) -> bytes:
    """VMCOREINFO from the kernel's ``vmcoreinfo_data``, read virtually.

    :raises WorkerError: when the banner or the data cannot be found.
    """
    syms = elf_symbols(vmlinux, _WANTED)
    banner = syms.get("linux_banner")
    if banner is None or "vmcoreinfo_data" not in syms:
        raise WorkerError(f"{vmlinux} has no linux_banner or vmcoreinfo_data symbol: give gdb "
                          f"the kernel's vmlinux or its debug file")
    candidates: list[int] | range
    if arch == "aarch64":
        candidates = [vbar - syms["vectors"]] if vbar is not None and "vectors" in syms else []
        candidates = [*candidates, 0]
    else:
        candidates = range(0, 1 << 30, 2 << 20)
    off = find_kaslr_offset(read, banner, candidates)
    if off is None:
        raise WorkerError("no 'Linux version' banner at any KASLR offset of this vmlinux: does "
                          "it match the kernel gdb is attached to?")
    ptr = read(syms["vmcoreinfo_data"] + off, 8)
    size = read(syms["vmcoreinfo_size"] + off, 8) if "vmcoreinfo_size" in syms else None
    if not ptr or not size:
        raise WorkerError("vmcoreinfo_data cannot be read through gdb")
    p, n = struct.unpack("<Q", ptr)[0], struct.unpack("<Q", size)[0]
    data = read(p, n) if 0 < n < 1 << 16 else None
    if not data or not data.startswith(b"OSRELEASE="):
        raise WorkerError("vmcoreinfo_data does not hold VMCOREINFO (a kernel without "
                          "CONFIG_CRASH_CORE?)")
    return data


def read_vmcoreinfo_arm64_physical(read: Callable[[int, int], bytes | None],
                                   vmlinux: Path) -> bytes:
    """VMCOREINFO through physical memory only, for an arm64 kernel whose
    image gdb cannot read virtually (a CPU at EL0 with the kernel unmapped,
    KPTI): find the image by ``linux_banner`` at its link offset from a 2 MiB
    boundary (the Image header's own magic is gone once the kernel runs),
    read ``vmcoreinfo_data`` there, and turn that linear-map pointer into a
    physical address with ``memstart_addr`` (PHYS_OFFSET).

    :raises WorkerError: when the image or the data cannot be found.
    """
    syms = elf_symbols(vmlinux, _WANTED)
    need = {"_text", "linux_banner", "vmcoreinfo_data", "vmcoreinfo_size", "memstart_addr"}
    if not need <= set(syms):
        raise WorkerError(f"{vmlinux} lacks one of {', '.join(sorted(need))}")
    text = syms["_text"]
    base = None
    for ram in ARM64_RAM_BASES:
        for pa in range(ram, ram + (1 << 30), 2 << 20):
            if read(pa + syms["linux_banner"] - text, len(BANNER)) == BANNER:
                base = pa
                break
        if base is not None:
            break
    if base is None:
        raise WorkerError("the kernel image is not in physical memory where arm64 boards put "
                          "RAM, and gdb cannot read it virtually")

    def word(sym: str) -> int | None:
        data = read(base + syms[sym] - text, 8)
        return struct.unpack("<Q", data)[0] if data else None

    ptr, size, phys_offset = word("vmcoreinfo_data"), word("vmcoreinfo_size"), \
        word("memstart_addr")
    if ptr is None or size is None or phys_offset is None or not 0 < size < 1 << 16:
        raise WorkerError("vmcoreinfo_data cannot be read in physical memory")
    # A linear-map address has every bit above VA_BITS set and bit VA_BITS-1
    # clear: __lm_to_phys(addr) is (addr & ~PAGE_OFFSET) + PHYS_OFFSET.
    va_bits = (~ptr & ((1 << 64) - 1)).bit_length()
    data = read((ptr & ((1 << va_bits) - 1)) + phys_offset, size)
    if not data or not data.startswith(b"OSRELEASE="):
        raise WorkerError("vmcoreinfo_data does not hold VMCOREINFO")
    return data


def build_program(link: Link, arch: str, vmlinux: Path, extra: list[Path],
                  vbar: int | None = None, vmcoreinfo: bytes | None = None) -> drgn.Program:
    """A drgn Program over gdb's physical memory, with the debug info loaded."""
    if vmcoreinfo is None:
        try:
            vmcoreinfo = read_vmcoreinfo(lambda a, n: link.read("v", a, n), arch, vmlinux, vbar)
        except WorkerError:
            if arch != "aarch64":
                raise
            vmcoreinfo = read_vmcoreinfo_arm64_physical(lambda a, n: link.read("p", a, n),
                                                        vmlinux)
    flags = drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN
    architecture = drgn.Architecture.X86_64 if arch == "x86_64" else drgn.Architecture.AARCH64
    prog = drgn.Program(drgn.Platform(architecture, flags))
    prog.add_memory_segment(0, (1 << 64) - 1, link.physical, physical=True)
    prog.set_linux_kernel_custom(vmcoreinfo, False)
    try:
        prog.load_debug_info([str(vmlinux), *map(str, extra)])
    except drgn.MissingDebugInfoError:
        pass
    return prog


class _Writer(io.TextIOBase):
    """Text written here goes to gdb as output frames."""

    def __init__(self, tx) -> None:
        self.tx = tx

    def write(self, s: str) -> int:
        if s:
            send(self.tx, b"O", s.encode("utf-8", "replace"))
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def main(argv: list[str]) -> int:
    from rich.console import Console

    from ..commands.workspace import Workspace
    from .shell import Shell

    quiet_drgn_logs()
    rx_fd, tx_fd = (int(x) for x in os.environ["MM_GDB_FDS"].split(","))
    rx, tx = os.fdopen(rx_fd, "rb"), os.fdopen(tx_fd, "wb")
    arch, vmlinux, extra = argv[0], Path(argv[1]), [Path(a) for a in argv[2:]]
    vbar = int(os.environ["MM_GDB_VBAR"], 0) if os.environ.get("MM_GDB_VBAR") else None
    description = os.environ.get("MM_GDB_TARGET", "gdb target")
    link = Link(rx, tx)
    out = _Writer(tx)
    sys.stdout = out  # drgn's own commands print
    shell = None
    try:
        note = os.environ.get("MM_GDB_VMCOREINFO")
        prog = build_program(link, arch, vmlinux, extra, vbar,
                             Path(note).read_bytes() if note else None)
        ws = Workspace.open(prog)
        ws.target["description"] = description
        console = Console(file=out, width=int(os.environ.get("COLUMNS") or 160), no_color=True,
                          highlight=False)
        shell = Shell(ws, console=console, err_console=console)
        send(tx, b"D", b"\0")
    except (WorkerError, OSError, ValueError, drgn.FaultError, drgn.MissingDebugInfoError) as e:
        send(tx, b"O", f"drgn-mmtools: {one_line(e)}\n".encode())
        send(tx, b"D", b"\2")
        return 2
    while True:
        try:
            tag, payload = recv(rx)
        except EOFError:
            return 0
        if tag == b"Q":
            return 0
        if tag == b"C":
            status = shell.execute(payload.decode("utf-8", "replace"))
            send(tx, b"D", bytes([min(status, 255)]))
        elif tag == b"K":
            from .completion import complete
            found = complete(payload.decode("utf-8", "replace"), shell.completion_data())
            send(tx, b"L", json.dumps([[c.text, c.replace] for c in found]).encode())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
