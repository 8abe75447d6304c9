"""Every truth item of every fixture is found by the right check, with the
recorded pfn, inode, index, pid and address; clean dumps yield nothing.

Expected values come from manifest.json, recorded inside the guest.
"""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_mapping_mismatch_names_both_files(fx: Fixture):
    (t,) = fx.truth("mapping_mismatch")
    f = one(findings(fx, "mapping-mismatch"), pid=t["pid"], address=t["address"])
    assert f.severity == "error"
    assert f.evidence["pfn"] == t["pfn"]
    assert f.evidence["kind"] == "other-file"
    assert (f.evidence["vma_file"], f.evidence["vma_inode"]) == (t["vma_file"], t["vma_inode"])
    assert (f.evidence["page_file"], f.evidence["page_inode"]) == (t["page_file"], t["page_inode"])
    assert f.evidence["index"] == t["index"]
    assert f.evidence["page_fs"] == t["page_fs"]
    assert f.evidence["handler_module"] == "mmfixture"
    assert f.evidence["page_mkwrite_handler"] == "pcc_retry_page_mkwrite [mmfixture]"
    assert f.evidence["symbol_source"] == ("debuginfo" if fx.modules else "kallsyms")
    assert f.evidence["in_page_cache"] is True


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_fault_retry_convicts_the_loop_wherever_the_dump_caught_it(fx: Fixture):
    """Error on every capture, from the counters and the refused page, with
    the handler named from debug info or, without it, from kallsyms."""
    (t,) = fx.truth("fault_retry")
    (mm,) = fx.truth("mapping_mismatch")
    f = one(findings(fx, "fault-retry"), pid=t["pid"])
    assert f.severity == "error", f.summary
    ev = f.evidence
    assert ev["comm"] == t["comm"]
    assert ev["address"] == t["address"]
    assert ev["storm"] is True and ev["refused_pages"] >= 1
    assert ev["progress"] == []
    assert ev["counters"]["nvcsw"] == 0
    assert ev["mismatch"] == "other-file"
    assert (ev["page_file"], ev["pfn"]) == (mm["page_file"], mm["pfn"])
    assert ev["page_mkwrite_handler"] == "pcc_retry_page_mkwrite [mmfixture]"
    assert ev["vm_ops"] == "pcc_retry_vm_ops [mmfixture]"
    assert ev["symbol_source"] == ("debuginfo" if fx.modules else "kallsyms")
    # The tool's reading of the position agrees with stock drgn's at capture
    # time on the coarse classes both draw.
    frozen = fx.data["frozen"]["fault_retry"]
    assert ev["position"]["where"] in {
        "handler": {"handler"}, "fault-path": {"fault-path"}, "user": {"user"},
        "kernel": {"exception-entry", "exception-exit", "interrupt", "kernel"},
    }[frozen["where"]], (ev["position"], frozen)


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
            assert "0x" not in f.evidence["page_mkwrite_handler"], f.evidence
            assert "0x" not in f.evidence["vm_ops"], f.evidence
    assert any("mmfixture" in n and "kallsyms" in n for n in results(fx.path)["fault-retry"].notes)


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_hwpoison_every_poisoned_page(fx: Fixture):
    got = findings(fx, "hwpoison-pagecache")
    truth = fx.truth("hwpoison")
    assert sorted(f.evidence["pfn"] for f in got) == sorted(t["pfn"] for t in truth)
    for t in truth:
        f = one(got, pfn=t["pfn"])
        assert f.evidence["in_page_cache"] == t["in_page_cache"]
        if t["in_page_cache"]:
            assert f.severity == "error"
            for key in ("inode", "index", "file", "fs"):
                assert f.evidence[key] == t[key], key
            assert f.evidence["dirty"] == t["dirty_when_poisoned"]
        if t["fs"] == "anon":
            assert f.evidence["fs"] == "anon"
    (count,) = [r for r in results(fx.path)["hwpoison-pagecache"].records
                if r["kind"] == "poison_count"]
    assert count["scanned"] == len(truth)
    assert count["kernel_num_poisoned_pages"] == len(truth)


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_dax_entries_inventory_matches_the_kernel(fx: Fixture):
    r = results(fx.path)["dax-entries"]
    assert not r.failed, r.traceback
    rows = {(row["inode"], row["index"]): row for row in r.records}
    truth = fx.truth("dax_entry")
    assert truth
    for t in truth:
        row = rows[(t["inode"], t["index"])]
        for key in ("file", "value", "pfn", "locked", "pmd", "zero", "empty", "order"):
            assert row[key] == t[key], (key, t)
        assert row["waiter_pids"] == t["waiter_pids"]
    assert any(t["pmd"] for t in truth), "the fixture should hold a PMD entry"
    assert len(rows) == len(truth)


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_dax_locked_entry_and_its_waiter(fx: Fixture):
    (locked,) = [t for t in fx.truth("dax_entry") if t["locked"]]
    (waiter,) = fx.truth("dax_waiter")
    f = one(findings(fx, "dax-entries"), inode=locked["inode"], index=locked["index"])
    assert f.severity == "error"
    assert f.evidence["locked"] is True and f.evidence["pmd"] == locked["pmd"]
    assert f.evidence["waiter_pids"] == locked["waiter_pids"] == [waiter["pid"]]
    assert f.evidence["file"] == locked["file"]


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_bug_dumps_have_no_unexplained_findings(fx: Fixture):
    expected = {
        "mapping-mismatch": len(fx.truth("mapping_mismatch")),
        "fault-retry": len(fx.truth("fault_retry")),
        "hwpoison-pagecache": len(fx.truth("hwpoison")),
        "dax-entries": sum(1 for t in fx.truth("dax_entry") if t["locked"]),
        "pagetable-sanity": 0,
    }
    got = {name: len(r.findings) for name, r in results(fx.path).items()}
    assert got == expected


