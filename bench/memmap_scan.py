"""Benchmark the mem_map scan, the whole check and the page-table walk
against drgn's own helpers, on one big guest.

Boots the shipped x86_64 kernel with 16 GiB of RAM, the bugs scenarios and a
process holding 4 GiB of populated anonymous memory (generated on demand
under build/bench, never committed), dumps it with
QEMU in ELF and in kdump-zlib (which QEMU writes in makedumpfile's flattened
form; ``makedumpfile -R`` turns it into the seekable file kdump itself
saves), and for each dump prints, in one run:

  drgn loop     for_each_page() + PageHWPoison(), timed over --drgn-seconds
  raw read      prog.read() of every struct page, 4 MiB at a time, one stream
  scan 1        drgn_mmtools' scan with the check's own predicates, one process
  scan N        the same over N forked workers
  full check    ``drgn-mmtools check`` as a command, and its peak RSS
  pt walk       every address space's page tables walked once, against
                drgn's follow_pfn() per mapped page

as pages/s and ratios; every row but drgn's loop and the walk is the median
of three runs.  Usage:

  python3 bench/memmap_scan.py [--memory-mib 16384] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import drgn  # noqa: E402
from drgn.helpers.linux.mm import PageHWPoison, follow_pfn, for_each_page  # noqa: E402

from drgn_mmtools.analysis.pagesets import scan_predicates  # noqa: E402
from drgn_mmtools.kernel.memmap import (  # noqa: E402
    scan_pages, scan_pages_parallel, valid_page_ranges)
from drgn_mmtools.kernel.probe import quiet_drgn_logs  # noqa: E402
from drgn_mmtools.target import TargetSpec, open_program  # noqa: E402
from fixtures import lab  # noqa: E402
from fixtures.arches import ARCHES  # noqa: E402


#: Run in the guest through the 9p share (the host's Python): map, populate
#: and hold anonymous memory.
MAP_JOB = """#!/bin/sh
python3 -c '
import mmap, time
m = mmap.mmap(-1, {size}, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
print("MMBENCH mapped", flush=True)
while True:
    time.sleep(3600)
' &
"""


def drgn_loop(prog: drgn.Program, seconds: float) -> tuple[int, float]:
    n, start = 0, time.monotonic()
    for page in for_each_page(prog):
        try:
            PageHWPoison(page)
        except drgn.FaultError:
            pass
        n += 1
        if n % 4096 == 0 and time.monotonic() - start > seconds:
            break
    return n, time.monotonic() - start


def raw_read(prog: drgn.Program) -> tuple[int, float]:
    size = prog.type("struct page").size
    chunk = (4 << 20) // size
    n, start = 0, time.monotonic()
    for s, e, addr in valid_page_ranges(prog):
        pfn = s
        while pfn < e:
            k = min(chunk, e - pfn)
            try:
                prog.read(addr + (pfn - s) * size, k * size)
            except drgn.FaultError:
                pass
            n += k
            pfn += k
    return n, time.monotonic() - start


#: Runs of each timed row but drgn's loop; the median is printed (this is a
#: shared VM, where one run can be 20-30% off).
RUNS = 3


def timed(fn):
    start = time.monotonic()
    out = fn()
    return out, time.monotonic() - start


def median_of(runs: int, fn):
    """The (result, seconds) of ``fn()`` with the median seconds of ``runs`` runs."""
    results = sorted((fn() for _ in range(runs)), key=lambda r: r[1])
    return results[len(results) // 2]


def full_check(spec: TargetSpec, runs: int = RUNS) -> tuple[float, int, int]:
    """(median wall seconds, peak RSS in KiB, exit status) of the check
    command over ``runs`` runs, after one untimed run.  Python may write
    its bytecode caches, as an installed package has them."""
    cmd = [sys.executable, "-m", "drgn_mmtools", "check", str(spec.core), "--vmlinux",
           str(spec.vmlinux), "--format", "json", "--output", os.devnull]
    for m in spec.modules:
        cmd += ["--module", str(m)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    walls, rss, code = [], 0, 0
    for i in range(runs + 1):
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        if i:
            walls.append(time.monotonic() - start)
            rss, code = max(rss, usage.ru_maxrss), os.waitstatus_to_exitcode(status)
    return sorted(walls)[len(walls) // 2], rss, code


def page_table_walk(prog: drgn.Program, spec: TargetSpec,
                    seconds: float) -> tuple[int, float, int, float]:
    """(pages, seconds) of our walk of every address space's page tables
    (as the checks walk them: runs of plain page-table entries, and leaves),
    and (pages, seconds) of drgn's follow_pfn() on the same mapped pages,
    stopped after ``seconds``.  The address spaces are listed first, outside
    both timings."""
    from drgn_mmtools.kernel.pgtable import (LeafRun, iter_leaves, page_table_format,
                                             walk_user_page_runs)
    from drgn_mmtools.kernel.tasks import user_mms

    mms = [u.mm for u in user_mms(prog)]
    shift = page_table_format(prog).page_shift  # probed once, outside the timing
    start = time.monotonic()
    walks = [(mm, list(walk_user_page_runs(prog, mm.pgd.value_()))) for mm in mms]
    ours_s = time.monotonic() - start
    ours = sum(item.present if type(item) is LeafRun else item.size >> shift
               for _, items in walks for item in items)
    n, start = 0, time.monotonic()
    for mm, items in walks:
        for leaf in iter_leaves(items):
            for i in range(leaf.size >> shift):
                try:
                    follow_pfn(mm, leaf.vaddr + (i << shift))
                except drgn.FaultError:
                    pass
                n += 1
            if time.monotonic() - start > seconds:
                return ours, ours_s, n, time.monotonic() - start
    return ours, ours_s, n, time.monotonic() - start


def measure(name: str, spec: TargetSpec, drgn_seconds: float, workers: int) -> None:
    prog = open_program(spec)
    preds, capture, outside = scan_predicates(prog)
    rows = []
    n, t = drgn_loop(prog, drgn_seconds)
    rows.append(("drgn for_each_page+PageHWPoison", n, t))
    n, t = median_of(RUNS, lambda: raw_read(prog))
    rows.append(("raw prog.read, one stream", n, t))
    one, t = median_of(RUNS, lambda: timed(lambda: scan_pages(prog, preds, capture=capture,
                                                              outside=outside)))
    rows.append(("scan, 1 process", one.pages_scanned, t))
    if workers > 1:
        many, t = median_of(RUNS, lambda: timed(lambda: scan_pages_parallel(
            prog, spec, preds, workers, capture, outside)))
        rows.append((f"scan, {workers} processes", many.pages_scanned, t))
        assert all(list(many.matches[k]) == list(one.matches[k]) for k in preds)
    check_s, rss_kib, status = full_check(spec)
    rows.append((f"full check (exit {status}, peak RSS {rss_kib >> 10} MiB)", rows[1][1], check_s))
    base = rows[0][1] / rows[0][2]
    raw = rows[1][1] / rows[1][2]
    print(f"\n{name}: {rows[1][1]:,} struct pages, "
          f"{len(one.matches.get('hwpoison', []))} PG_hwpoison", flush=True)
    print(f"  {'method':44} {'pages':>11} {'seconds':>8} {'M pages/s':>10} {'x drgn':>8} "
          f"{'x raw':>6}")
    for label, pages, secs in rows:
        rate = pages / secs
        print(f"  {label:44} {pages:>11,} {secs:>8.2f} {rate / 1e6:>10.2f} {rate / base:>8.1f} "
              f"{rate / raw:>6.2f}", flush=True)
    ours, ours_s, theirs, theirs_s = page_table_walk(prog, spec, drgn_seconds)
    print(f"  page-table walk: {ours:,} mapped pages in {ours_s:.2f} s; drgn follow_pfn "
          f"{theirs:,} in {theirs_s:.2f} s; {ours / ours_s / (theirs / theirs_s):.1f}x "
          "per mapped page", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memory-mib", type=int, default=16384)
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--drgn-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--mapped-mib", type=int, default=4096,
                        help="anonymous memory a guest process maps and populates")
    parser.add_argument("--keep", action="store_true", help="keep the dumps")
    args = parser.parse_args()
    quiet_drgn_logs()
    arch = ARCHES["x86_64"]
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    dumps = {"kdump-zlib": work / "vmcore.kdump", "elf": work / "vmcore.elf"}
    if not all(p.exists() for p in dumps.values()):
        # Besides the scenarios, a process maps and populates --mapped-mib of
        # anonymous memory, so that the page-table walk has pages to walk.
        job = work / "map-memory.sh"
        job.write_text(MAP_JOB.format(size=args.mapped_mib << 20))
        guest = lab.boot_shipped(arch, "bugs", work / "guest", memory_mib=args.memory_mib,
                                 share=Path("/"), extra_append=f"mmjob={job}")
        try:
            guest.wait_ready(timeout=1200)
            guest.wait_for(r"^MMBENCH mapped", 1200)
            for fmt, path in dumps.items():
                raw = path.with_suffix(".qemu") if fmt == "kdump-zlib" else path
                raw.unlink(missing_ok=True)
                secs = guest.dump(raw, fmt)
                print(f"{fmt} dump of {args.memory_mib} MiB: {raw.stat().st_size >> 20} MiB "
                      f"in {secs:.1f} s")
        finally:
            guest.stop()
        flat = dumps["kdump-zlib"].with_suffix(".qemu")
        with flat.open("rb") as src:
            subprocess.run(["makedumpfile", "-R", str(dumps["kdump-zlib"])], stdin=src,
                           check=True, stdout=subprocess.DEVNULL)
        flat.unlink()
    d = lab.arch_dir(arch)
    for fmt, path in dumps.items():
        spec = TargetSpec(core=path, vmlinux=d / "vmlinux.debug", modules=[d / "mmfixture.ko"])
        measure(f"{fmt} ({path.stat().st_size >> 20} MiB)", spec, args.drgn_seconds,
                args.workers if fmt == "kdump-zlib" else 1)
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
