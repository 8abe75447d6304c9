"""User page-table walks that read whole table pages, x86_64 and aarch64.

x86_64: 4 levels, or 5 when ``__pgtable_l5_enabled`` is set.  aarch64: any
granule (4K, 16K, 64K); the number of levels follows from ``vabits_actual``
(or VMCOREINFO's ``NUMBER(VA_BITS)``) and ``PAGE_SHIFT``.  Tables below the
top are read by physical address, one page per read.
"""

from __future__ import annotations

import re
import sys
from array import array
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple

import drgn

from .probe import object_value

__all__ = ("Corrupt", "Leaf", "LeafRun", "LevelEntry", "PageTableFormat", "PageTableWalk",
           "entry_bit_names", "iter_leaves", "page_table_format", "reserved_address_bits",
           "translate", "walk_user_page_runs", "walk_user_page_tables")


class PageTableFormat(NamedTuple):
    """How the target's page tables are laid out."""

    arch: str  #: "x86_64" or "aarch64"
    page_shift: int
    levels: int  #: table levels, the top one included
    bits_per_level: int
    top_entries: int  #: entries of the top table that map user space
    user_top: int  #: first address above user space

    def shift(self, level: int) -> int:
        """Address bits below an entry at ``level`` (0 is the PTE level)."""
        return self.page_shift + level * self.bits_per_level

    def level_name(self, level: int) -> str:
        """The kernel's name of a level: "pte", "pmd", "pud", "p4d" or "pgd"."""
        if level == self.levels - 1:
            return "pgd"
        return ("pte", "pmd", "pud", "p4d")[level] if level < 4 else f"level {level}"


class Leaf(NamedTuple):
    """One present leaf mapping."""

    vaddr: int
    size: int  #: bytes mapped (base page, or PMD/PUD block)
    pfn: int  #: first PFN mapped
    entry: int  #: the raw entry
    writable: bool
    dirty: bool
    special: bool  #: pte_special: no struct page semantics (pfnmap, zero page)
    devmap: bool  #: pte_devmap: ZONE_DEVICE memory such as fsdax
    protnone: bool = False  #: PROT_NONE (or NUMA hinting): present, not accessible


class LeafRun(NamedTuple):
    """The present entries of one page-level table, when all of them are
    plain: valid, mapping RAM-like addresses other than 0, with no reserved,
    special or devmap bit.  One object per table instead of one
    :class:`Leaf` per page; :meth:`LeafRun.leaves` gives the leaves."""

    vaddr: int  #: address of ``entries[0]``
    entries: array  #: the raw entries ('Q'), 0 where none
    phys: array  #: physical address of each entry's page ('Q'), 0 where none
    decoder: "_PageLevel"  #: how the entries decode, shared by the walk's runs
    present: int  #: present entries

    @classmethod
    def of(cls, vaddr: int, entries: array, phys: array, decoder: "_PageLevel",
           zeros: int | None = None) -> "LeafRun | None":
        """The run of ``entries`` (with ``zeros`` none entries, counted when
        not given), or None when none is present."""
        n = len(entries)
        zeros = entries.count(0) if zeros is None else zeros
        if zeros == n:
            return None
        return tuple.__new__(cls, (vaddr, entries, phys, decoder, n - zeros))

    def leaves(self) -> Iterator[Leaf]:
        """The run's leaves, in address order."""
        level = self.decoder
        shift, va = level.page_shift, self.vaddr
        for i, e in enumerate(self.entries):
            if e:
                yield _page_leaf(level, va + (i << shift), e)

    def part(self, lo: int, hi: int) -> "LeafRun | None":
        """The entries that map addresses in ``[lo, hi)``, or None when none is present."""
        shift = self.decoder.page_shift
        n = len(self.entries)
        a = -(-(lo - self.vaddr) >> shift) if lo > self.vaddr else 0
        b = min(n, (hi - self.vaddr + (1 << shift) - 1) >> shift) if hi > self.vaddr else 0
        if a >= b:
            return None
        if a == 0 and b == n:
            return self
        return LeafRun.of(self.vaddr + (a << shift), self.entries[a:b], self.phys[a:b],
                          self.decoder)


