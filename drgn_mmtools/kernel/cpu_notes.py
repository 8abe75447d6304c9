"""CPU state that QEMU writes into x86_64 dumps beside NT_PRSTATUS.

``dump-guest-memory`` (and so ``virsh dump --memory-only``) adds one "QEMU"
note per CPU holding its control registers; CR2 is the address of the last
page fault on that CPU.  makedumpfile copies the notes into kdump-compressed
dumps.  Kernel kdump (``crash_save_cpu``) writes no such note, and QEMU
writes none for aarch64, so this is absent far more often than present.

Reads only the dump file's note segment; never raises on odd input.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple

__all__ = ("QemuCpuState", "qemu_cpu_states")

#: struct QEMUCPUState (target/i386/arch_dump.c): version, size, 18 general
#: registers (rax..r15, rip, rflags), 10 segment descriptors of 24 bytes
#: (cs, ds, es, fs, gs, ss, ldt, tr, gdt, idt), then cr[5].
_REGS = 8
_RSP, _RIP = _REGS + 6 * 8, _REGS + 16 * 8
_CR = _REGS + 18 * 8 + 10 * 24
_STATE_MIN = _CR + 5 * 8


class QemuCpuState(NamedTuple):
    """The registers of one CPU that matter here."""

    rip: int
    rsp: int
    cr2: int


def _notes(data: bytes) -> list[tuple[bytes, int, bytes]]:
    out, off = [], 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, off)
        off += 12
        name = data[off:off + namesz].rstrip(b"\0")
        off += (namesz + 3) & ~3
        desc = data[off:off + descsz]
        off += (descsz + 3) & ~3
        if len(desc) < descsz:
            break
        out.append((name, ntype, desc))
    return out


def _note_segment(f) -> bytes:
    head = f.read(64)
    if head[:4] == b"\x7fELF" and head[4] == 2 and head[5] == 1:  # ELF64, little-endian
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        data = b""
        for i in range(min(phnum, 4096)):
            f.seek(phoff + i * phentsize)
            ptype, _flags, offset, _va, _pa, filesz = struct.unpack("<IIQQQQ", f.read(40))
            if ptype == 4 and filesz < 1 << 26:  # PT_NOTE
                f.seek(offset)
                data += f.read(filesz)
        return data
    if head[:8] == b"KDUMP   ":
        f.seek(0)
        hdr = f.read(4096)
        off = 12 + 6 * 65
        off += -off % 8
        version, = struct.unpack_from("<i", hdr, 8)
        block_size, = struct.unpack_from("<i", hdr, off + 16 + 4)
        if version < 4 or not 0 < block_size <= 1 << 20:
            return b""
        f.seek(block_size)  # struct kdump_sub_header
        sub = f.read(64)
        if len(sub) < 64:
            return b""
        note_off, note_size = struct.unpack_from("<qQ", sub, 48)
        if note_off <= 0 or not 0 < note_size < 1 << 26:
            return b""
        f.seek(note_off)
        return f.read(note_size)
    return b""


def qemu_cpu_states(path: Path) -> list[QemuCpuState]:
    """The "QEMU" CPU notes of an x86_64 ELF or kdump-compressed dump, in
    CPU order; [] when there are none or the file cannot be read."""
    try:
        with open(path, "rb") as f:
            data = _note_segment(f)
    except (OSError, struct.error):
        return []
    out = []
    for name, _type, desc in _notes(data):
        if name != b"QEMU" or len(desc) < _STATE_MIN:
            continue
        rsp, = struct.unpack_from("<Q", desc, _RSP)
        rip, = struct.unpack_from("<Q", desc, _RIP)
        cr2, = struct.unpack_from("<Q", desc, _CR + 2 * 8)
        out.append(QemuCpuState(rip, rsp, cr2))
    return out
