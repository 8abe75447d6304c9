"""VMAs of a memory map as plain records (maple tree since 6.1, rbtree before).

drgn's ``for_each_vma`` handles both containers; this module turns each VMA
into a :class:`VmaInfo` with its file and its ``vm_ops`` handlers named.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple, Sequence

import drgn
from drgn import Object
from drgn.helpers.linux.mm import for_each_vma

from .fs import file_path
from .symbols import SymbolRef, symbolize

__all__ = ("VM_HUGETLB", "VM_IO", "VM_MIXEDMAP", "VM_PFNMAP", "VM_SHARED", "VmaInfo", "VmaMap",
           "mm_vmas", "vma_info")

# include/linux/mm.h; these bits have not moved since 2.6.
VM_SHARED = 0x00000008
VM_IO = 0x00004000
VM_PFNMAP = 0x00000400
VM_HUGETLB = 0x00400000
VM_MIXEDMAP = 0x10000000
# include/uapi/linux/stat.h
S_IFMT, S_IFREG, S_IFBLK = 0o170000, 0o100000, 0o060000


class VmaInfo(NamedTuple):
    """One vm_area_struct."""

    address: int
    start: int
    end: int
    flags: int
    pgoff: int
    file: str | None  #: path of vm_file
    inode: int | None  #: vm_file's inode number
    mapping: int  #: vm_file->f_mapping (0 for anonymous VMAs)
    vm_ops: SymbolRef
    fault: SymbolRef  #: vm_ops->fault
    page_mkwrite: SymbolRef  #: vm_ops->page_mkwrite
    #: the file is a page-cache file: a regular file or block device whose
    #: address_space has operations.  Device, dma-buf, debugfs and other
    #: pseudo files are not; their drivers may map pages they do not own.
    page_cache: bool = False
    huge_order: int = 0  #: hugetlbfs VMAs: order of the huge page size

    @property
    def special(self) -> bool:
        """PFN-mapped or I/O: its PTEs need not point at normal pages."""
        return bool(self.flags & (VM_PFNMAP | VM_IO | VM_MIXEDMAP))

    def file_index(self, address: int, page_shift: int) -> int:
        """The file page index that ``address`` maps."""
        return self.pgoff + ((address - self.start) >> page_shift)

    def index_matches(self, page_index: int, address: int, page_shift: int) -> bool:
        """Whether a page with ``page->index`` page_index belongs at address.
        hugetlbfs counts its page-cache indices in huge pages before 6.7 and
        in base pages since: both are accepted for a hugetlb VMA."""
        want = self.file_index(address, page_shift)
        if page_index == want:
            return True
        return bool(self.huge_order) and page_index == want >> self.huge_order


def _handler(prog: drgn.Program, ops: Object, name: str) -> SymbolRef:
    try:
        return symbolize(prog, getattr(ops, name).value_()) if ops else SymbolRef(0, None, 0, None)
    except (AttributeError, drgn.FaultError):
        return SymbolRef(0, None, 0, None)


def _ops_empty(prog: drgn.Program, a_ops: Object) -> bool:
    """Whether a ``struct address_space_operations *`` is NULL or has no
    operation set (``empty_aops``); cached by address."""
    addr = a_ops.value_()
    key = ("mmtools_aops_empty", addr)
    if key not in prog.cache:
        empty = True
        if addr:
            size = a_ops.type_.type.size or 0
            empty = not any(prog.read(addr, size)) if size else False
        prog.cache[key] = empty
    return prog.cache[key]


def _page_cache_file(prog: drgn.Program, f: Object) -> bool:
    """Whether vm_file ``f`` maps a page cache of its own (see VmaInfo.page_cache)."""
    try:
        mapping = f.f_mapping
        mode = mapping.host.i_mode.value_() & S_IFMT
        return mode in (S_IFREG, S_IFBLK) and not _ops_empty(prog, mapping.a_ops)
    except (AttributeError, LookupError, drgn.FaultError):
        return True  # unknown: judge it as a page-cache file, the strict way


def _huge_order(prog: drgn.Program, vma: Object, flags: int) -> int:
    """Order of a hugetlb VMA's page size (hugetlbfs_sb_info.hstate), 0 otherwise."""
    if not flags & VM_HUGETLB:
        return 0
    try:
        sbinfo = Object(prog, "struct hugetlbfs_sb_info *",
                        vma.vm_file.f_inode.i_sb.s_fs_info.value_())
        return sbinfo.hstate.order.value_()
    except (AttributeError, LookupError, drgn.FaultError):
        from .pgtable import page_table_format
        return page_table_format(prog).bits_per_level  # PMD-sized, the default