@pytest.mark.parametrize("fx", CLEAN, ids=ids(CLEAN))
def test_clean_dump_yields_no_findings(fx: Fixture):
    for name, r in results(fx.path).items():
        assert not r.failed, r.traceback
        assert r.findings == [], name
        assert r.unreadable == [], name


def test_parallel_scan_equals_the_single_process_scan():
    from drgn_mmtools.helpers.memmap import flag_test, scan_pages, scan_pages_parallel
    from drgn_mmtools.helpers.pageflags import pageflag_bit, page_type_tests
    from drgn_mmtools.target import TargetSpec, open_program

    fx = BUGS[0]
    spec = TargetSpec(core=fx.dump, vmlinux=fx.vmlinux, modules=fx.modules)
    prog = open_program(spec)
    preds = {"hwpoison": [flag_test(prog, pageflag_bit(prog, "PG_hwpoison"))],
             "buddy": page_type_tests(prog, "buddy")}
    one = scan_pages(prog, preds)
    two = scan_pages_parallel(prog, spec, preds, 2)
    assert one.pages_scanned == two.pages_scanned > 0
    for name in preds:
        assert list(one.matches[name]) == list(two.matches[name])
    assert sorted(one.matches["hwpoison"]) == sorted(t["pfn"] for t in fx.truth("hwpoison"))


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_free_blocks_add_up_to_the_kernels_free_page_count(fx: Fixture):
    """The buddy blocks found by the mem_map scan are exactly the kernel's
    NR_FREE_PAGES (vm_zone_stat), read with stock drgn."""
    from drgn_mmtools.context import Context
    from drgn_mmtools.target import TargetSpec, open_program

    from .manifests import open_dump

    prog = open_program(TargetSpec(core=fx.dump, vmlinux=fx.vmlinux, modules=fx.modules))
    sets = Context(prog).page_sets
    stock = open_dump(fx.path)
    nr_free = stock.type("enum zone_stat_item").enumerators[0]
    assert nr_free.name == "NR_FREE_PAGES"
    assert sets.free_pages == stock["vm_zone_stat"][nr_free.value].counter.value_()
    assert sorted(sets.hwpoison) == sorted(t["pfn"] for t in fx.truth("hwpoison"))


X86_ON_CPU_BUGS = [f for f in BUGS if f.data["arch"] == "x86_64"
                   and f.data["frozen"]["fault_retry"]["on_cpu"]]


@pytest.mark.parametrize("fx", X86_ON_CPU_BUGS, ids=ids(X86_ON_CPU_BUGS))
def test_fault_address_from_qemu_cpu_notes(fx: Fixture):
    """QEMU's x86_64 dumps carry each CPU's CR2: the looping task's CPU last
    faulted at the recorded address, and the finding takes it from there
    when the stack names none."""
    from drgn_mmtools.cpu_notes import qemu_cpu_states

    (t,) = fx.truth("fault_retry")
    assert t["address"] in [cpu.cr2 for cpu in qemu_cpu_states(fx.dump)]
    f = one(findings(fx, "fault-retry"), pid=t["pid"])
    assert f.evidence["address_from"] in ("stack", "cr2")