class Corrupt(NamedTuple):
    """A page-table entry that cannot be right; the walk did not follow it."""

    vaddr: int  #: first address the entry covers
    level: int  #: 0 is the PTE level
    value: int  #: the raw entry
    why: str


@dataclass
class PageTableWalk:
    """What a walk saw besides present leaves.

    ``reserved_mask``: entry bits that must be clear in a present entry
    (address bits above the CPU's physical width).  ``table_problem(pfn)``:
    why a table pointer to ``pfn`` cannot be right (outside RAM, a free or
    slab page), or None; not called when not given.
    """

    unreadable: list[tuple[int, int]] = field(default_factory=list)  #: (vaddr, table phys)
    corrupt: list[Corrupt] = field(default_factory=list)
    #: (vaddr, level, value) of non-present, non-none PTEs and PMDs: swap,
    #: migration, hwpoison entries, or garbage
    nonpresent: list[tuple[int, int, int]] = field(default_factory=list)
    reserved_mask: int = 0
    table_problem: Callable[[int], str | None] | None = None
    #: when a list: (vaddr, level, entry, pfn) of every table pointer that
    #: passed ``table_problem``, for checks made after the walk
    followed: list[tuple[int, int, int, int]] | None = None


def _vmcoreinfo_number(prog: drgn.Program, name: str) -> int | None:
    """NUMBER(name) from VMCOREINFO: drgn's copy (the dump's note, or
    /proc/kcore's), else the kernel's ``vmcoreinfo_data``, which a dump
    saved after ``kexec -p`` may not hold (it points at a vmap'd copy)."""
    text = None
    for symbol in ("VMCOREINFO", "vmcoreinfo_data"):
        try:
            text = prog[symbol].string_().decode(errors="replace")
            break
        except (KeyError, drgn.FaultError, LookupError):
            continue
    if text is None:
        return None
    m = re.search(rf"^NUMBER\({re.escape(name)}\)=(-?\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def page_table_format(prog: drgn.Program) -> PageTableFormat:
    """Probe the page-table layout of the target.

    :raises NotImplementedError: for an architecture other than x86_64/aarch64.
    """
    if "mmtools_pgtable_format" in prog.cache:
        return prog.cache["mmtools_pgtable_format"]
    arch = prog.platform.arch
    page_shift = object_value(prog, "PAGE_SHIFT") or 12
    bits = page_shift - 3
    if arch == drgn.Architecture.X86_64:
        levels = 5 if object_value(prog, "__pgtable_l5_enabled") else 4
        va_bits = 57 if levels == 5 else 48
        fmt_arch = "x86_64"
        user_top = 1 << (va_bits - 1)
    elif arch == drgn.Architecture.AARCH64:
        va_bits = object_value(prog, "vabits_actual") or _vmcoreinfo_number(prog, "VA_BITS") or 48
        levels = -(-(va_bits - page_shift) // bits)
        fmt_arch = "aarch64"
        user_top = 1 << va_bits
    else:
        raise NotImplementedError(f"page tables of {arch.name} are not supported")
    top_shift = page_shift + (levels - 1) * bits
    fmt = PageTableFormat(fmt_arch, page_shift, levels, bits,
                          max(1, user_top >> top_shift), user_top)
    prog.cache["mmtools_pgtable_format"] = fmt
    return fmt


# x86_64 entry bits (arch/x86/include/asm/pgtable_types.h)
_X86_PRESENT, _X86_RW, _X86_DIRTY, _X86_PSE = 1 << 0, 1 << 1, 1 << 6, 1 << 7
_X86_ACCESSED, _X86_PROTNONE = 1 << 5, 1 << 8
_X86_SPECIAL, _X86_DEVMAP = 1 << 9, 1 << 58
_X86_PHYS_MASK = (1 << 52) - 1
# aarch64 descriptor bits (arch/arm64/include/asm/pgtable-hwdef.h, pgtable-prot.h)
_ARM_VALID, _ARM_TABLE, _ARM_RDONLY = 1 << 0, 1 << 1, 1 << 7
_ARM_DBM, _ARM_DIRTY, _ARM_SPECIAL, _ARM_DEVMAP = 1 << 51, 1 << 55, 1 << 56, 1 << 57
_ARM_PROT_NONE = 1 << 58  # only when not valid (up to 6.9)
_ARM_OA_MASK = ((1 << 48) - 1)


def reserved_address_bits(prog: drgn.Program) -> int:
    """Bits of a present entry that must be clear: address bits the CPU does
    not have.  x86_64: bits from ``boot_cpu_data.x86_phys_bits`` up to 51,
    less the memory-encryption bit (``sme_me_mask``); arm64 with 4K or 16K
    pages and at most 48 physical address bits (VMCOREINFO
    ``MAX_PHYSMEM_BITS``): bits 48-50.  0 when unknown."""
    key = "mmtools_reserved_bits"
    if key in prog.cache:
        return prog.cache[key]
    mask = 0
    fmt = page_table_format(prog)
    if fmt.arch == "x86_64":
        try:
            bits = prog["boot_cpu_data"].x86_phys_bits.value_()
        except (KeyError, LookupError, AttributeError, drgn.FaultError):
            bits = 0
        if 32 <= bits < 52:
            mask = ((1 << 52) - 1) & ~((1 << bits) - 1)
            mask &= ~(object_value(prog, "sme_me_mask") or 0)
    elif fmt.page_shift in (12, 14):
        bits = _vmcoreinfo_number(prog, "MAX_PHYSMEM_BITS")
        if bits is not None and bits <= 48:
            mask = 0b111 << 48
    prog.cache[key] = mask
    return mask


def _entries(buf: bytes) -> array:
    words = array("Q", buf)
    if sys.byteorder != "little":
        words.byteswap()
    return words


class _PageLevel(NamedTuple):
    """How to decode page-level entries in bulk (little-endian entries)."""

    x86: bool
    page_shift: int
    size: int  #: bytes one entry maps
    phys_mask: int  #: the output-address bits of an entry
    #: byte 0 of each entry -> 1 when it has the valid bits of a page entry
    valid_byte0: bytes
    #: (byte index, table): a nonzero translated byte is a bit that takes
    #: the general path (reserved, special, devmap)
    slow_bytes: tuple[tuple[int, bytes], ...]
    #: (byte index, table or None): masks an entry down to its page's
    #: physical address (None: the whole byte goes)
    phys_bytes: tuple[tuple[int, bytes | None], ...]


def _and_table(mask: int) -> bytes:
    return bytes(b & mask for b in range(256))


def _page_level(fmt: PageTableFormat, reserved: int) -> _PageLevel:
    table_bytes = 1 << fmt.page_shift
    x86 = fmt.arch == "x86_64"
    if x86:
        vmask, vvalue = _X86_PRESENT, _X86_PRESENT
        slow = reserved | _X86_SPECIAL | _X86_DEVMAP
        phys_mask = _X86_PHYS_MASK & ~(table_bytes - 1)
    else:
        vmask, vvalue = _ARM_VALID | _ARM_TABLE, _ARM_VALID | _ARM_TABLE
        slow = reserved | _ARM_SPECIAL | _ARM_DEVMAP
        phys_mask = _ARM_OA_MASK & ~(table_bytes - 1)
    valid = bytes(int(b & vmask == vvalue) for b in range(256))
    slow_bytes = tuple((k, _and_table(slow >> 8 * k & 0xFF)) for k in range(8)
                       if slow >> 8 * k & 0xFF)
    phys_bytes = tuple((k, None if not phys_mask >> 8 * k & 0xFF
                        else _and_table(phys_mask >> 8 * k & 0xFF)) for k in range(8)
                       if phys_mask >> 8 * k & 0xFF != 0xFF)
    return _PageLevel(x86, fmt.page_shift, table_bytes, phys_mask, valid, slow_bytes,
                      phys_bytes)


def _plain_phys(level: _PageLevel, buf: bytes, words: array, zeros: int) -> array | None:
    """The physical addresses of a page-level table's pages when every
    present entry is plain (see :class:`LeafRun`), else None.  ``zeros``:
    the none entries of ``words``.  A few C-level passes over the table's
    bytes, no Python work per entry."""
    n = len(words)
    if buf[0::8].translate(level.valid_byte0).count(1) != n - zeros:
        return None  # a non-zero entry that is not a valid page entry
    for k, table in level.slow_bytes:
        if buf[k::8].translate(table).count(0) != n:
            return None
    phys = bytearray(buf)
    for k, table in level.phys_bytes:
        phys[k::8] = bytes(n) if table is None else phys[k::8].translate(table)
    out = _entries(phys)
    if out.count(0) != zeros:
        return None  # a present entry maps physical address 0
    return out


def _leaf(x86: bool, va: int, size: int, pfn: int, e: int, protnone: bool = False) -> Leaf:
    """The leaf of present entry ``e``, its bits decoded for the arch."""
    if x86:
        return tuple.__new__(Leaf, (va, size, pfn, e, bool(e & _X86_RW), bool(e & _X86_DIRTY),
                                    bool(e & _X86_SPECIAL), bool(e & _X86_DEVMAP), protnone))
    writable = bool(e & _ARM_DBM)
    return tuple.__new__(Leaf, (va, size, pfn, e, writable,
                                bool(e & _ARM_DIRTY) or (writable and not e & _ARM_RDONLY),
                                bool(e & _ARM_SPECIAL), bool(e & _ARM_DEVMAP), protnone))


def _page_leaf(level: _PageLevel, va: int, e: int) -> Leaf:
    """The leaf of a present, valid page-level entry."""
    return _leaf(level.x86, va, level.size, (e & level.phys_mask) >> level.page_shift, e)


def iter_leaves(items) -> Iterator[Leaf]:
    """Every leaf of a sequence of :class:`Leaf` and :class:`LeafRun`, in order."""
    for item in items:
        if type(item) is LeafRun:
            yield from item.leaves()
        else:
            yield item


def walk_user_page_tables(prog: drgn.Program, pgd: int, walk: PageTableWalk | None = None,
                          start: int = 0, end: int | None = None) -> Iterator[Leaf]:
    """Every present leaf mapping of user space under a top-level table.

    :param pgd: virtual address of the top table (``mm->pgd``).
    :param walk: collects the tables that could not be read.
    :returns: leaves in address order; huge mappings come as one leaf.
    """
    return walk_user_page_runs(prog, pgd, walk, start, end, runs=False)


def walk_user_page_runs(prog: drgn.Program, pgd: int, walk: PageTableWalk | None = None,
                        start: int = 0, end: int | None = None,
                        runs: bool = True) -> Iterator[Leaf | LeafRun]:
    """Like :func:`walk_user_page_tables`, but a page-level table whose
    present entries are all plain comes as one :class:`LeafRun` (with
    ``runs``); everything else comes as :class:`Leaf`, in address order.
    x86_64 and aarch64, any kernel."""
    fmt = page_table_format(prog)
    walk = walk if walk is not None else PageTableWalk()
    end = fmt.user_top if end is None else min(end, fmt.user_top)
    table_bytes = 1 << fmt.page_shift
    top_level = fmt.levels - 1
    x86 = fmt.arch == "x86_64"
    align = min(table_bytes, 1 << (fmt.top_entries * 8 - 1).bit_length())
    if pgd % align:
        walk.corrupt.append(Corrupt(0, top_level, pgd, f"mm->pgd is not aligned to {align} bytes"))
        return
    try:
        top = _entries(prog.read(pgd, fmt.top_entries * 8))
    except drgn.FaultError:
        walk.unreadable.append((0, pgd))
        return
    try:
        from drgn.helpers.linux.mm import virt_to_phys
        top_phys = virt_to_phys(drgn.Object(prog, "void *", pgd)).value_() & ~(table_bytes - 1)
    except Exception:  # noqa: BLE001 - drgn raises a bare Exception without a direct map;
        top_phys = -1  # the top's address only serves cycle detection
    # Depth-first over (table words, level, base vaddr, next index, table
    # phys), in address order.  The frames on the stack are the path from
    # the top: a child that is one of them closes a cycle.
    stack: list[tuple[array, int, int, int, int]] = [(top, top_level, 0, 0, top_phys)]
    # The fast path of a present, valid page-level entry (most of what a walk
    # sees); everything else takes the general path below.
    page_level = _page_level(fmt, walk.reserved_mask)
    page_table_span = (table_bytes >> 3) << fmt.page_shift
    page_shift = fmt.page_shift
    valid_pte = (_X86_PRESENT if x86 else _ARM_VALID | _ARM_TABLE) | walk.reserved_mask
    valid_value = _X86_PRESENT if x86 else _ARM_VALID | _ARM_TABLE
    page_leaf = _page_leaf
    while stack:
        words, level, base, i, here = stack.pop()
        shift = fmt.shift(level)
        size = 1 << shift
        n = len(words)
        while i < n:
            e = words[i]
            va = base + (i << shift)
            i += 1
            if not e or va + size <= start:
                continue
            if va >= end:
                break
            if level == 0 and e & valid_pte == valid_value:
                yield page_leaf(page_level, va, e)
                continue
            if x86:
                present = bool(e & _X86_PRESENT)
                if not present and not e & ~(_X86_ACCESSED | _X86_DIRTY):
                    continue  # pte_none(): a KNL erratum may set A/D
                protnone = (not present and bool(e & _X86_PROTNONE)
                            and (level == 0 or (level == 1 and bool(e & _X86_PSE))))
            else:
                present = bool(e & _ARM_VALID)
                protnone = not present and bool(e & _ARM_PROT_NONE) and level <= 1
            if not present and not protnone:
                if level >= 2:
                    walk.corrupt.append(Corrupt(va, level, e, "not present, not zero"))
                else:
                    # Swap, migration and hwpoison entries: PTEs and PMDs only.
                    walk.nonpresent.append((va, level, e))
                continue
            if x86:
                leaf = level == 0 or (level in (1, 2) and bool(e & _X86_PSE))
                if e & _X86_PSE and level >= 3:
                    walk.corrupt.append(Corrupt(va, level, e, "page-size bit set at a level "
                                                "without large pages"))
                    continue
                phys = e & _X86_PHYS_MASK & ~(table_bytes - 1)
            else:
                if level == 0 and not e & _ARM_TABLE and not protnone:
                    walk.corrupt.append(Corrupt(va, level, e, "reserved descriptor type "
                                                "(block) at the page level"))
                    continue
                if level == top_level and top_level >= 3 and not e & _ARM_TABLE:
                    walk.corrupt.append(Corrupt(va, level, e, "block descriptor at the top "
                                                "level"))
                    continue
                leaf = level == 0 or not e & _ARM_TABLE
                phys = e & _ARM_OA_MASK & ~(table_bytes - 1)
            if e & walk.reserved_mask:
                walk.corrupt.append(Corrupt(va, level, e, f"reserved address bits set "
                                            f"({e & walk.reserved_mask:#x})"))
                continue
            if leaf:
                yield _leaf(x86, va, size, (phys & ~(size - 1)) >> page_shift, e, protnone)
                continue
            if walk.table_problem is not None:
                why = walk.table_problem(phys >> page_shift)
                if why:
                    walk.corrupt.append(Corrupt(va, level, e, f"table pointer to {why}"))
                    continue
            if walk.followed is not None:
                walk.followed.append((va, level, e, phys >> page_shift))
            if phys == here or any(frame[4] == phys for frame in stack):
                walk.corrupt.append(Corrupt(va, level, e, "points back at a table above it (cycle)"))
                continue
            try:
                buf = prog.read(phys, table_bytes, True)
            except drgn.FaultError:
                walk.unreadable.append((va, phys))
                continue
            child = _entries(buf)
            if (runs and level == 1 and start <= va and va + page_table_span <= end):
                zeros = child.count(0)
                plain = _plain_phys(page_level, buf, child, zeros)
                if plain is not None:
                    run = LeafRun.of(va, child, plain, page_level, zeros)
                    if run is not None:
                        yield run
                    continue
            stack.append((words, level, base, i, here))
            stack.append((child, level - 1, va, 0, phys))
            break


class LevelEntry(NamedTuple):
    """One step of a page-table walk for one address."""

    level: int  #: 0 is the PTE level
    level_name: str  #: "pgd", "p4d", "pud", "pmd" or "pte"
    table: int  #: physical address of the table read
    index: int  #: entry index within it
    value: int  #: the raw entry
    kind: str  #: "table", "leaf", "none", "swap" (non-present, not none), "protnone", "bad"
    bits: tuple[str, ...]  #: the entry's set bits, named for the arch
    phys: int | None  #: the next table's or the leaf's physical address


_X86_BITS = ((0, "PRESENT"), (1, "RW"), (2, "USER"), (3, "PWT"), (4, "PCD"), (5, "ACCESSED"),
             (6, "DIRTY"), (7, "PSE"), (8, "GLOBAL"), (9, "SPECIAL"), (11, "SOFT_DIRTY"),
             (58, "DEVMAP"), (63, "NX"))
_ARM_BITS = ((0, "VALID"), (1, "TABLE"), (6, "USER"), (7, "RDONLY"), (10, "AF"), (11, "NG"),
             (51, "DBM"), (52, "CONT"), (53, "PXN"), (54, "UXN"), (55, "DIRTY"), (56, "SPECIAL"),
             (57, "DEVMAP"), (58, "PROT_NONE"))


def entry_bit_names(arch: str, value: int) -> tuple[str, ...]:
    """The set bits of a page-table entry, by the kernel's names for ``arch``
    ("x86_64": ``_PAGE_*``; "aarch64": ``PTE_*``/descriptor bits)."""
    table = _X86_BITS if arch == "x86_64" else _ARM_BITS
    return tuple(name for bit, name in table if value >> bit & 1)


def translate(prog: drgn.Program, pgd: int, vaddr: int) -> list[LevelEntry]:
    """The walk of one user address under ``pgd`` (``mm->pgd``), level by
    level from the top, as the MMU would do it; x86_64 and aarch64.

    :returns: the entries read; the last is the leaf, a none or non-present
        entry, or one the walk refuses ("bad").
    :raises drgn.FaultError: when a table cannot be read.
    """
    fmt = page_table_format(prog)
    x86 = fmt.arch == "x86_64"
    table_bytes = 1 << fmt.page_shift
    out: list[LevelEntry] = []
    try:
        from drgn.helpers.linux.mm import virt_to_phys
        table = virt_to_phys(drgn.Object(prog, "void *", pgd)).value_()
    except Exception:  # noqa: BLE001 - no direct map: read the top by its virtual address
        table = None
    level = fmt.levels - 1
    read_virtual = table is None
    while level >= 0:
        shift = fmt.shift(level)
        index = (vaddr >> shift) & ((1 << fmt.bits_per_level) - 1)
        if read_virtual:
            e = _entries(prog.read(pgd + index * 8, 8))[0]
            where = pgd
        else:
            assert table is not None
            e = _entries(prog.read(table + index * 8, 8, True))[0]
            where = table
        read_virtual = False
        bits = entry_bit_names(fmt.arch, e)
        if not x86 and level == 0:  # bit 1 of a level-3 descriptor means "page"
            bits = tuple("PAGE" if b == "TABLE" else b for b in bits)
        name = fmt.level_name(level)
        if x86:
            present = bool(e & _X86_PRESENT)
            none = not present and not e & ~(_X86_ACCESSED | _X86_DIRTY)
            leaf = level == 0 or (level in (1, 2) and bool(e & _X86_PSE))
            protnone = not present and bool(e & _X86_PROTNONE) and leaf
            phys = e & _X86_PHYS_MASK & ~(table_bytes - 1)
        else:
            present = bool(e & _ARM_VALID)
            none = e == 0
            leaf = level == 0 or not e & _ARM_TABLE
            protnone = not present and bool(e & _ARM_PROT_NONE) and level <= 1
            phys = e & _ARM_OA_MASK & ~(table_bytes - 1)
        if none:
            out.append(LevelEntry(level, name, where, index, e, "none", bits, None))
            break
        if protnone:
            out.append(LevelEntry(level, name, where, index, e, "protnone", bits,
                                  phys & ~((1 << shift) - 1)))
            break
        if not present:
            out.append(LevelEntry(level, name, where, index, e, "swap" if level <= 1 else "bad",
                                  bits, None))
            break
        if leaf:
            out.append(LevelEntry(level, name, where, index, e, "leaf", bits,
                                  (phys & ~((1 << shift) - 1)) | (vaddr & ((1 << shift) - 1))))
            break
        out.append(LevelEntry(level, name, where, index, e, "table", bits, phys))
        table = phys
        level -= 1
    return out
