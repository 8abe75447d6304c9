"""The shell in a real terminal (tmux) and the gdb front end, on a live
guest booted from the shipped kernel with QEMU's gdbstub open.  Expected
values come from what the guest recorded."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from fixtures import lab

from .livecheck import assert_guest_findings
from .test_live import live  # noqa: F401 - the module-scoped live guest fixture

pytestmark = pytest.mark.live

def _gdb() -> str:
    for name in ("gdb-multiarch", "gdb"):
        if shutil.which(name):
            return name
    pytest.fail("gdb is not installed (apt-get install gdb-multiarch)")


def _gdb_init() -> str:
    return subprocess.run([sys.executable, "-m", "drgn_mmtools.gdb"], capture_output=True,
                          text=True, check=True).stdout.strip()


def _json_docs(text: str) -> list[dict]:
    decoder, docs, pos = json.JSONDecoder(), [], 0
    while True:
        start = text.find("{\n", pos)
        if start < 0:
            return docs
        doc, pos = decoder.raw_decode(text, start)
        docs.append(doc)


def run_gdb(guest, *target: str, commands: list[str], raw: tuple[str, ...] = ()
            ) -> subprocess.CompletedProcess:
    d = lab.arch_dir(guest.arch)
    args = [_gdb(), "-batch", "-nx", str(d / "vmlinux.debug"), *target, "-ex", _gdb_init(),
            "-ex", f"mm symbols {d / 'mmfixture.ko'}"]
    for c in commands:
        args += ["-ex", f"mm {c}"]
    for c in raw:
        args += ["-ex", c]
    return subprocess.run(args, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "COLUMNS": "200"})


def test_gdb_on_the_gdbstub_finds_the_scenario(live):  # noqa: F811
    guest, _ = live
    proc = run_gdb(guest, "-ex", f"target remote 127.0.0.1:{guest.gdb_port}",
                   commands=["check --format json", "findings --severity warning"],
                   raw=("complete mm check hwpoison-p", "complete mm findings --sev"))
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    docs = _json_docs(proc.stdout)
    assert len(docs) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    (doc,) = docs
    assert doc["exit_code"] == 1
    assert doc["target"]["description"] == "gdb remote target (QEMU gdbstub)"
    _, prog = live
    assert doc["target"]["kernel_release"] == \
        prog["init_uts_ns"].name.release.string_().decode()
    # gdb stops the guest: the target is a frozen snapshot, judged as a dump is.
    assert_guest_findings({c["check"]: c for c in doc["checks"]}, guest.truth, live=False)
    assert "refused-no-storm" in proc.stdout and "lost-wakeup" in proc.stdout
    # gdb's completion asks the shell's completer
    assert "mm check hwpoison-pagecache" in proc.stdout.splitlines()
    assert "mm findings --severity" in proc.stdout.splitlines()
    # gdb's own memory view is left virtual: its prompt still reads the kernel.
    check = subprocess.run(
        [_gdb(), "-batch", "-nx", str(lab.arch_dir(guest.arch) / "vmlinux.debug"),
         "-ex", f"target remote 127.0.0.1:{guest.gdb_port}", "-ex",
         "maint packet qqemu.PhyMemMode"], capture_output=True, text=True, timeout=120)
    assert 'received: "0"' in check.stdout, check.stdout


def test_gdb_on_an_elf_core_finds_the_scenario(live, tmp_path):  # noqa: F811
    guest, _ = live
    core = tmp_path / "vmcore.elf"
    guest.dump(core, "elf")
    proc = run_gdb(guest, "-ex", f"core-file {core}",
                   commands=["check --format json", f"page {_poisoned(guest):#x} --format json"])
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    check, page = _json_docs(proc.stdout)
    assert check["target"]["description"].startswith(f"core file {core}")
    assert_guest_findings({c["check"]: c for c in check["checks"]}, guest.truth, live=False)
    (rec,) = page["records"]
    assert "PG_hwpoison" in rec["flags"] and rec["pfn"] == _poisoned(guest)


@pytest.mark.parametrize("live", ["aarch64"], indirect=True)
def test_arm64_vmcoreinfo_from_physical_memory_alone(live, tmp_path):  # noqa: F811
    """The gdb worker's fallback when no CPU can read the kernel virtually
    (EL0 with KPTI): found from the guest's physical memory (here an ELF dump
    of it) and equal to the kernel's own VMCOREINFO note."""
    from drgn_mmtools.dumpfile import elf_core_layout
    from drgn_mmtools.frontends.gdb_worker import read_vmcoreinfo_arm64_physical

    guest, _ = live
    core = tmp_path / "vmcore.elf"
    guest.dump(core, "elf")
    loads, note = elf_core_layout(core)
    f = core.open("rb")

    def read(address: int, size: int) -> bytes | None:
        seg = next((s for s in loads if s.paddr <= address and address + size <= s.paddr +
                    s.filesz), None)
        if seg is None:
            return None
        f.seek(seg.offset + address - seg.paddr)
        return f.read(size)

    data = read_vmcoreinfo_arm64_physical(read, lab.arch_dir(guest.arch) / "vmlinux.debug")
    lines = set(data.decode().splitlines())
    for key in ("OSRELEASE=", "KERNELOFFSET=", "NUMBER(kimage_voffset)=", "SYMBOL(swapper_pg_dir)="):
        want = [line for line in note.decode().splitlines() if line.startswith(key)]
        assert want and want[0] in lines, key


