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
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
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


def elf_platform(path: Path) -> drgn.Platform | None:
    """The drgn Platform of an ELF file (a vmlinux), from its e_machine.
    (This module imports drgn only here: gdb's side of the gdb front end
    reads ELF files with it and must not load drgn.)"""
    import drgn

    arches = {62: drgn.Architecture.X86_64, 183: drgn.Architecture.AARCH64}
    h = read_header(path)
    arch = arches.get(h.elf_machine) if h.format == "elf" else None
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


def _sections(f, order: str) -> list[tuple[int, int, int, int, int]]:
    """(type, offset, size, link, entsize) of every section of an open ELF64 file."""
    f.seek(0)
    head = f.read(64)
    shoff, = struct.unpack_from(order + "Q", head, 40)
    shentsize, shnum = struct.unpack_from(order + "HH", head, 58)
    if not shoff or shnum > 1 << 16 or shentsize < 64:
        return []
    f.seek(shoff)
    table = f.read(shnum * shentsize)
    out = []
    for i in range(shnum):
        _name, typ, _flags, _addr, off, size, link, _info, _align, entsize = struct.unpack_from(
            order + "IIQQQQIIQQ", table, i * shentsize)
        out.append((typ, off, size, link, entsize))
    return out


def elf_symbols(path: Path, names: set[str]) -> dict[str, int]:
    """Link-time addresses of the named symbols in an ELF64 file's
    ``.symtab`` (a vmlinux or its debug file); names it lacks are absent.

    :raises OSError: if the file cannot be read.
    """
    out: dict[str, int] = {}
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return out
        order = "<" if head[5] == 1 else ">"
        sections = _sections(f, order)
        for typ, off, size, link, entsize in sections:
            if typ != 2 or link >= len(sections) or entsize < 24:  # SHT_SYMTAB
                continue
            _t, str_off, str_size, _l, _e = sections[link]
            f.seek(str_off)
            strtab = f.read(str_size)
            f.seek(off)
            symtab = f.read(size)
            for i in range(0, len(symtab) - entsize + 1, entsize):
                name_off, = struct.unpack_from(order + "I", symtab, i)
                end = strtab.find(b"\0", name_off)
                name = strtab[name_off:end].decode(errors="replace")
                if name in names and name not in out:
                    out[name] = struct.unpack_from(order + "Q", symtab, i + 8)[0]
    return out


class LoadSegment(NamedTuple):
    """One PT_LOAD of an ELF core file."""

    paddr: int
    vaddr: int
    offset: int  #: file offset
    filesz: int
    memsz: int


def elf_core_layout(path: Path) -> tuple[list[LoadSegment], bytes | None]:
    """The PT_LOAD segments of an ELF64 core file and its VMCOREINFO note
    (None when it has none).

    :raises OSError: if the file cannot be read.
    :raises ValueError: if it is not an ELF64 file.
    """
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            raise ValueError(f"{path}: not an ELF64 file")
        order = "<" if head[5] == 1 else ">"
        phoff, = struct.unpack_from(order + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
        f.seek(phoff)
        table = f.read(phnum * phentsize)
        loads, vmcoreinfo = [], None
        for i in range(phnum):
            typ, _flags, off, vaddr, paddr, filesz, memsz, _align = struct.unpack_from(
                order + "IIQQQQQQ", table, i * phentsize)
            if typ == 1:  # PT_LOAD
                loads.append(LoadSegment(paddr, vaddr, off, filesz, memsz))
            elif typ == 4 and vmcoreinfo is None:  # PT_NOTE
                f.seek(off)
                notes = f.read(min(filesz, 1 << 24))
                pos = 0
                while pos + 12 <= len(notes):
                    namesz, descsz, _ntype = struct.unpack_from(order + "III", notes, pos)
                    name = notes[pos + 12:pos + 12 + namesz].rstrip(b"\0")
                    desc_at = pos + 12 + ((namesz + 3) & ~3)
                    if name == b"VMCOREINFO":
                        vmcoreinfo = notes[desc_at:desc_at + descsz]
                        break
                    pos = desc_at + ((descsz + 3) & ~3)
    return loads, vmcoreinfo


def _kdump_sub_header(f) -> bytes | None:
    """The kdump sub-header (64 bytes) of an open kdump-compressed file whose
    header is version 3 or later, else None; ``f`` is left after it."""
    f.seek(0)
    head = f.read(4096)
    if head[:8] != b"KDUMP   ":
        return None
    off = 12 + 6 * _UTS_LEN
    off += -off % 8
    version, = struct.unpack_from("<i", head, 8)
    # after utsname: timeval (16 bytes), status, block_size
    block_size, = struct.unpack_from("<i", head, off + 16 + 4)
    if version < 3 or not 0 < block_size <= 1 << 20:
        return None
    f.seek(block_size)
    sub = f.read(64)
    return sub if len(sub) == 64 else None


def dump_vmcoreinfo(path: Path) -> bytes | None:
    """The VMCOREINFO a dump carries: the kdump sub-header's copy
    (makedumpfile, header version 3 and later) or an ELF core's note; None
    when there is none or it cannot be read (flattened dumps included)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
            if magic == b"KDUMP   ":
                sub = _kdump_sub_header(f)
                if sub is None:
                    return None
                # phys_base, dump_level, split, start_pfn, end_pfn, then the
                # offset and size of the vmcoreinfo
                info_off, info_size = struct.unpack_from("<qQ", sub, 32)
                if not 0 < info_size < 1 << 20:
                    return None
                f.seek(info_off)
                return f.read(info_size)
            if magic[:4] == b"\x7fELF":
                return elf_core_layout(path)[1]
    except (OSError, struct.error, ValueError):
        return None
    return None


def parse_vmcoreinfo(data: bytes) -> dict[str, str]:
    """``KEY=value`` lines of VMCOREINFO as a dict (OSRELEASE, BUILD-ID, ...)."""
    out = {}
    for line in data.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out.setdefault(key, value.strip())
    return out


def elf_build_id(path: Path) -> str | None:
    """The GNU build ID of an ELF64 file (a vmlinux or its debug file), as
    hex, from its ``SHT_NOTE`` sections; None when it has none."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return None
            order = "<" if head[5] == 1 else ">"
            for typ, off, size, _link, _entsize in _sections(f, order):
                if typ != 7 or size > 1 << 16:  # SHT_NOTE
                    continue
                f.seek(off)
                notes = f.read(size)
                pos = 0
                while pos + 12 <= len(notes):
                    namesz, descsz, ntype = struct.unpack_from(order + "III", notes, pos)
                    name = notes[pos + 12:pos + 12 + namesz].rstrip(b"\0")
                    desc_at = pos + 12 + ((namesz + 3) & ~3)
                    if name == b"GNU" and ntype == 3:  # NT_GNU_BUILD_ID
                        return notes[desc_at:desc_at + descsz].hex()
                    pos = desc_at + ((descsz + 3) & ~3)
    except (OSError, struct.error):
        return None
    return None


def dump_level(path: Path) -> int | None:
    """makedumpfile's dump level (``-d``) of a kdump-compressed dump, from
    its sub-header; None for other dumps or when it cannot be read."""
    try:
        with open(path, "rb") as f:
            sub = _kdump_sub_header(f)
    except (OSError, struct.error):
        return None
    if sub is None:
        return None
    level, = struct.unpack_from("<i", sub, 8)  # after phys_base
    return level if 0 <= level <= 31 else None
