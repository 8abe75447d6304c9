"""Corrupt kernel structures of a shipped dump, one at a time, in a copy.

The copy is an overlay: a drgn program whose physical memory is read from
the shipped dump through a table of patches (``Program.set_linux_kernel_custom``
with one physical segment), with the dump's own VMCOREINFO, possibly
mutated too.  Nothing is written to disk, and each case starts from a fresh
program.

Each mutation class picks its target with stock drgn on the unmodified dump
(``tests/oracle.py``'s way of reading), from the truth the guest recorded,
and says which truth kinds it may legitimately hide: everything else must
still be found.
"""

from __future__ import annotations

import io
import json
import random
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import drgn
from drgn import Object
from drgn.helpers.linux.fs import path_lookup
from drgn.helpers.linux.mm import follow_phys, pfn_to_page
from drgn.helpers.linux.pid import find_task

from .manifests import Fixture, all_fixtures, open_dump

TASK_KINDS = {"mapping_mismatch", "fault_retry"}
#: The check that reports each truth kind.
CHECK_OF = {"mapping_mismatch": "mapping-mismatch", "fault_retry": "fault-retry",
            "hwpoison": "hwpoison-pagecache", "dax": "dax-entries"}
ALL_KINDS = {"mapping_mismatch", "fault_retry", "hwpoison", "dax"}
HOSTILE = "\x1b[31m\u202eevil\x07".encode()


@dataclass
class Mutation:
    """Patches to physical memory (and VMCOREINFO), and what they may hide."""

    name: str  #: class/what, e.g. "xarray/self-cycle"
    patches: dict[int, bytes] = field(default_factory=dict)
    vmcoreinfo: bytes | None = None
    affects: set[str] = field(default_factory=set)  #: truth kinds this may hide


class Target:
    """The unmodified dump, read with stock drgn, and its truth."""

    def __init__(self, fx: Fixture) -> None:
        self.fx = fx
        self.prog = open_dump(fx.path)
        self.word = 8

    def phys(self, vaddr: int) -> int:
        return follow_phys(self.prog["init_mm"].address_of_(), vaddr).value_()

    def patch_word(self, m: Mutation, vaddr: int, value: int) -> None:
        m.patches[self.phys(vaddr)] = struct.pack("<Q", value & (2**64 - 1))

    def patch_bytes(self, m: Mutation, vaddr: int, data: bytes) -> None:
        # Byte patches may cross a page: split at page boundaries.
        while data:
            n = min(len(data), 4096 - vaddr % 4096)
            m.patches[self.phys(vaddr)] = data[:n]
            vaddr, data = vaddr + n, data[n:]

    def truth(self, kind: str) -> list[dict]:
        return self.fx.truth(kind)

    def task(self, pid: int) -> Object:
        return find_task(self.prog, pid)

    def inode(self, path: str) -> Object:
        return path_lookup(self.prog, path).dentry.d_inode


def _wild(rng: random.Random) -> int:
    return rng.choice([0, 2**64 - 1, 0xdead000000000100, 0xffff000000000000 | rng.getrandbits(40),
                       rng.getrandbits(64), 1, 0x1000])


