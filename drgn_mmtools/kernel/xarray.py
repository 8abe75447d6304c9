"""An XArray walker that shows the node level (Linux 4.20 and later).

Entry encoding (include/linux/xarray.h, unchanged since 4.20): bit 0 set is
a value entry; ``(entry & 3) == 2`` is an internal entry, which is a node
pointer when above 4096, a sibling (``xa_mk_internal(offset)``) below
``XA_CHUNK_SIZE - 1``, and the retry (256) or zero (257) entry otherwise.
Every node is read with one ``prog.read``; slots are decoded from the bytes.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import drgn
from drgn import Object

from .probe import member_offsets

__all__ = ("XaEntry", "XaNode", "entry_kind", "xa_entries", "xa_node_slots", "xa_nodes")

XA_RETRY_ENTRY = (256 << 2) | 2
XA_ZERO_ENTRY = (257 << 2) | 2


class XaNode(NamedTuple):
    """One ``struct xa_node`` as read from memory."""

    address: int
    shift: int  #: bits of index below this node's slots
    offset: int  #: slot of this node in its parent
    count: int  #: non-NULL slots (siblings and values included)
    nr_values: int  #: value entries among the slots
    parent: int
    marks: tuple[int, ...]  #: one bitmap per XA_MARK (slot bits)
    first_index: int  #: lowest index this node covers
    depth: int  #: 0 for the node at xa_head


class XaEntry(NamedTuple):
    """One entry of an XArray, with where it sits."""

    index: int  #: first index the entry covers
    entry: int  #: the raw slot value
    kind: str  #: "pointer", "value", "zero" or "retry"
    order: int  #: the entry covers ``1 << order`` indices
    node: int  #: address of the xa_node holding it (0 for xa_head)
    offset: int  #: slot within the node


def entry_kind(entry: int, chunk: int) -> str:
    """Classify a slot: "null", "value", "pointer", "node", "sibling", "retry", "zero", "internal"."""
    if entry == 0:
        return "null"
    if entry & 1:
        return "value"
    if entry & 3 != 2:
        return "pointer"
    if entry > 4096:
        return "node"
    if entry == XA_RETRY_ENTRY:
        return "retry"
    if entry == XA_ZERO_ENTRY:
        return "zero"
    if (entry >> 2) < chunk - 1:
        return "sibling"
    return "internal"


class _Layout(NamedTuple):
    size: int
    shift: int
    offset: int
    count: int
    nr_values: int
    parent: int
    slots: int
    marks: int
    chunk: int
    mark_longs: int
    nmarks: int
    word: int
    byteorder: str


def _layout(prog: drgn.Program) -> _Layout:
    if "mmtools_xa_layout" in prog.cache:
        return prog.cache["mmtools_xa_layout"]
    off = member_offsets(prog, "struct xa_node", "shift", "offset", "count", "nr_values",
                         "parent", "slots", "marks")
    t = prog.type("struct xa_node")
    slots = t.member("slots").type
    marks = t.member("marks").type
    word = prog.type("unsigned long").size
    little = bool(prog.platform.flags & drgn.PlatformFlags.IS_LITTLE_ENDIAN)
    lay = _Layout(
        size=t.size,
        **off,  # the _Layout fields are named after the members
        chunk=slots.length,
        mark_longs=marks.type.length,
        nmarks=marks.length,
        word=word,
        byteorder="little" if little else "big",
    )
    prog.cache["mmtools_xa_layout"] = lay
    return lay


def _head(xa: Object) -> int:
    return xa.xa_head.value_()


def _read_node(prog: drgn.Program, lay: _Layout, addr: int, first_index: int,
               depth: int) -> tuple[XaNode, list[int]]:
    buf = prog.read(addr, lay.size)
    o = lay.byteorder

    def u(off: int, size: int) -> int:
        return int.from_bytes(buf[off:off + size], o)

    slots = [u(lay.slots + i * lay.word, lay.word) for i in range(lay.chunk)]
    marks = tuple(
        sum(u(lay.marks + (m * lay.mark_longs + j) * lay.word, lay.word) << (64 * j)
            for j in range(lay.mark_longs))
        for m in range(lay.nmarks)
    )
    node = XaNode(addr, buf[lay.shift], buf[lay.offset], buf[lay.count], buf[lay.nr_values],
                  u(lay.parent, lay.word), marks, first_index, depth)
    return node, slots


def _walk(prog: drgn.Program, xa: Object) -> Iterator[tuple[XaNode, list[int]]]:
    """Nodes depth first.  A corrupted tree cannot loop or run away: a node
    seen twice, a child whose shift is not its parent's less one level, or
    a shift beyond an index's bits raises :class:`drgn.FaultError` naming
    the node."""
    lay = _layout(prog)
    head = _head(xa)
    if entry_kind(head, lay.chunk) != "node":
        return
    bits = (lay.chunk - 1).bit_length()  # XA_CHUNK_SHIFT
    seen: set[int] = set()
    stack = [(head - 2, 0, 0, None)]
    while stack:
        addr, first, depth, want_shift = stack.pop()
        if addr in seen:
            raise drgn.FaultError("XArray node reached twice (cycle)", addr)
        seen.add(addr)
        node, slots = _read_node(prog, lay, addr, first, depth)
        if (want_shift is not None and node.shift != want_shift) or node.shift >= 64 \
                or node.shift % bits:
            raise drgn.FaultError(f"XArray node with implausible shift {node.shift}", addr)
        yield node, slots
        if node.shift:
            for i in reversed(range(lay.chunk)):
                if entry_kind(slots[i], lay.chunk) == "node":
                    stack.append((slots[i] - 2, first + (i << node.shift), depth + 1,
                                  node.shift - bits))


def xa_node_slots(xa: Object) -> Iterator[tuple[XaNode, list[int]]]:
    """Every node of an XArray with its raw slots, parents before children.

    :param xa: ``struct xarray *``
    :raises drgn.FaultError: if a node cannot be read, or the tree is corrupted.
    """
    return _walk(xa.prog_, xa)


def xa_nodes(xa: Object) -> Iterator[XaNode]:
    """Every node of an XArray, parents before children, lowest index first.

    :param xa: ``struct xarray *``
    :raises drgn.FaultError: if a node cannot be read.
    """
    for node, _ in _walk(xa.prog_, xa):
        yield node


def xa_entries(xa: Object) -> Iterator[XaEntry]:
    """Every non-NULL entry of an XArray in index order; siblings fold into
    the multi-order entry they belong to.  Value entries stay integers: a DAX
    or shadow entry is never treated as a page.

    :param xa: ``struct xarray *``
    :raises drgn.FaultError: if a node cannot be read.
    """
    prog = xa.prog_
    lay = _layout(prog)
    head = _head(xa)
    kind = entry_kind(head, lay.chunk)
    if kind == "null":
        return
    if kind != "node":
        yield XaEntry(0, head, kind, 0, 0, 0)
        return
    for node, slots in _walk(prog, xa):
        i = 0
        while i < lay.chunk:
            s = slots[i]
            k = entry_kind(s, lay.chunk)
            if k in ("null", "node", "sibling"):
                i += 1
                continue
            sibs = 0
            while i + sibs + 1 < lay.chunk and slots[i + sibs + 1] == ((i << 2) | 2):
                sibs += 1
            order = node.shift + (sibs + 1).bit_length() - 1
            yield XaEntry(node.first_index + (i << node.shift), s, k, order, node.address, i)
            i += sibs + 1
