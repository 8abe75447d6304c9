"""Benchmark the mem_map scan against drgn's own helpers, on one big guest.

Boots the shipped x86_64 kernel with 16 GiB of RAM (generated on demand,
never committed), dumps it in QEMU's kdump-zlib and ELF formats, and for
each dump runs in one process:

  drgn     for_each_page() + PageHWPoison() (timed over --drgn-seconds)
  raw      prog.read() of every struct page, 4 MiB at a time, one stream
  scan     drgn_mmtools' vectorized scan, one process
  scan-N   the same split over N worker processes (kdump-compressed only)

and prints pages/s and the ratios.  Usage:

  python3 bench/memmap_scan.py [--memory-mib 16384] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import drgn  # noqa: E402
from drgn.helpers.linux.mm import PageHWPoison, for_each_page  # noqa: E402

from drgn_mmtools.kernel.memmap import (  # noqa: E402
    flag_test, scan_pages, scan_pages_parallel, valid_page_ranges)
from drgn_mmtools.kernel.pageflags import pageflag_bit  # noqa: E402
from drgn_mmtools.kernel.probe import quiet_drgn_logs  # noqa: E402
from drgn_mmtools.target import TargetSpec, open_program  # noqa: E402
from fixtures import lab  # noqa: E402
from fixtures.arches import ARCHES  # noqa: E402


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


def measure(name: str, spec: TargetSpec, drgn_seconds: float, workers: int) -> None:
    prog = open_program(spec)
    preds = {"hwpoison": [flag_test(prog, pageflag_bit(prog, "PG_hwpoison"))]}
    rows = []
    n, t = drgn_loop(prog, drgn_seconds)
    rows.append(("drgn for_each_page+PageHWPoison", n, t))
    n, t = raw_read(prog)
    rows.append(("raw prog.read, one stream", n, t))
    start = time.monotonic()
    r = scan_pages(prog, preds)
    rows.append(("drgn_mmtools scan, one process", r.pages_scanned, time.monotonic() - start))
    found = len(r.matches["hwpoison"])
    if workers > 1:
        start = time.monotonic()
        rp = scan_pages_parallel(prog, spec, preds, workers)
        rows.append((f"drgn_mmtools scan, {workers} processes", rp.pages_scanned,
                     time.monotonic() - start))
        assert list(rp.matches["hwpoison"]) == list(r.matches["hwpoison"])
    base = rows[0][1] / rows[0][2]
    raw = rows[1][1] / rows[1][2]
    print(f"\n{name}: {rows[1][1]:,} struct pages, {found} PG_hwpoison", flush=True)
    print(f"  {'method':38} {'pages':>11} {'seconds':>8} {'M pages/s':>10} {'x drgn':>8} {'x raw':>6}")
    for label, pages, secs in rows:
        rate = pages / secs
        print(f"  {label:38} {pages:>11,} {secs:>8.2f} {rate / 1e6:>10.2f} {rate / base:>8.1f} "
              f"{rate / raw:>6.2f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memory-mib", type=int, default=16384)
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--drgn-seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", action="store_true", help="keep the dumps")
    args = parser.parse_args()
    quiet_drgn_logs()
    arch = ARCHES["x86_64"]
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    dumps = {"kdump-zlib": work / "vmcore.kdump", "elf": work / "vmcore.elf"}
    if not all(p.exists() for p in dumps.values()):
        guest = lab.boot_shipped(arch, "bugs", work / "guest", memory_mib=args.memory_mib)
        try:
            guest.wait_ready(timeout=1200)
            for fmt, path in dumps.items():
                path.unlink(missing_ok=True)
                secs = guest.dump(path, fmt)
                print(f"{fmt} dump of {args.memory_mib} MiB: {path.stat().st_size >> 20} MiB "
                      f"in {secs:.1f} s")
        finally:
            guest.stop()
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