def struct_page(t: Target, rng: random.Random) -> Mutation:
    choices = [(p["pfn"], "hwpoison") for p in t.truth("hwpoison")]
    choices += [(m["pfn"], "mismatch") for m in t.truth("mapping_mismatch")]
    choices += [(d["pfn"], "dax") for d in t.truth("dax_entry") if d["pfn"] and d["locked"]]
    pfn, what = rng.choice(choices)
    page = pfn_to_page(t.prog, pfn)
    size = t.prog.type("struct page").size
    off = rng.randrange(0, size // 8) * 8
    m = Mutation(f"struct-page/{what}+{off}")
    t.patch_word(m, page.value_() + off, _wild(rng))
    m.affects = {"hwpoison": {"hwpoison"}, "mismatch": {"mapping_mismatch", "fault_retry"},
                 "dax": {"dax"}}[what]
    return m


def _files(t: Target) -> list[tuple[str, set[str]]]:
    out = [(m["page_file"], {"mapping_mismatch", "fault_retry"}) for m in t.truth("mapping_mismatch")
           if "page_file" in m]
    out += [(h["file"], {"hwpoison"}) for h in t.truth("hwpoison") if h.get("in_page_cache")]
    out += [(d["file"], {"dax"}) for d in t.truth("dax_entry") if d["locked"] and d["waiter_pids"]]
    out += [(d["file"], set()) for d in t.truth("dax_entry") if not d["locked"]]
    merged: dict[str, set[str]] = {}
    for path, affects in out:
        merged.setdefault(path, set()).update(affects)
    return sorted(merged.items())


def xarray(t: Target, rng: random.Random) -> Mutation:
    path, affects = rng.choice(_files(t))
    xa = t.inode(path).i_mapping.i_pages
    head = xa.xa_head.value_()
    m = Mutation(f"xarray/{path}", affects=affects)
    if head & 3 != 2 or head < 4096:
        m.name += "/head"
        t.patch_word(m, xa.xa_head.address_, _wild(rng))
        return m
    node = Object(t.prog, "struct xa_node *", head - 2)
    how = rng.choice(["self-cycle", "slot-garbage", "shift", "count"])
    m.name += f"/{how}"
    slot = node.slots[rng.randrange(len(node.slots))].address_
    if how == "self-cycle":
        t.patch_word(m, slot, head)
    elif how == "slot-garbage":
        t.patch_word(m, slot, _wild(rng))
    elif how == "shift":
        t.patch_bytes(m, node.shift.address_, bytes([rng.choice([0, 6, 12, 63, 255])]))
    else:
        t.patch_bytes(m, node.count.address_, bytes([255]))
    return m


def has_member(obj, name: str) -> bool:
    try:
        obj.member_(name)
        return True
    except LookupError:
        return False


def _tasks(t: Target) -> list[tuple[int, set[str]]]:
    out = [(x["pid"], {"mapping_mismatch", "fault_retry"}) for x in t.truth("fault_retry")]
    out += [(x["pid"], {"dax"}) for x in t.truth("dax_waiter")]
    out += [(x["pid"], set()) for x in t.truth("busy_writer")]
    return out


def page_table(t: Target, rng: random.Random) -> Mutation:
    pid, affects = rng.choice(_tasks(t))
    mm = t.task(pid).mm
    fmt_levels = 4
    address = rng.choice([x["address"] for x in t.truth("mapping_mismatch") if x["pid"] == pid]
                         or [mm.mmap_base.value_() - 4096])
    level = rng.randrange(fmt_levels)  # 0 = PGD
    how = rng.choice(["all-ones", "self", "garbage-non-present", "zero", "pgd-unaligned"])
    m = Mutation(f"page-table/pid{pid}/level{level}/{how}", affects=affects | {"hwpoison"})
    if how == "pgd-unaligned":
        t.patch_word(m, mm.pgd.address_, mm.pgd.value_() + rng.choice([8, 0x800, 3]))
        return m
    # Walk down to the entry at `level` with stock reads of physical memory
    # (4 levels of 512 entries: x86_64, and aarch64 with 4 KiB pages, 48 bits).
    table = t.phys(mm.pgd.value_()) & ~0xfff
    shifts = [39, 30, 21, 12]
    x86 = t.prog.platform.arch == drgn.Architecture.X86_64
    for lvl in range(level + 1):
        idx = (address >> shifts[lvl]) & 511
        entry_phys = table + idx * 8
        entry = struct.unpack("<Q", t.prog.read(entry_phys, 8, True))[0]
        if lvl == level or not entry & 1:
            break
        table = entry & 0x0000_ffff_ffff_f000
    value = {"all-ones": 2**64 - 1, "self": table | (0x67 if x86 else 0x3), "zero": 0,
             "garbage-non-present": (rng.getrandbits(63) << 1)}[how]
    m.patches[entry_phys] = struct.pack("<Q", value)
    return m


def maple(t: Target, rng: random.Random) -> Mutation:
    """The VMA tree: the maple tree since 6.1; before, the rbtree and the
    vm_next list (``mm_rb``, ``mmap``)."""
    pid, affects = rng.choice(_tasks(t))
    mm = t.task(pid).mm
    if not has_member(mm, "mm_mt"):
        return vma_rbtree(t, rng, pid, affects, mm)
    root = mm.mm_mt.ma_root
    how = rng.choice(["root-garbage", "root-self", "node-slot-self", "node-slot-garbage",
                      "map-count"])
    m = Mutation(f"maple/pid{pid}/{how}", affects=affects | {"hwpoison"})
    node = root.value_() & ~0xff
    if how == "root-garbage":
        t.patch_word(m, root.address_, _wild(rng))
    elif how == "root-self":
        t.patch_word(m, root.address_, root.address_ | (root.value_() & 0xff))
    elif how == "map-count":
        t.patch_bytes(m, mm.map_count.address_, struct.pack("<i", rng.choice([0, -1, 2**31 - 1])))
    else:
        # The slots of a maple_range_64 / maple_arange_64 node start after
        # the parent pointer and pivots; overwrite one word in its body.
        off = rng.randrange(1, 31) * 8
        t.patch_word(m, node + off, root.value_() if how == "node-slot-self" else _wild(rng))
    return m


def vma_rbtree(t: Target, rng: random.Random, pid: int, affects: set[str], mm) -> Mutation:
    how = rng.choice(["root-garbage", "root-self", "next-self", "next-garbage", "map-count"])
    m = Mutation(f"maple/pid{pid}/rbtree-{how}", affects=affects | {"hwpoison"})
    root = mm.mm_rb.rb_node
    first = mm.mmap
    if how == "root-garbage":
        t.patch_word(m, root.address_, _wild(rng))
    elif how == "root-self":
        t.patch_word(m, root.rb_left.address_, root.value_())  # the root is its own left child
    elif how == "next-self":
        t.patch_word(m, first.vm_next.address_, first.value_())
    elif how == "next-garbage":
        t.patch_word(m, first.vm_next.address_, _wild(rng))
    else:
        t.patch_bytes(m, mm.map_count.address_, struct.pack("<i", rng.choice([0, -1, 2**31 - 1])))
    return m


def task(t: Target, rng: random.Random) -> Mutation:
    pid, affects = rng.choice(_tasks(t))
    tk = t.task(pid)
    how = rng.choice(["comm", "tasks-cycle", "thread-cycle", "mm-wild", "pid-wild",
                      "signal-wild", "state"])
    m = Mutation(f"task/pid{pid}/{how}", affects=set(affects))
    if how == "comm":
        t.patch_bytes(m, tk.comm.address_, HOSTILE[:15] + b"\0")
        m.affects = set()  # found by pid; the name may be anything
    elif how == "tasks-cycle":
        t.patch_word(m, tk.tasks.next.address_, tk.tasks.address_)
        m.affects = TASK_KINDS | {"hwpoison", "dax"}  # every later process is lost
    elif how == "thread-cycle":
        t.patch_word(m, tk.thread_node.next.address_, tk.thread_node.address_)
    elif how == "mm-wild":
        t.patch_word(m, tk.mm.address_, _wild(rng))
        m.affects |= {"hwpoison"}
    elif how == "pid-wild":
        t.patch_bytes(m, tk.pid.address_, struct.pack("<i", rng.choice([-1, 0, 2**31 - 1])))
    elif how == "signal-wild":
        t.patch_word(m, tk.signal.address_, _wild(rng))
        m.affects = TASK_KINDS | {"hwpoison", "dax"}
    else:
        state = tk.__state if has_member(tk, "__state") else tk.state  # renamed in 5.14
        t.patch_bytes(m, state.address_, struct.pack("<I", rng.getrandbits(32)))
    return m


def dentry_inode(t: Target, rng: random.Random) -> Mutation:
    path, affects = rng.choice(_files(t))
    p = path_lookup(t.prog, path)
    dentry, inode = p.dentry, p.dentry.d_inode
    how = rng.choice(["name-hostile", "parent-cycle", "i_sb_list-self", "i_mapping-wild",
                      "name-wild"])
    m = Mutation(f"fs/{path}/{how}", affects=set(affects))
    if how == "name-hostile":
        name = dentry.d_name.name
        n = len(name.string_())
        t.patch_bytes(m, name.value_(), (HOSTILE * 4)[:n])
        m.affects = affects  # file names differ
    elif how == "parent-cycle":
        parent = dentry.d_parent
        t.patch_word(m, parent.d_parent.address_, dentry.value_())
    elif how == "i_sb_list-self":
        t.patch_word(m, inode.i_sb_list.next.address_, inode.i_sb_list.address_)
        m.affects = affects | {"dax"}  # the rest of that super block's inodes
    elif how == "i_mapping-wild":
        t.patch_word(m, inode.i_mapping.address_, _wild(rng))
    else:
        t.patch_word(m, dentry.d_name.name.address_, _wild(rng))
    return m


def buddy(t: Target, rng: random.Random) -> Mutation:
    pgdat = t.prog["contig_page_data"] if "contig_page_data" in t.prog \
        else t.prog["node_data"][0][0]
    zones = [z for z in pgdat.node_zones if z.managed_pages.counter.value_()]
    zone = rng.choice(zones)
    order = rng.randrange(0, 11)
    head = zone.free_area[order].free_list[rng.randrange(3)]
    how = rng.choice(["list-self", "list-wild", "order-garbage"])
    m = Mutation(f"buddy/order{order}/{how}")
    first = head.next.value_()
    if first == head.address_ or how == "list-wild":
        t.patch_word(m, head.next.address_, _wild(rng))
        return m
    page = drgn.container_of(Object(t.prog, "struct list_head *", first), "struct page", "lru")
    if how == "list-self":
        t.patch_word(m, page.lru.next.address_, page.lru.address_)
    else:
        t.patch_word(m, page.private.address_, _wild(rng))
    return m


def mem_section(t: Target, rng: random.Random) -> Mutation:
    ms = t.prog["mem_section"]
    how = rng.choice(["root-wild", "section-self", "section-garbage"])
    m = Mutation(f"mem_section/{how}", affects=set(ALL_KINDS))
    if how == "root-wild":
        t.patch_word(m, ms.address_, _wild(rng))
        return m
    root = ms[0]  # struct mem_section * (SPARSEMEM_EXTREME)
    sec = root + rng.randrange(0, 4)
    value = sec.value_() if how == "section-self" else _wild(rng)
    t.patch_word(m, sec.section_mem_map.address_, value)
    return m


def vmcoreinfo(t: Target, rng: random.Random) -> Mutation:
    # The dump's own VMCOREINFO note: kernel memory's vmcoreinfo_data may be
    # a page the dump level left out (after kexec -p it is a vmap'd copy).
    text = t.prog["VMCOREINFO"].string_()
    how = rng.choice(["kerneloffset", "truncate", "garbage-line", "pagesize"])
    m = Mutation(f"vmcoreinfo/{how}", affects=set(ALL_KINDS))
    lines = text.split(b"\n")
    if how == "kerneloffset":
        lines = [(b"KERNELOFFSET=%x" % (int(l.split(b"=")[1], 16) + rng.choice([2, -2, 4096])))
                 if l.startswith(b"KERNELOFFSET=") else l for l in lines]
    elif how == "truncate":
        lines = lines[:rng.randrange(1, len(lines))]
    elif how == "garbage-line":
        lines.insert(rng.randrange(len(lines)), b"SYMBOL(\xff)=zz" + HOSTILE)
    else:
        lines = [b"PAGESIZE=65536" if l.startswith(b"PAGESIZE=") else l for l in lines]
    m.vmcoreinfo = b"\n".join(lines)
    return m


CLASSES: dict[str, Callable[[Target, random.Random], Mutation]] = {
    "struct-page": struct_page,
    "xarray": xarray,
    "page-table": page_table,
    "maple": maple,
    "task": task,
    "fs": dentry_inode,
    "buddy": buddy,
    "mem_section": mem_section,
    "vmcoreinfo": vmcoreinfo,
}


def overlay_program(t: Target, m: Mutation) -> drgn.Program:
    """A fresh program over the dump's physical memory with ``m`` applied."""
    src = t.prog
    patches = sorted(m.patches.items())

    def read(address: int, count: int, offset: int, physical: bool) -> bytes:
        data = src.read(address, count, True)
        hits = [(a, b) for a, b in patches if a < address + count and a + len(b) > address]
        if not hits:
            return data
        buf = bytearray(data)
        for a, b in hits:
            lo, hi = max(a, address), min(a + len(b), address + count)
            buf[lo - address:hi - address] = b[lo - a:hi - a]
        return bytes(buf)

    prog = drgn.Program(src.platform)
    info = m.vmcoreinfo if m.vmcoreinfo is not None else src["vmcoreinfo_data"].string_()
    prog.set_linux_kernel_custom(info, False)
    prog.add_memory_segment(0, 1 << 40, read, True)
    return prog


#: Dumps the cases corrupt: the bugs captures with module debug info.
DUMPS = [f for f in all_fixtures() if not f.data["clean"] and f.modules]
CHECK_TIMEOUT = 30.0
#: Bytes that must never reach a terminal: controls but newline, and
#: bidirectional and zero-width format characters.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")

_targets: dict = {}


def target_for(i: int) -> Target:
    fx = DUMPS[i % len(DUMPS)]
    if fx.path not in _targets:
        _targets[fx.path] = Target(fx)
    return _targets[fx.path]


def mutation(seed: int, i: int) -> tuple[Target, Mutation]:
    t = target_for(i)
    names = sorted(CLASSES)
    cls = names[(i // len(DUMPS)) % len(names)]
    rng = random.Random(seed * 1_000_003 + i)
    return t, CLASSES[cls](t, rng)


def found(results: dict, kind: str, t: Target) -> bool:
    """Whether the truth items of ``kind`` are all reported."""
    def ev(check):
        return [f.evidence for f in results[check].findings]
    if kind == "mapping_mismatch":
        return all(any(e.get("pid") == m["pid"] and e.get("address") == m["address"]
                       for e in ev("mapping-mismatch")) for m in t.truth("mapping_mismatch"))
    if kind == "fault_retry":
        return all(any(f.evidence.get("pid") == x["pid"] and f.severity == "error"
                       for f in results["fault-retry"].findings) for x in t.truth("fault_retry"))
    if kind == "hwpoison":
        cached = [h["pfn"] for h in t.truth("hwpoison") if h["in_page_cache"]]
        return all(any(e.get("pfn") == p and e.get("in_page_cache") for e in ev("hwpoison-pagecache"))
                   for p in cached)
    assert kind == "dax"
    return all(any(e.get("mapping_inode") == d["inode"] and e.get("index") == d["index"]
                   and e.get("locked") for e in ev("dax-entries"))
               for d in t.truth("dax_entry") if d["locked"] and d["waiter_pids"])


@dataclass
class Outcome:
    """What the tool did with one corrupted dump."""

    name: str
    refused: str | None = None  #: the one-line error when the dump was refused at open
    failed: list[str] = field(default_factory=list)  #: checks that raised, with tracebacks
    timed_out: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)  #: checks that could not read everything
    exit_code: int | None = None
    json: Any = None
    report: str = ""
    unsafe: str | None = None  #: first unsafe character in the text report
    lost: list[str] = field(default_factory=list)  #: unrelated truth kinds not found
    #: affected truth kinds not found while the check that reports them says "ok"
    silent: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_case(seed: int, i: int) -> Outcome:
    """Corrupt, open the way the command line does, run every check, render."""
    return run_mutation(*mutation(seed, i))


def run_mutation(t: Target, m: Mutation) -> Outcome:
    """:func:`run_case` for one given mutation."""
    from rich.console import Console

    from drgn_mmtools.analysis.session import Session
    from drgn_mmtools.report.target import describe_target as target_of
    from drgn_mmtools.report import jsonout, text
    from drgn_mmtools.checks.runner import exit_code, run_checks
    from drgn_mmtools.target import TargetError, TargetSpec, finish_program

    o = Outcome(m.name)
    try:
        prog = overlay_program(t, m)
    except Exception as e:  # noqa: BLE001 - as open_program turns drgn's refusal into one line
        o.refused = f"cannot open the dump: {' '.join(str(e).split())}"
        return o
    start = time.monotonic()
    try:
        finish_program(prog, TargetSpec(vmlinux=t.fx.vmlinux, modules=t.fx.modules))
    except TargetError as e:
        o.refused = str(e)
        return o
    target = target_of(prog, f"{t.fx.id} with {m.name}")
    results = run_checks(Session(prog), check_timeout=CHECK_TIMEOUT)
    o.seconds = time.monotonic() - start
    o.failed = [f"{r.check}: {r.traceback}" for r in results if r.failed]
    o.timed_out = [r.check for r in results if r.timed_out]
    o.partial = [r.check for r in results if r.status == "partial"]
    o.exit_code = exit_code(results)
    o.json = json.loads(jsonout.dumps(jsonout.document(results, target, o.exit_code)))
    out = io.StringIO()
    text.render(Console(file=out, width=100), results, target, verbose=True)
    o.report = out.getvalue()
    bad = UNSAFE.search(o.report)
    o.unsafe = bad.group() if bad else None
    by_name = {r.check: r for r in results}
    o.lost = [k for k in sorted(ALL_KINDS - m.affects) if not found(by_name, k, t)]
    o.silent = [k for k in sorted(m.affects) if not found(by_name, k, t)
                and by_name[CHECK_OF[k]].status == "ok"]
    return o