def _poisoned(guest) -> int:
    (t,) = [t for t in guest.truth if t["kind"] == "hwpoison" and t["in_page_cache"]]
    return t["pfn"]


class Tmux:
    """A tmux session running one command, read through capture-pane."""

    def __init__(self, name: str, command: str, env: dict[str, str]) -> None:
        self.name = name
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "200", "-y", "50",
                        f"env {exports} {command}; echo EXIT=$?; sleep 600"], check=True)

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name, "-S", "-400"],
                              capture_output=True, text=True, check=True).stdout

    def wait(self, text: str, timeout: float, after: int = 0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            screen = self.screen()
            if screen.count(text) > after:
                return screen
            time.sleep(0.5)
        raise AssertionError(f"{text!r} did not appear in {timeout} s:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False)


def test_shell_in_a_real_terminal(live, tmp_path):  # noqa: F811
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed")
    guest, _ = live
    d = lab.arch_dir(guest.arch)
    command = (f"{shlex.quote(sys.executable)} -m drgn_mmtools shell --qemu "
               f"{guest.tool_socket} --vmlinux {d / 'vmlinux.debug'} --module "
               f"{d / 'mmfixture.ko'}")
    tmux = Tmux(f"mmtools-{guest.arch.name}-{os.getpid()}", command,
                {"XDG_STATE_HOME": str(tmp_path), "TERM": "xterm-256color",
                 "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        prompt = f"mm {guest.arch.name} "
        screen = tmux.wait(prompt, 600)
        assert "findings" in screen and "refused-loop" in screen  # the first screen
        # Tab lists PIDs with each task's comm (as stock drgn reads it) beside it,
        # and completes a unique check name in place.
        from drgn.helpers.linux.pid import find_task
        _, prog = live
        init_comm = find_task(prog, 1).comm.string_().decode()
        tmux.keys("vma ")
        tmux.keys("Tab")
        screen = tmux.wait(init_comm, 30, after=screen.count(init_comm))
        tmux.keys("C-u")
        tmux.keys("check hwpoison-p")
        tmux.keys("Tab")
        tmux.wait("check hwpoison-pagecache", 30)
        tmux.keys("C-u")
        # Ctrl-C abandons a long live sampling and the session goes on.
        tmux.keys("check fault-retry --interval 5 --samples 100", "Enter")
        time.sleep(4)
        tmux.keys("C-c")
        screen = tmux.wait("interrupted", 60)
        pfn = _poisoned(guest)
        tmux.keys(f"page {pfn:#x}", "Enter")
        screen = tmux.wait("PG_hwpoison", 120)
        assert f"{pfn:#x}" in screen
        tmux.keys("C-d")
        screen = tmux.wait("EXIT=", 60)
        assert "EXIT=1" in screen  # findings were listed
        history = (tmp_path / "drgn-mmtools" / "history").read_text()
        assert f"page {pfn:#x}" in history and "check fault-retry" in history
    finally:
        tmux.close()
