"""The shipped fixture dumps are what their manifests claim.

Stock drgn helpers (tests/oracle.py) are the oracle: nothing here uses
drgn_mmtools.  Every expected value comes from the scenario's own record,
made inside the guest (manifest.json "truth").
"""

from __future__ import annotations

import pytest
from drgn.helpers.linux.pid import find_task

from .manifests import Fixture, all_fixtures, open_dump
from . import oracle

FIXTURES = all_fixtures()
BUGS = [f for f in FIXTURES if not f.data["clean"]]
CLEAN = [f for f in FIXTURES if f.data["clean"]]


def ids(fixtures):
    return [f.id for f in fixtures]


def test_both_arches_and_both_scenario_sets_are_shipped():
    shipped = {(f.data["arch"], f.data["scenario"]) for f in FIXTURES}
    assert shipped == {(a, s) for a in ("x86_64", "aarch64") for s in ("bugs", "clean")}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_bugs_are_captured_at_several_random_moments(arch):
    """A dump freezes a looping task wherever it happens to be: the bugs set
    is dumped at least three times per arch, at recorded random delays, and
    at least one dump (of either arch) caught the loop outside its handler."""
    bugs = [f for f in BUGS if f.data["arch"] == arch]
    assert len(bugs) >= 3
    delays = [f.data["capture_delay_seconds"] for f in bugs]
    assert len(set(delays)) == len(delays) and all(d > 0 for d in delays)
    assert any(not f.modules for f in bugs), "one capture must ship without module debug info"
    where = [f.data["frozen"]["fault_retry"]["where"] for f in BUGS]
    assert any(w != "handler" for w in where), where


def _busy_writer_marks(fx: Fixture):
    """5.10's busy writer does not re-fault: there ext4 on brd left its PTEs
    writable across msync (34 faults in 127 passes), so it is a busy-loop
    control there but not a re-fault one."""
    if fx.data["kernel_release"].startswith("5.10."):
        return pytest.param(fx, id=fx.id, marks=pytest.mark.xfail(
            strict=True, reason="5.10: msync does not write-protect the ext4-on-brd PTEs"))
    return pytest.param(fx, id=fx.id)


@pytest.mark.parametrize("fx", [_busy_writer_marks(f) for f in FIXTURES])
def test_busy_writer_control_refaults(fx: Fixture):
    """The healthy control stores into a shared ext4 mapping and msyncs: by
    the time the guest was ready it had re-faulted its pages many times."""
    (t,) = fx.truth("busy_writer")
    assert t["passes"] >= 2
    assert t["min_flt"] >= t["passes"] * t["pages"]
    prog = open_dump(fx.path)
    task = find_task(prog, t["pid"])
    assert task.comm.string_().decode() == t["comm"]
    assert task.min_flt.value_() >= t["min_flt"]


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_dump_opens_with_its_vmlinux(fx: Fixture):
    prog = open_dump(fx.path)
    assert prog.platform.arch.name.lower() == fx.data["arch"]
    release = prog["init_uts_ns"].name.release.string_().decode()
    assert release == fx.data["kernel_release"]
    assert fx.dump.read_bytes()[:8] == b"KDUMP   ", "not a kdump-compressed dump"
    if fx.modules:
        # The scenario module's debug info is loaded too.
        assert prog.symbol("pcc_retry_page_mkwrite").name == "pcc_retry_page_mkwrite"
    else:
        # Shipped without it: the module's symbols are only in its kallsyms.
        (mod,) = [m for m in prog.modules() if m.name == "mmfixture"]
        assert mod.wants_debug_file()
        with pytest.raises(LookupError):
            prog.symbol("pcc_retry_page_mkwrite")


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_bug_fixture_records_every_kind(fx: Fixture):
    kinds = {t["kind"] for t in fx.data["truth"]}
    assert {"hwpoison", "mapping_mismatch", "fault_retry", "dax_entry", "dax_waiter"} <= kinds
    poisoned = {t["fs"]: t for t in fx.truth("hwpoison")}
    assert set(poisoned) == {"tmpfs", "ext4", "anon"}
    # Since Linux 5.16 shmem keeps a poisoned page (before, it truncated it);
    # ext4 truncates a clean one.
    release = tuple(int(x) for x in fx.data["kernel_release"].split(".")[:2])
    assert poisoned["tmpfs"]["in_page_cache"] is (release >= (5, 16))
    assert poisoned["ext4"]["in_page_cache"] is False
    assert any(t["locked"] and t["waiter_pids"] for t in fx.truth("dax_entry"))


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
@pytest.mark.parametrize("kind", sorted(oracle.CHECKS))
def test_truth_is_visible_in_the_dump(fx: Fixture, kind: str):
    prog = open_dump(fx.path)
    items = fx.truth(kind)
    assert items, f"no {kind} truth recorded"
    for t in items:
        oracle.CHECKS[kind](prog, t)


