"""Recognize dump file formats before drgn reads them, to explain failures.

Reads only headers: the ELF identification, and the kdump-compressed
``disk_dump_header`` (signature "KDUMP   ", version, utsname, block_size),
also inside makedumpfile's flattened format (a 4096-byte "makedumpfile"
header, then big-endian (offset, size) segments), which is what QEMU's
``dump-guest-memory`` writes for its kdump formats.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple

import drgn

__all__ = ("DumpHeader", "elf_platform", "elf_section_names", "read_header")

_UTS_LEN = 65
_FLAT_HEADER = 4096


class DumpHeader(NamedTuple):
    """What the first bytes of a dump say."""

    format: str  #: "kdump", "elf" or "unknown"
    machine: str  #: utsname.machine of a kdump header ("" when QEMU left it empty)
    block_size: int  #: kdump block size (0 for ELF)
    elf_machine: int  #: e_machine of an ELF file (0 otherwise)


def read_header(path: Path) -> DumpHeader:
    """Parse the header of a dump; never raises on odd input."""
    want = 8 + 4 + 6 * _UTS_LEN + 64
    try:
        with open(path, "rb") as f:
            head = f.read(want)
            if head[:12] == b"makedumpfile":
                f.seek(_FLAT_HEADER)
                offset, _size = struct.unpack(">qq", f.read(16))
                head = f.read(want) if offset == 0 else b""
    except OSError:
        return DumpHeader("unknown", "", 0, 0)
    if head[:8] == b"KDUMP   " and len(head) >= 8 + 4 + 6 * _UTS_LEN + 40:
        uts = head[12:12 + 6 * _UTS_LEN]
        machine = uts[4 * _UTS_LEN:5 * _UTS_LEN].split(b"\0")[0].decode(errors="replace")
        # After utsname: struct timeval (2 longs, 16 bytes, then padding to 8) and status.
        off = 12 + 6 * _UTS_LEN
        off += -off % 8
        block_size = struct.unpack_from("<i", head, off + 16 + 4)[0]
        return DumpHeader("kdump", machine, block_size, 0)
    if head[:4] == b"\x7fELF" and len(head) >= 20:
        order = "<" if head[5] == 1 else ">"
        return DumpHeader("elf", "", 0, struct.unpack_from(order + "H", head, 18)[0])
    return DumpHeader("unknown", "", 0, 0)


_EM = {62: drgn.Architecture.X86_64, 183: drgn.Architecture.AARCH64}


def elf_platform(path: Path) -> drgn.Platform | None:
    """The drgn Platform of an ELF file (a vmlinux), from its e_machine."""
    h = read_header(path)
    arch = _EM.get(h.elf_machine) if h.format == "elf" else None
    return drgn.Platform(arch) if arch is not None else None


def elf_section_names(path: Path) -> set[str]:
    """Section names of a 64-bit ELF file, from its section header string
    table; an empty set for anything else or on a read error."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return set()
            order = "<" if head[5] == 1 else ">"
            shoff, = struct.unpack_from(order + "Q", head, 40)
            shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", head, 58)
            if not shoff or shnum > 1 << 16 or shstrndx >= shnum or shentsize < 64:
                return set()
            f.seek(shoff)
            table = f.read(shnum * shentsize)
            hdr = table[shstrndx * shentsize:(shstrndx + 1) * shentsize]
            str_off, str_size = struct.unpack_from(order + "QQ", hdr, 24)
            if str_size > 1 << 24:
                return set()
            f.seek(str_off)
            strtab = f.read(str_size)
    except (OSError, struct.error):
        return set()
    names = set()
    for i in range(shnum):
        name_off, = struct.unpack_from(order + "I", table, i * shentsize)
        end = strtab.find(b"\0", name_off)
        names.add(strtab[name_off:end if end >= 0 else None].decode(errors="replace"))
    return names
