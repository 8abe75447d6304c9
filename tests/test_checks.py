"""Every truth item of every fixture is found by the right check, with the
recorded pfn, inode, index, pid and address; clean dumps yield nothing.

Expected values come from manifest.json, recorded inside the guest.
"""

from __future__ import annotations

import pytest

from . import oracle
from .manifests import Fixture, all_fixtures
from .tool import results

FIXTURES = all_fixtures()
BUGS = [f for f in FIXTURES if not f.data["clean"]]
CLEAN = [f for f in FIXTURES if f.data["clean"]]
NO_MODULE_DEBUG = [f for f in BUGS if not f.modules]


def ids(fxs):
    return [f.id for f in fxs]


def findings(fx: Fixture, check: str):
    r = results(fx.path)[check]
    assert not r.failed, r.traceback
    return r.findings


def one(items, **match):
    found = [f for f in items if all(f.evidence.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one finding with {match}, got {[f.summary for f in items]}"
    return found[0]


def other_file_truth(fx: Fixture):
    return [t for t in fx.truth("mapping_mismatch") if t.get("mismatch", "other-file") == "other-file"]


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_mapping_mismatch_names_both_files(fx: Fixture):
    """/dev/pcc_retry (a device) and pccfs's /data (a regular file, as in
    Lustre): both the VMA's file and the page's own file are named."""
    truth = other_file_truth(fx)
    assert {t["vma_file"] for t in truth} == {"/dev/pcc_retry", "/mnt/pccfs/data"}
    for t in truth:
        f = one(findings(fx, "mapping-mismatch"), pid=t["pid"], address=t["address"])
        assert f.severity == "error" and f.rule == "other-file"
        assert f"a page of {t['page_file']} " in f.summary and f"VMA of {t['vma_file']}" in f.summary
        assert f.evidence["pfn"] == t["pfn"]
        assert f.evidence["vma_file"] == t["vma_file"]
        if "vma_inode" in t:
            assert f.evidence["vma_inode"] == t["vma_inode"]
        assert f.evidence["page_file"] == t["page_file"]
        if "page_inode" in t:
            assert (f.evidence["page_inode"], f.evidence["page_fs"]) == (t["page_inode"], t["page_fs"])
        assert f.evidence["page_index"] == t["index"]
        assert f.evidence["vma_page_cache"] is (t["vma_file"] == "/mnt/pccfs/data")
        assert f.evidence["handler_module"] == "mmfixture"
        assert f.evidence["page_mkwrite_handler"] == "pcc_retry_page_mkwrite [mmfixture]"
        assert f.evidence["symbol_source"] == ("debuginfo" if fx.modules else "kallsyms")
        assert f.evidence["in_page_cache"] is True


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_mapping_mismatch_truncated_index_and_slot(fx: Fixture):
    got = findings(fx, "mapping-mismatch")
    (trunc,) = [t for t in fx.truth("mapping_mismatch") if t.get("mismatch") == "truncated"]
    f = one(got, pid=trunc["pid"], address=trunc["address"])
    assert (f.rule, f.evidence["pfn"], f.evidence["page_mapping"]) == ("truncated", trunc["pfn"], 0)
    assert f"maps a truncated page (mapping NULL) at {trunc['address']:#x} in /mnt/pccfs/trunc" \
        in f.summary
    assert trunc["pagemap_pfn_after_truncate"] == trunc["pfn"], "the guest saw the page unmapped"
    (shifted,) = [t for t in fx.truth("mapping_mismatch") if t.get("mismatch") == "index"]
    f = one(got, pid=shifted["pid"], address=shifted["address"])
    assert f.rule == "index" and f.evidence["pfn"] == shifted["pfn"]
    assert f.summary.endswith(f"index {shifted['index']} of /mnt/pccfs/shifted where the VMA "
                              f"expects index {shifted['expected_index']}")
    assert (f.evidence["page_index"], f.evidence["expected_index"]) == \
        (shifted["index"], shifted["expected_index"])
    (slot,) = fx.truth("pagecache_slot")
    f = one(got, mapping_inode=slot["inode"], slot_index=slot["index"])
    assert f.rule == "slot"
    assert (f.evidence["mapping_file"], f.evidence["page_file"], f.evidence["page_inode"],
            f.evidence["page_index"]) == (slot["file"], slot["page_file"], slot["page_inode"],
                                          slot["page_index"])


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_lent_pages_are_info_records(fx: Fixture):
    """udmabuf lends its memfd's pages, relay its vmalloc pages: records, not
    findings.  Where the guest saw the udmabuf VMA as VM_PFNMAP (6.12 maps
    PFNs, not pages), its PTEs are raw PFNs: neither a record nor a finding."""
    r = results(fx.path)["mapping-mismatch"]
    lent = {(rec["pid"], rec["address"]): rec for rec in r.records if rec["rule"] == "lent-page"}
    for c in fx.truth("control"):
        if c["what"] not in ("udmabuf", "relay"):
            continue
        if c.get("pfnmap"):
            size = c["pages"] << 12
            assert not any(pid == c["pid"] and c["address"] <= a < c["address"] + size
                           for pid, a in lent)
            assert not any(f.evidence.get("pid") == c["pid"]
                           and c["address"] <= f.evidence.get("address", -1) < c["address"] + size
                           for f in r.findings)
            continue
        rec = lent[(c["pid"], c["address"])]
        assert rec["pfn"] == c["pfn"]
        assert rec["vma_page_cache"] is False
        if c["what"] == "udmabuf":
            assert rec["page_fs"] == "tmpfs" and "memfd:udmabuf-control" in rec["page_file"]
            assert rec["vma_file"].startswith("[dmabuf]")
        else:
            assert rec["page_mapping"] == 0 and rec["vma_file"].startswith("/sys/kernel/debug/")


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_fault_retry_convicts_the_loop_wherever_the_dump_caught_it(fx: Fixture):
    """Error on every capture, from the counters and the refused page, with
    the handler named from debug info or, without it, from kallsyms."""
    loops = [t for t in fx.truth("fault_retry") if t.get("page") != "own"]
    assert {t["comm"] for t in loops} == {"pcc_retry", "pccfs_retry"}
    for t in loops:
        (mm,) = [m for m in other_file_truth(fx) if m["pid"] == t["pid"]]
        f = one(findings(fx, "fault-retry"), pid=t["pid"])
        assert (f.severity, f.rule) == ("error", "refused-loop"), f.summary
        ev = f.evidence
        assert ev["comm"] == t["comm"]
        assert ev["address"] == t["address"]
        assert ev["refused_pages"] >= 1
        assert ev["progress"] == []
        # It may have slept while its scenario set up, never since it loops.
        assert ev["counters"]["faults_per_voluntary_switch"] >= 1000
        assert ev["mismatch"] == "other-file"
        assert (ev["page_file"], ev["pfn"]) == (mm["page_file"], mm["pfn"])
        assert ev["page_mkwrite_handler"] == "pcc_retry_page_mkwrite [mmfixture]"
        assert ev["vm_ops"] == "pcc_retry_vm_ops [mmfixture]"
        assert ev["symbol_source"] == ("debuginfo" if fx.modules else "kallsyms")
        # The tool's reading of the position agrees with stock drgn's at
        # capture time on the coarse classes both draw.
        frozen = fx.data["frozen"]["by_pid"][str(t["pid"])]
        assert ev["position"]["where"] in {
            "handler": {"handler"}, "fault-path": {"fault-path"}, "user": {"user"},
            "kernel": {"exception-entry", "exception-exit", "interrupt", "kernel"},
        }[frozen["where"]], (ev["position"], frozen)


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_fault_retry_own_page_refused_forever(fx: Fixture):
    """pccfs's /frozen: ->page_mkwrite refuses the file's own page: no
    mismatch, a storm and a stuck page without progress."""
    (t,) = [t for t in fx.truth("fault_retry") if t.get("page") == "own"]
    f = one(findings(fx, "fault-retry"), pid=t["pid"])
    assert (f.severity, f.rule) == ("error", "stuck-no-progress"), f.summary
    assert f.evidence["refused_pages"] == 0 and f.evidence["stuck_pages"] >= 1
    assert f.evidence["vma_file"] == t["vma_file"]
    assert f.evidence["page_mkwrite_handler"] == "pccfs_frozen_page_mkwrite [mmfixture]"


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_fault_retry_warns_of_a_refused_page_nobody_writes(fx: Fixture):
    (t,) = fx.truth("refused_page")
    f = one(findings(fx, "fault-retry"), pid=t["pid"])
    assert (f.severity, f.rule) == ("warning", "refused-no-storm"), f.summary
    # Its refused pages: /data's (another file's page) and /trunc's (truncated).
    refused = {m["address"] for m in fx.truth("mapping_mismatch") if m["pid"] == t["pid"]
               and m.get("mismatch") in ("other-file", "truncated")}
    assert t["address"] in refused and len(refused) == 2
    assert f.evidence["address"] in refused and f.evidence["storm"] is False
    assert f.evidence["refused_pages"] == 2


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_fault_retry_candidates_are_storms_or_refused_pages(fx: Fixture):
    """A task is graded only for a storm or a refused page; the rest of the
    runnable tasks leave no record."""
    r = results(fx.path)["fault-retry"]
    assert r.records, "the loops and the busy writer are candidates"
    for rec in r.records:
        assert rec["storm"] or rec["refused_pages"], rec


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_fault_retry_leaves_the_busy_writer_alone(fx: Fixture):
    """The control's faults all complete: at most an info record, never a finding."""
    (t,) = fx.truth("busy_writer")
    r = results(fx.path)["fault-retry"]
    assert not [f for f in r.findings if f.evidence["pid"] == t["pid"]]
    for rec in r.records:
        if rec["pid"] == t["pid"]:
            assert rec["grade"] == "info" and rec["progress"], rec


@pytest.mark.parametrize("fx", NO_MODULE_DEBUG, ids=ids(NO_MODULE_DEBUG))
def test_module_symbols_are_named_without_their_debug_info(fx: Fixture):
    """Every handler in every finding is named, with its module, from
    kallsyms when the module's debug info is not loaded."""
    for check in ("mapping-mismatch", "fault-retry"):
        for f in findings(fx, check):
            for key in ("page_mkwrite_handler", "fault_handler", "vm_ops"):
                assert "0x" not in (f.evidence.get(key) or ""), f.evidence
    assert any("mmfixture" in n and "kallsyms" in n for n in results(fx.path)["fault-retry"].notes)


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_hwpoison_every_poisoned_page(fx: Fixture):
    """Reachable poisoned pages are errors, isolated ones info records; who
    mapped each is named from its page tables, present or hwpoison entries,
    as the guest's own pagemap saw them."""
    r = results(fx.path)["hwpoison-pagecache"]
    rows = {f.evidence["pfn"]: (f.rule, f.evidence) for f in r.findings}
    rows.update({rec["pfn"]: (rec["rule"], rec) for rec in r.records
                 if rec["kind"] == "poisoned_page"})
    truth = fx.truth("hwpoison")
    assert sorted(rows) == sorted(t["pfn"] for t in truth)
    for t in truth:
        rule, ev = rows[t["pfn"]]
        present = [m for m in t["mapped_by"] if m["pagemap"] == "present"]
        assert rule == ("in-page-cache" if t["in_page_cache"] else "mapped" if present
                        else "isolated"), (rule, t)
        assert ev["in_page_cache"] == t["in_page_cache"]
        if t["in_page_cache"]:
            for key in ("inode", "index", "file", "fs"):
                assert ev[f"page_{key}"] == t[key], key
            assert ev["dirty"] == t["dirty_when_poisoned"]
        if t["fs"] == "anon":
            assert ev["page_fs"] == "anon"
        want = sorted((m["pid"], m["address"], "present" if m["pagemap"] == "present"
                       else "hwpoison-entry") for m in t["mapped_by"])
        assert sorted((m["pid"], m["address"], m["entry"]) for m in ev["mapped_by"]) == want
        for m, got in zip(sorted(t["mapped_by"], key=lambda m: m["address"]),
                          sorted(ev["mapped_by"], key=lambda m: m["address"])):
            if m["pagemap"] == "swap":
                # pagemap shows the kernel's own swap type and offset (the pfn).
                assert (got["swap_type"], m["swap_offset"]) == (m["swap_type"], t["pfn"])
    (count,) = [rec for rec in r.records if rec["kind"] == "poison_count"]
    assert count["scanned"] == len(truth)
    # The module marked one page without memory_failure(): the kernel's own
    # count misses it, and the check says so.
    by_kernel = [t for t in truth if not any(m["pagemap"] == "present" for m in t["mapped_by"])]
    assert count["kernel_num_poisoned_pages"] == len(by_kernel)
    assert f"num_poisoned_pages is {len(by_kernel)}, the scan found {len(truth)} PG_hwpoison " \
        "pages" in r.notes


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_dax_entries_inventory_matches_the_kernel(fx: Fixture):
    """Every entry as the kernel reported it: index, value and order from
    the XArray, the pfn and zero page from the guest's pagemap and
    kpageflags, and which tasks wait from their sleep in get_unlocked_entry."""
    r = results(fx.path)["dax-entries"]
    assert not r.failed, r.traceback
    rows = {(row["mapping_inode"], row["index"]): row for row in r.records if "mapping_inode" in row}
    truth = fx.truth("dax_entry")
    assert truth
    for t in truth:
        assert {"value", "order", "pagemap_pfn", "waiter_pids"} <= set(t["kernel_reported"])
        row = rows[(t["inode"], t["index"])]
        assert row["mapping_file"] == t["file"]
        assert (row["value"], row["order"]) == (t["value"], t["order"])
        if t["pagemap_pfn"]:
            assert row["pfn"] == t["pagemap_pfn"], t
        assert row["zero"] == t["kpf_zero_page"], t
        assert row["pmd"] == (t["order"] > 0), t
        assert row["waiter_pids"] == t["waiter_pids"]
        # The fixture's own decoding of the value, for the bits no kernel
        # interface reports.
        for key in ("locked", "empty"):
            assert row[key] == t[key], (key, t)
    assert any(t["pmd"] for t in truth), "the fixture should hold a PMD entry"
    assert len(rows) == len(truth)


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_dax_locked_entry_and_its_waiter(fx: Fixture):
    waiters = {w["index"]: w for w in fx.truth("dax_waiter")}
    got = findings(fx, "dax-entries")
    for w in waiters.values():
        # The kernel's own view: the waiter sleeps in get_unlocked_entry.
        assert w["wchan"] == "get_unlocked_entry", w
    locked = [t for t in fx.truth("dax_entry") if t["locked"] and t["waiter_pids"]]
    assert [t["index"] for t in locked] == [i for i, w in waiters.items() if w["entry_locked"]]
    for t in locked:
        f = one(got, mapping_inode=t["inode"], index=t["index"])
        assert (f.severity, f.rule) == ("error", "locked-with-waiters")
        assert f.evidence["locked"] is True and f.evidence["pmd"] == t["pmd"]
        assert f.evidence["waiter_pids"] == t["waiter_pids"] == [waiters[t["index"]]["pid"]]
        assert f.evidence["mapping_file"] == t["file"]
    for w in (w for w in waiters.values() if not w["entry_locked"]):
        f = one(got, pid=w["pid"])
        assert (f.severity, f.rule, f.evidence["index"]) == ("warning", "lost-wakeup", w["index"])
    idle = [rec for rec in results(fx.path)["dax-entries"].records
            if rec.get("rule") == "locked-idle"]
    assert [(rec["mapping_inode"], rec["index"]) for rec in idle] == \
        [(t["inode"], t["index"]) for t in fx.truth("dax_entry") if t["locked"] and not t["waiter_pids"]]


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_page_table_corruption_is_reported_per_level(fx: Fixture):
    """Each entry the module corrupted is named with its level and address."""
    got = findings(fx, "pagetable-sanity")
    truth = fx.truth("pagetable_corrupt")
    assert {t["how"] for t in truth} >= {"pte-garbage", "pmd-beyond", "pte-slab"}
    for t in truth:
        matches = [f for f in got if f.evidence["pid"] == t["pid"]
                   and f.evidence["address"] == t["address"]]
        if t["how"] == "pte-free" and not matches:
            continue  # the freed page was handed out again (test_rules checks with the oracle)
        (f,) = matches
        assert f.evidence["level"] == t["level"], (t, f.summary)
        assert f.evidence["level_name"] == ("pte", "pmd")[t["level"]]
        if t["level"] > 0 or t["how"] in ("pte-garbage", "pte-swap-nodev", "pte-reserved"):
            assert f.evidence["entry"] == t["value"]
            assert "is invalid" in f.summary
        else:
            assert f.evidence["pfn"] == t["pfn"]


@pytest.mark.parametrize("fx", CLEAN, ids=ids(CLEAN))
def test_clean_dump_yields_no_findings(fx: Fixture):
    for name, r in results(fx.path).items():
        assert not r.failed, r.traceback
        assert r.findings == [], name
        assert r.unreadable == [], name


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_parallel_scan_equals_the_single_process_scan(fx: Fixture):
    """The check's own scan (every predicate, captured orders, refcount-0
    pages outside free blocks) gives the same PFNs in one process and in
    two."""
    from drgn_mmtools.analysis.pagesets import scan_predicates
    from drgn_mmtools.kernel.memmap import scan_pages, scan_pages_parallel
    from drgn_mmtools.target import TargetSpec, open_program

    spec = TargetSpec(core=fx.dump, vmlinux=fx.vmlinux, modules=fx.modules)
    prog = open_program(spec)
    preds, capture, outside = scan_predicates(prog)
    one = scan_pages(prog, preds, capture=capture, outside=outside)
    two = scan_pages_parallel(prog, spec, preds, 2, capture, outside)
    assert one.pages_scanned == two.pages_scanned > 0
    for name in preds:
        assert list(one.matches[name]) == list(two.matches[name]), name
    for name in capture:
        assert list(one.values[name]) == list(two.values[name]), name
    assert sorted(one.matches["hwpoison"]) == sorted(t["pfn"] for t in fx.truth("hwpoison"))


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_scan_started_before_the_walks_changes_no_result(fx: Fixture, monkeypatch):
    """With the scan started in two workers before the page-table walks (as
    ``check`` does on big kdump dumps), every check finds exactly what it
    finds with the scan run in process when first needed."""
    from drgn_mmtools.analysis import session as session_mod
    from drgn_mmtools.analysis.session import Options, Session
    from drgn_mmtools.checks.runner import run_checks
    from drgn_mmtools.target import TargetSpec, open_program

    monkeypatch.setattr(session_mod, "PARALLEL_MIN_PAGES", 0)
    spec = TargetSpec(core=fx.dump, vmlinux=fx.vmlinux, modules=fx.modules)
    ctx = Session(open_program(spec), Options(workers=2), spec)
    ctx.start_scan()
    assert ctx._pending is not None  # the workers did start
    early = run_checks(ctx)
    assert ctx._pending is None
    plain = results(fx.path)
    for r in early:
        want = plain[r.check]
        assert [(f.rule, f.summary, f.evidence) for f in r.findings] == \
            [(f.rule, f.summary, f.evidence) for f in want.findings], r.check
        assert r.unreadable == want.unreadable, r.check
        assert r.records == want.records, r.check


FIRST_OF_EACH_KERNEL = list({(f.data["kernel_release"], f.data["arch"]): f
                             for f in reversed(BUGS)}.values())


@pytest.mark.parametrize("fx", FIRST_OF_EACH_KERNEL, ids=ids(FIRST_OF_EACH_KERNEL))
def test_refcount0_pages_are_those_outside_free_blocks(fx: Fixture):
    """The scan keeps only the zero-refcount pages that are not tails and not
    in a free block: the same PFNs stock drgn finds page by page against the
    zones' free lists."""
    import drgn
    from drgn.helpers.linux.mm import PageTail, for_each_page, page_to_pfn

    from drgn_mmtools.analysis.session import Session
    from drgn_mmtools.target import TargetSpec, open_program

    from .manifests import open_dump

    sets = Session(open_program(TargetSpec(core=fx.dump, vmlinux=fx.vmlinux,
                                           modules=fx.modules))).page_sets
    stock = open_dump(fx.path)
    free = oracle.free_blocks(stock)
    in_free = bytearray(max(e for _, e in free) + 1)
    for s, e in free:
        in_free[s:e] = b"\1" * (e - s)
    want = []
    for page in for_each_page(stock):
        try:
            if page._refcount.counter.value_() or PageTail(page):
                continue
        except drgn.FaultError:
            continue
        pfn = page_to_pfn(page).value_()
        if pfn >= len(in_free) or not in_free[pfn]:
            want.append(pfn)
    assert list(sets.refcount0) == want
    assert len(want) < sum(e - s for s, e in free)  # the free pages are not in it


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_free_blocks_add_up_to_the_kernels_free_page_count(fx: Fixture):
    """The buddy blocks found by the mem_map scan are exactly those on the
    zones' free lists, walked with stock drgn, and add up to the kernel's
    NR_FREE_PAGES (vm_zone_stat, which lags by the per-CPU deltas not yet
    folded in: at most a stat threshold, 125, per CPU and zone)."""
    from drgn_mmtools.analysis.session import Session
    from drgn_mmtools.target import TargetSpec, open_program

    from .manifests import open_dump

    prog = open_program(TargetSpec(core=fx.dump, vmlinux=fx.vmlinux, modules=fx.modules))
    sets = Session(prog).page_sets
    stock = open_dump(fx.path)
    nr_free = stock.type("enum zone_stat_item").enumerators[0]
    assert nr_free.name == "NR_FREE_PAGES"
    assert sets.free == oracle.free_blocks(stock)
    counter = stock["vm_zone_stat"][nr_free.value].counter.value_()
    assert abs(sets.free_pages - counter) <= 125 * 4 * 2, (sets.free_pages, counter)
    assert sorted(sets.hwpoison) == sorted(t["pfn"] for t in fx.truth("hwpoison"))


X86_ON_CPU_BUGS = [f for f in BUGS if f.data["arch"] == "x86_64"
                   and f.data["frozen"]["fault_retry"]["on_cpu"]]


@pytest.mark.parametrize("fx", X86_ON_CPU_BUGS, ids=ids(X86_ON_CPU_BUGS))
def test_fault_address_from_qemu_cpu_notes(fx: Fixture):
    """QEMU's x86_64 dumps carry each CPU's CR2: the looping task's CPU last
    faulted at the recorded address, and the finding takes it from there
    when the stack names none."""
    from drgn_mmtools.kernel.cpu_notes import qemu_cpu_states

    (t,) = [t for t in fx.truth("fault_retry") if t["comm"] == "pcc_retry"]
    assert t["address"] in [cpu.cr2 for cpu in qemu_cpu_states(fx.dump)]
    f = one(findings(fx, "fault-retry"), pid=t["pid"])
    assert f.evidence["address_from"] in ("stack", "cr2")


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_page_cache_slots_skip_value_entries(fx: Fixture):
    """An fsdax file's i_pages holds value entries only: the slot rule reads
    none of them as a page, and finds nothing."""
    from drgn.helpers.linux.fs import path_lookup

    from drgn_mmtools.checks.mapping_mismatch import check_slots
    from drgn_mmtools.analysis.session import Session
    from drgn_mmtools.report.findings import CheckResult
    from drgn_mmtools.target import TargetSpec, open_program

    prog = open_program(TargetSpec(core=fx.dump, vmlinux=fx.vmlinux, modules=fx.modules))
    ctx, result = Session(prog), CheckResult("mapping-mismatch")
    for path in sorted({t["file"] for t in fx.truth("dax_entry")}):
        mapping = path_lookup(prog, path).dentry.d_inode.i_mapping.value_()
        check_slots(ctx, mapping, result)
    assert (result.findings, result.unreadable) == ([], [])
