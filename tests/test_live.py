"""Live guests: boot the shipped kernel and initramfs, attach drgn over QMP.

One guest per arch runs the "bugs" scenarios; stock drgn (tests/oracle.py)
must see each truth record the guest printed, the fault-retry task's fault
counter must climb while we watch, and drgn-mmtools attached over a second
QMP socket must report what the guest recorded.
"""

from __future__ import annotations

import json
import shutil
import time

import drgn
import pytest
from drgn.helpers.linux.pid import find_task

from fixtures import lab
from fixtures.arches import ARCHES

from . import oracle
from .livecheck import assert_guest_findings
from .guests import attach
from .tool import cli, cli_json

pytestmark = pytest.mark.live


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def guest_gdb_port(workdir) -> str:
    """The gdbstub port from the guest's recorded QEMU command line."""
    import re
    return re.search(r"-gdb tcp:127\.0\.0\.1:(\d+)", (workdir / "qemu.cmdline").read_text()).group(1)


@pytest.fixture(scope="module", params=sorted(ARCHES))
def live(request, tmp_path_factory):
    arch = ARCHES[request.param]
    if shutil.which(arch.qemu) is None:
        pytest.fail(f"{arch.qemu} is not installed")
    workdir = tmp_path_factory.mktemp(f"live-{arch.name}")
    guest = lab.boot_shipped(arch, "bugs", workdir, gdb_port=free_port())
    guest.gdb_port = int(guest_gdb_port(workdir))
    try:
        guest.wait_ready(timeout=900)
        yield guest, attach(guest)
    finally:
        guest.stop()


def test_live_guest_is_a_linux_kernel(live):
    guest, prog = live
    assert prog.flags & drgn.ProgramFlags.IS_LIVE
    assert prog.platform.arch.name.lower() == guest.arch.name


@pytest.mark.parametrize("kind", ["hwpoison", "mapping_mismatch", "dax_entry", "dax_waiter"])
def test_live_truth_is_visible(live, kind):
    guest, prog = live
    items = [t for t in guest.truth if t["kind"] == kind]
    assert items, f"the guest recorded no {kind}"
    for t in items:
        oracle.CHECKS[kind](prog, t)


def test_live_fault_retry_counter_climbs(live):
    guest, prog = live
    (t,) = [t for t in guest.truth if t["kind"] == "fault_retry" and t["comm"] == "pcc_retry"]
    task = find_task(prog, t["pid"])
    assert oracle.task_state(task) == 0
    before = after = task.min_flt.value_()
    deadline = time.monotonic() + 20  # a loaded TCG host can starve the vCPU a while
    while after <= before and time.monotonic() < deadline:
        time.sleep(1)
        after = task.min_flt.value_()
    assert after > before, f"min_flt did not climb in 20 s ({before} -> {after})"


def test_tool_on_the_live_guest_matches_its_truth(live):
    guest, _ = live
    d = lab.arch_dir(guest.arch)
    code, doc = cli_json("--qemu", str(guest.tool_socket), "--vmlinux", str(d / "vmlinux.debug"),
                         "--module", str(d / "mmfixture.ko"), "--interval", "1")
    assert code == 1
    assert doc["target"]["live"] is True
    assert_guest_findings({c["check"]: c for c in doc["checks"]}, guest.truth)


@pytest.mark.parametrize("fmt", ["elf", "kdump-zlib"])
def test_tool_on_qemu_dumps_of_the_guest(live, fmt, tmp_path):
    """QEMU's own dump formats, unfiltered, as users take them with virsh dump."""
    guest, _ = live
    dump = tmp_path / f"vmcore.{fmt}"
    guest.dump(dump, fmt)
    d = lab.arch_dir(guest.arch)
    args = (str(dump), "--vmlinux", str(d / "vmlinux.debug"), "--module", str(d / "mmfixture.ko"))
    if fmt == "kdump-zlib" and guest.arch.name == "aarch64":
        # QEMU 7.2 writes a 64 KiB block size for a 4 KiB-page guest; drgn cannot
        # translate it, and the tool must say so in one line.
        proc = cli("check", *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "block size is 65536" in proc.stderr and "ELF dump" in proc.stderr
        return
    code, doc = cli_json(*args)
    assert code == 1
    assert_guest_findings({c["check"]: c for c in doc["checks"]}, guest.truth, live=False)


def test_truncated_elf_dump_gives_a_partial_report(live, tmp_path):
    """An ELF dump cut short keeps the kernel image but loses the top of RAM,
    where vmemmap lives: the report must say what it could not read."""
    guest, _ = live
    full = tmp_path / "vmcore.elf"
    guest.dump(full, "elf")
    cut = tmp_path / "cut.elf"
    with full.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(full.stat().st_size * 3 // 10))
    full.unlink()
    d = lab.arch_dir(guest.arch)
    proc = cli("check", str(cut), "--vmlinux", str(d / "vmlinux.debug"),
               "--module", str(d / "mmfixture.ko"), "--format", "json")
    assert "Traceback" not in proc.stderr
    assert all(line.startswith("drgn-mmtools: ") for line in proc.stderr.splitlines())
    if proc.returncode == 2 and not proc.stdout:
        return  # the dump did not even hold init_uts_ns: one line, exit 2
    doc = json.loads(proc.stdout)
    checks = {c["check"]: c for c in doc["checks"]}
    assert proc.returncode == doc["exit_code"]
    partial = [c for c in checks.values() if c["unreadable"] or c["status"] == "failed"]
    assert partial, "a dump missing most of RAM cannot give a complete report"
    for c in checks.values():
        if c["status"] == "failed":
            assert c["error"] and "\n" not in c["error"]
    assert not any("layout may differ" in u for u in checks["dax-entries"]["unreadable"])