@pytest.mark.parametrize("fx", BUGS, ids=ids(BUGS))
def test_poisoned_pages_in_the_dump_are_the_recorded_ones(fx: Fixture):
    prog = open_dump(fx.path)
    assert sorted(oracle.poisoned_pfns(prog)) == sorted(t["pfn"] for t in fx.truth("hwpoison"))


@pytest.mark.parametrize("fx", CLEAN, ids=ids(CLEAN))
def test_clean_dump_holds_no_bug(fx: Fixture):
    prog = open_dump(fx.path)
    assert not any(t["kind"] in ("hwpoison", "mapping_mismatch", "fault_retry", "dax_waiter")
                   for t in fx.data["truth"])
    assert oracle.poisoned_pfns(prog) == []
    assert oracle.tasks_in_fault_path(prog) == []
    assert oracle.dax_wait_table_tasks(prog) == set()
    dax_files = {t["file"] for t in fx.truth("dax_entry")}
    assert dax_files, "the clean guest should still hold DAX entries"
    assert oracle.locked_dax_entries(prog, dax_files) == []
    for t in fx.truth("dax_entry"):
        oracle.check_dax_entry(prog, t)


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_dump_was_taken_from_the_shipped_boot_files(fx: Fixture):
    """Live tests boot the shipped kernel and initramfs: they must be the ones
    the dump came from."""
    import hashlib

    boot = fx.data["boot"]
    for key in ("kernel", "initramfs"):
        digest = hashlib.sha256(fx.file(boot[key]).read_bytes()).hexdigest()
        assert digest == boot[f"{key}_sha256"], key


KDUMPS = [f for f in FIXTURES if f.data["capture"] == "kdump"]


def test_every_dump_says_how_it_was_captured():
    """QMP's dump-guest-memory for most; at least one saved by kdump itself."""
    assert {f.data["capture"] for f in FIXTURES} == {"qmp", "kdump"}


@pytest.mark.parametrize("fx", KDUMPS, ids=ids(KDUMPS))
def test_kdump_capture_is_a_sysrq_panic_saved_in_kdump_tools_layout(fx: Fixture):
    """The dump kdump saved: the crashed thread is the one that wrote 'c' to
    /proc/sysrq-trigger, the kernel recorded the crash time in its
    VMCOREINFO (a QMP dump has none), the log the capture kernel saved beside
    it holds the sysrq panic, and the files have kdump-tools' names."""
    import re

    prog = open_dump(fx.path)
    names = [f.name for f in prog.stack_trace(prog.crashed_thread().object)]
    assert "sysrq_handle_crash" in names, names
    vmcoreinfo = prog["VMCOREINFO"].string_().decode()  # the dump's own note
    assert re.search(r"^CRASHTIME=\d+$", vmcoreinfo, re.M)
    stamp = fx.dump.name.removeprefix("dump.")
    assert re.fullmatch(r"\d{12}", stamp) and fx.file(fx.data["dmesg"]).name == f"dmesg.{stamp}"
    assert "sysrq triggered crash" in fx.file(fx.data["dmesg"]).read_text(errors="replace")


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_per_cpu_variables_resolve_in_the_trimmed_debug_info(fx: Fixture):
    """drgn takes the shipped vmlinux.debug for a vmlinux (it looks for a
    PROGBITS .init.text), so per-CPU variables are not relocated by the KASLR
    offset: each CPU's runqueue names a task that runs on that CPU."""
    from drgn.helpers.linux.cpumask import for_each_online_cpu
    from drgn.helpers.linux.sched import cpu_curr, task_cpu

    prog = open_dump(fx.path)
    cpus = list(for_each_online_cpu(prog))
    assert cpus
    for cpu in cpus:
        assert task_cpu(cpu_curr(prog, cpu)) == cpu