def vma_info(prog: drgn.Program, vma: Object) -> VmaInfo:
    """Decode one ``struct vm_area_struct *``."""
    f = vma.vm_file
    ops = vma.vm_ops
    flags = vma.vm_flags.value_()
    return VmaInfo(
        address=vma.value_(),
        start=vma.vm_start.value_(),
        end=vma.vm_end.value_(),
        flags=flags,
        pgoff=vma.vm_pgoff.value_(),
        file=file_path(f) if f else None,
        inode=f.f_inode.i_ino.value_() if f else None,
        mapping=f.f_mapping.value_() if f else 0,
        vm_ops=symbolize(prog, ops.value_()),
        fault=_handler(prog, ops, "fault"),
        page_mkwrite=_handler(prog, ops, "page_mkwrite"),
        page_cache=_page_cache_file(prog, f) if f else False,
        huge_order=_huge_order(prog, vma, flags) if f else 0,
    )


class VmaMap:
    """The VMAs of one mm, in address order, with lookup by address."""

    def __init__(self, vmas: Sequence[VmaInfo]) -> None:
        self.vmas = sorted(vmas, key=lambda v: v.start)
        self._starts = [v.start for v in self.vmas]
        self._last: VmaInfo | None = None

    def at(self, address: int) -> VmaInfo | None:
        """The VMA that contains ``address``, if any.  Callers mostly ask in
        address order (one question per mapped page), so the last VMA found
        is tried before the search."""
        last = self._last
        if last is not None and last.start <= address < last.end:
            return last
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and self.vmas[i].start <= address < self.vmas[i].end:
            self._last = self.vmas[i]
            return self._last
        return None

    def __iter__(self):
        return iter(self.vmas)

    def __len__(self) -> int:
        return len(self.vmas)


#: Most VMAs one mm can have (``vm.max_map_count`` is 65530 by default).
MAX_VMAS = 1 << 20


def mm_vmas(mm: Object) -> tuple[VmaMap, str | None]:
    """Every VMA of ``struct mm_struct *`` mm, and what stopped the walk
    early, if anything: an unreadable or corrupted maple tree (or rbtree
    before 6.1), a VMA met twice, or more VMAs than ``map_count`` allows.
    The VMAs read before the problem are kept."""
    prog = mm.prog_
    out: list[VmaInfo] = []
    seen: set[int] = set()
    try:
        limit = min(MAX_VMAS, 2 * mm.map_count.value_() + 16)
    except (drgn.FaultError, AttributeError):
        limit = MAX_VMAS
    try:
        for v in for_each_vma(mm):
            addr = v.value_()
            if addr in seen:
                return VmaMap(out), f"VMA {addr:#x} met twice (cycle)"
            if len(out) >= limit:
                return VmaMap(out), f"more than {limit} VMAs (map_count {limit // 2 - 8})"
            seen.add(addr)
            out.append(vma_info(prog, v))
    except (drgn.FaultError, NotImplementedError, ValueError, OverflowError, LookupError,
            RecursionError) as e:  # drgn's maple walker recurses: a node cycle ends here
        return VmaMap(out), f"{type(e).__name__}: {' '.join(str(e).split())}"
    return VmaMap(out), None
