"""Bulk scans of the struct page array (mem_map / vmemmap).

A scan reads struct pages in large chunks and tests bytes of every page at
once: an extended slice of the chunk gives one byte per page, ``bytes.translate``
turns it into 0/1, and big-integer AND combines tests.  No Python object is
made per page; only matching PFNs come back.  Chunks that cannot be read
(filtered or truncated dumps) are narrowed down and reported, not fatal.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import drgn
from drgn.helpers.linux.mm import for_each_valid_page_range

from .pageflags import ByteTest
from .probe import object_value

__all__ = ("MemmapScan", "flag_test", "scan_pages", "valid_page_ranges")

#: struct pages per read; 16 Ki pages is 1 MiB of 64-byte struct pages, which
#: stays in cache between the read and the byte tests (4 MiB reads were 3% slower).
CHUNK_PAGES = 1 << 14


@dataclass
class MemmapScan:
    """What a scan found, and what it could not read."""

    matches: dict[str, array] = field(default_factory=dict)  #: predicate -> PFNs
    #: predicate -> one captured field per match (see ``capture`` of scan_pages)
    values: dict[str, array] = field(default_factory=dict)
    pages_scanned: int = 0
    unreadable: list[tuple[int, int]] = field(default_factory=list)  #: [start, end) PFNs
    #: what could not be read that is not a PFN range (mem_section, vmemmap)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, preds: Iterable[str], capture: Iterable[str] = (),
              problems: list[str] | None = None) -> "MemmapScan":
        """A scan with no match yet for each predicate and captured field."""
        return cls(matches={name: array("Q") for name in preds},
                   values={name: array("Q") for name in capture}, problems=problems or [])

    def describe_unreadable(self) -> list[str]:
        """One line per unreadable PFN range or other problem."""
        return self.problems + [f"struct pages of pfns {s:#x}-{e:#x}" for s, e in self.unreadable]

    def merge(self, other: "MemmapScan") -> None:
        for name, pfns in other.matches.items():
            self.matches.setdefault(name, array("Q")).extend(pfns)
        for name, vals in other.values.items():
            self.values.setdefault(name, array("Q")).extend(vals)
        self.pages_scanned += other.pages_scanned
        self.unreadable.extend(other.unreadable)
        self.problems.extend(other.problems)


def valid_page_ranges(prog: drgn.Program) -> list[tuple[int, int, int]]:
    """Contiguous valid PFN ranges as ``(start_pfn, end_pfn, address of start's
    struct page)``, in ascending PFN order."""
    size = prog.type("struct page").size
    out = []
    for start, end, mem_map in for_each_valid_page_range(prog):
        out.append((start, end, mem_map.value_() + start * size))
    return sorted(out)


def uncovered_zones(prog: drgn.Program, ranges: Sequence[tuple[int, int]]) -> list[str]:
    """Zones with more present pages than the valid mem_section ranges
    cover: a corrupted ``section_mem_map`` hides sections, and their struct
    pages would silently go unscanned.  One line per such zone.  Holes are
    not present pages, so a healthy kernel gives none."""
    out = []
    try:
        pgdats = ([prog["contig_page_data"]] if "contig_page_data" in prog
                  else [prog["node_data"][i][0] for i in range(len(prog["node_data"]))
                        if prog["node_data"][i]])
        for pgdat in pgdats:
            for zone in pgdat.node_zones:
                present = zone.present_pages.value_()
                if not present:
                    continue
                start = zone.zone_start_pfn.value_()
                end = start + zone.spanned_pages.value_()
                covered = sum(max(0, min(e, end) - max(s, start)) for s, e in ranges)
                if covered < present:
                    out.append(f"zone {zone.name.string_().decode(errors='replace')} has "
                               f"{present} present pages but valid mem_section ranges cover "
                               f"{covered}: the rest of its struct pages are not scanned")
    except (drgn.FaultError, LookupError, ValueError, OverflowError):
        out.append("zones: present pages unknown; the mem_map scan may miss sections")
    return out


def flag_test(prog: drgn.Program, bit: int, set_: bool = True) -> ByteTest:
    """A byte test for bit ``bit`` of ``page->flags`` (an unsigned long)."""
    word = prog.type("unsigned long").size
    little = bool(prog.platform.flags & drgn.PlatformFlags.IS_LITTLE_ENDIAN)
    byte = bit // 8 if little else word - 1 - bit // 8
    offset = drgn.offsetof(prog.type("struct page"), "flags") + byte
    mask = 1 << (bit % 8)
    return ByteTest(offset, mask, mask if set_ else 0)


_TABLES: dict[tuple[int, int], bytes] = {}


def _table(mask: int, value: int) -> bytes:
    key = (mask, value)
    if key not in _TABLES:
        _TABLES[key] = bytes(1 if (b & mask) == value else 0 for b in range(256))
    return _TABLES[key]


class _Chunk:
    """One chunk of struct pages and what its tests gave, shared by the
    predicates: a column (one byte per page) per offset, a 0/1 byte per page
    per test, and that as an integer once tests are combined."""

    __slots__ = ("buf", "n", "stride", "columns", "tested", "ints")

    def __init__(self, buf: bytes, n: int, stride: int) -> None:
        self.buf, self.n, self.stride = buf, n, stride
        self.columns: dict[int, bytes] = {}
        self.tested: dict[ByteTest, bytes | None] = {}  #: None: no page passes
        self.ints: dict[ByteTest, int] = {}

    def test(self, t: ByteTest) -> bytes | None:
        """One 0/1 byte per page for ``t``, or None when no page passes."""
        if t in self.tested:
            return self.tested[t]
        column = self.columns.get(t.offset)
        if column is None:
            column = self.columns[t.offset] = self.buf[t.offset:t.offset + self.n * self.stride:
                                                       self.stride]
        bits = column.translate(_table(t.mask, t.value))
        self.tested[t] = out = bits if bits.find(1) != -1 else None
        return out

    def as_int(self, t: ByteTest, bits: bytes) -> int:
        value = self.ints.get(t)
        if value is None:
            value = self.ints[t] = int.from_bytes(bits, "little")
        return value


def _match(chunk: _Chunk, tests: Sequence[ByteTest],
           blocks: Sequence[tuple[int, int]] = ()) -> bytes | None:
    """One 0/1 byte per page: whether it passes every test and lies outside
    ``blocks`` (see :func:`_mask_blocks`); None when no page does.

    Tests go a column at a time (a slice, a translate, integer AND) while
    many pages pass; once few do (1 in 256), the rest are tested on those
    pages alone.  A test no page passes ends it (a memchr)."""
    n = chunk.n
    acc: int | None = None  #: the pages passing so far, as an integer...
    hits: bytes | None = None  #: ...or as bytes
    for k, t in enumerate(tests):
        if hits is None and acc is not None:
            hits = acc.to_bytes(n, "little")
        if hits is not None and hits.count(1) <= n >> 8:
            return _verify(chunk, hits, tests[k:])
        bits = chunk.test(t)
        if bits is None:
            return None
        if hits is None and acc is None:  # the first test
            hits = _mask_blocks(bits, blocks) if blocks else bits
            if blocks and hits.find(1) == -1:
                return None
            continue
        acc = (int.from_bytes(hits, "little") if acc is None else acc) & chunk.as_int(t, bits)
        hits = None
        if not acc:
            return None
    return hits if hits is not None else (acc or 0).to_bytes(n, "little")


def _verify(chunk: _Chunk, hits: bytes, tests: Sequence[ByteTest]) -> bytes | None:
    """``hits`` less the pages that fail any of ``tests``, read off the
    chunk page by page; None when none is left."""
    buf, stride = chunk.buf, chunk.stride
    out = bytearray(hits)
    i = hits.find(1)
    while i != -1:
        base = i * stride
        for t in tests:
            if buf[base + t.offset] & t.mask != t.value:
                out[i] = 0
                break
        i = hits.find(1, i + 1)
    return bytes(out) if out.find(1) != -1 else None


def _scan_chunk(prog: drgn.Program, start_pfn: int, n: int, addr: int, stride: int,
                preds: Mapping[str, Sequence[ByteTest]], result: MemmapScan,
                min_pages: int, capture: Mapping[str, tuple[int, int]],
                outside: Mapping[str, str]) -> None:
    try:
        buf = prog.read(addr, n * stride)
    except (drgn.FaultError, OverflowError, ValueError):  # unreadable, or a wild mem_map address
        if n <= min_pages:
            result.unreadable.append((start_pfn, start_pfn + n))
            return
        half = max(min_pages, (n // 2) // min_pages * min_pages)
        _scan_chunk(prog, start_pfn, half, addr, stride, preds, result, min_pages, capture,
                    outside)
        _scan_chunk(prog, start_pfn + half, n - half, addr + half * stride, stride, preds,
                    result, min_pages, capture, outside)
        return
    result.pages_scanned += n
    blocking = set(outside.values())
    blocks: dict[str, list[tuple[int, int]]] = {}
    chunk = _Chunk(buf, n, stride)
    # Predicates that exclude another's blocks go last, once those are known.
    for name, tests in sorted(preds.items(), key=lambda kv: kv[0] in outside):
        hits = _match(chunk, tests, blocks.get(outside[name], ()) if name in outside else ())
        if hits is None:
            continue
        out = result.matches[name]
        field_ = capture.get(name)
        vals = result.values.get(name)
        i = hits.find(1)
        while i != -1:
            out.append(start_pfn + i)
            if field_ is not None and vals is not None:
                off = i * stride + field_[0]
                value = int.from_bytes(buf[off:off + field_[1]], sys.byteorder)
                vals.append(value)
                if name in blocking and value < 64:
                    blocks.setdefault(name, []).append((i, 1 << value))
            i = hits.find(1, i + 1)


def _mask_blocks(hits: bytes, blocks: Sequence[tuple[int, int]]) -> bytes:
    """``hits`` (one 0/1 byte per page) with the pages of ``blocks``
    (``(first index, pages)``, clipped to the chunk) cleared: one slice
    assignment per block, none per page."""
    out = bytearray(hits)
    zero = memoryview(bytes(len(out)))
    for first, pages in blocks:
        last = min(first + pages, len(out))
        if first < last:
            out[first:last] = zero[:last - first]
    return bytes(out)


def scan_pages(prog: drgn.Program, preds: Mapping[str, Sequence[ByteTest]],
               ranges: Iterable[tuple[int, int, int]] | None = None,
               chunk_pages: int = CHUNK_PAGES,
               capture: Mapping[str, tuple[int, int]] | None = None,
               outside: Mapping[str, str] | None = None) -> MemmapScan:
    """Find the PFNs whose struct page passes every test of each predicate.

    :param preds: predicate name -> byte tests that must all hold.
    :param ranges: ``(start_pfn, end_pfn, struct page address)`` to scan;
        every valid range by default.
    :param capture: predicate name -> ``(offset, size)`` of a struct page field
        to return for each match in ``values`` (read from the same chunk).
        Dumps are read in the host's byte order (x86_64 and aarch64 are both
        little-endian).
    :param outside: predicate name -> a captured predicate whose value is a
        buddy order: matches inside the ``1 << order`` pages from each of its
        matches (in the same chunk) are dropped.  A zero refcount is common
        to every page of a free block; only those outside one are news, and
        the free pages would otherwise come back one PFN each.
    :returns: matches per predicate in ascending PFN order, pages read, and
        unreadable PFN ranges.
    """
    stride = prog.type("struct page").size
    # The smallest unit worth retrying: the struct pages in one page of vmemmap.
    min_pages = max(1, (object_value(prog, "PAGE_SIZE") or 4096) // stride)
    return _scan_ranges(prog, preds, valid_page_ranges(prog) if ranges is None else ranges,
                        stride, min_pages, chunk_pages, capture or {}, outside or {})


def _scan_ranges(prog: drgn.Program, preds: Mapping[str, Sequence[ByteTest]],
                 ranges: Iterable[tuple[int, int, int]], stride: int, min_pages: int,
                 chunk_pages: int = CHUNK_PAGES,
                 capture: Mapping[str, tuple[int, int]] | None = None,
                 outside: Mapping[str, str] | None = None) -> MemmapScan:
    """The scan proper: needs only memory reads, no debug info."""
    capture, outside = capture or {}, outside or {}
    result = MemmapScan.empty(preds, capture)
    for start, end, addr in ranges:
        pfn = start
        while pfn < end:
            n = min(chunk_pages, end - pfn)
            _scan_chunk(prog, pfn, n, addr + (pfn - start) * stride, stride, preds, result,
                        min_pages, capture, outside)
            pfn += n
    return result


def split_ranges(ranges: Sequence[tuple[int, int, int]], pieces: int,
                 stride: int) -> list[list[tuple[int, int, int]]]:
    """Cut PFN ranges into ``pieces`` lists of about equal page counts."""
    total = sum(e - s for s, e, _ in ranges)
    target = max(1, -(-total // pieces))
    out: list[list[tuple[int, int, int]]] = [[]]
    room = target
    for start, end, addr in ranges:
        pfn = start
        while pfn < end:
            n = min(room, end - pfn)
            out[-1].append((pfn, pfn + n, addr + (pfn - start) * stride))
            pfn += n
            room -= n
            if room == 0:
                out.append([])
                room = target
    return [piece for piece in out if piece]


_WORKER_PROG: drgn.Program | None = None
#: See :func:`start_scan_parallel`.
PIECES_PER_WORKER = 8


def _worker_init(core: str, arch: str, flags: int) -> None:
    """Open the dump without debug info: the scan only reads memory, and
    VMCOREINFO is enough for drgn to translate vmemmap addresses.  The
    platform is passed in (QEMU's kdump headers do not name it)."""
    global _WORKER_PROG
    from .probe import quiet_drgn_logs

    quiet_drgn_logs()
    _WORKER_PROG = drgn.Program(drgn.Platform(drgn.Architecture[arch], drgn.PlatformFlags(flags)))
    _WORKER_PROG.set_core_dump(core)


def _worker_scan(preds, ranges, stride: int, min_pages: int, capture, outside) -> MemmapScan:
    assert _WORKER_PROG is not None
    return _scan_ranges(_WORKER_PROG, preds, ranges, stride, min_pages, capture=capture,
                        outside=outside)


def scan_pages_parallel(prog: drgn.Program, spec, preds: Mapping[str, Sequence[ByteTest]],
                        workers: int,
                        capture: Mapping[str, tuple[int, int]] | None = None,
                        outside: Mapping[str, str] | None = None) -> MemmapScan:
    """:func:`scan_pages` split across worker processes, each with its own Program.

    Worth it for kdump-compressed dumps, where decompression bounds one
    process.  ``spec`` is the :class:`~drgn_mmtools.target.TargetSpec` of
    ``prog``; workers open its dump without debug info.  Matches come back in
    PFN order.
    """
    return start_scan_parallel(prog, spec, preds, workers, capture, outside).result()


class PendingScan:
    """A scan running in worker processes; :meth:`result` waits for it."""

    def __init__(self, pool, futures, preds, capture) -> None:
        self._pool, self._futures = pool, futures
        self._result: MemmapScan | None = None
        self._preds, self._capture = preds, capture

    def result(self) -> MemmapScan:
        """The merged scan, in PFN order (waits for the workers once)."""
        if self._result is None:
            result = MemmapScan.empty(self._preds, self._capture)
            try:
                for future in self._futures:
                    result.merge(future.result())
            finally:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._result = result
        return self._result

    def cancel(self) -> None:
        """Stop waiting for the workers (a live session that moved on)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def start_scan_parallel(prog: drgn.Program, spec, preds: Mapping[str, Sequence[ByteTest]],
                        workers: int,
                        capture: Mapping[str, tuple[int, int]] | None = None,
                        outside: Mapping[str, str] | None = None) -> PendingScan:
    """Start :func:`scan_pages_parallel` and return at once: the caller goes
    on (walking page tables, say) while the workers decompress."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    stride = prog.type("struct page").size
    min_pages = max(1, (object_value(prog, "PAGE_SIZE") or 4096) // stride)
    # Pieces of equal page counts, several per worker, taken as workers
    # free up: the same number of pages can cost 25% more to decompress in
    # one part of memory than in another (with one piece per worker, one
    # sat idle for a tenth of the scan; 16 GiB, 2 workers, medians of six:
    # 0.386 s with 1 piece each, 0.357 s with 8).
    pieces = split_ranges(valid_page_ranges(prog), workers * PIECES_PER_WORKER, stride)
    # fork: a child starts in milliseconds with everything imported, and the
    # caller's __main__ is not run again (spawn re-imports it, which breaks
    # any script without a __main__ guard).  A child never touches the
    # parent's Program: drgn's OpenMP indexing threads do not survive a fork,
    # and libkdumpfile's caches and file offset would be shared.  It opens the
    # dump afresh, without debug info (30-45 ms on a 16 GiB dump).
    ctx = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(max(1, min(workers, len(pieces))), mp_context=ctx,
                               initializer=_worker_init,
                               initargs=(str(spec.core), prog.platform.arch.name,
                                         prog.platform.flags.value))
    capture, outside = dict(capture or {}), dict(outside or {})
    futures = [pool.submit(_worker_scan, preds, piece, stride, min_pages, capture, outside)
               for piece in pieces]
    return PendingScan(pool, futures, preds, capture)
