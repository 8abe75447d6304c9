"""gdb front end: the shell's commands as ``mm ...`` inside gdb.

``python import drgn_mmtools.gdb`` (``python3 -m drgn_mmtools.gdb`` prints
the whole line for ``.gdbinit``) defines one gdb command, ``mm``, which
runs any line of the shell: ``mm check``, ``mm page 0x1fd3d``, ``mm
findings | page``, with completion.

gdb's process does not host drgn: gdb links the system's libelf, which
would stand in for the newer one drgn's libdw needs.  So the first ``mm``
command starts a worker (:mod:`.gdb_worker`, in the Python drgn-mmtools is
installed in) and serves it memory through gdb
(:mod:`.memory_link`):

- virtual reads, for finding the KASLR offset and ``vmcoreinfo_data``;
- physical reads, over QEMU's gdbstub in its physical memory mode
  (``maint packet Qqemu.PhyMemMode:1``, switched back before gdb's prompt
  returns), or from the PT_LOAD segments of the ELF core file gdb has open.

The worker builds a drgn Program whose memory is only that physical memory
and lets drgn translate addresses.  The target is frozen while a command
runs, so it is judged as a snapshot, as a dump is; the worker is restarted
after the target runs again.  Works on x86_64 and aarch64 targets.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

from ..dumpfile import elf_core_layout
from .memory_link import recv, send

__all__ = ("install", "worker_python")


class GdbTargetError(Exception):
    """The gdb target cannot be used; the message is one line."""


def worker_python() -> str:
    """The Python that has drgn-mmtools and drgn: ``$DRGN_MMTOOLS_PYTHON``,
    else the one of the virtual environment whose site-packages gdb was
    given, else ``python3``."""
    env = os.environ.get("DRGN_MMTOOLS_PYTHON")
    if env:
        return env
    for p in sys.path:
        m = re.match(r"(.*)/lib/python3[.\d]*/site-packages$", p)
        if m and os.access(os.path.join(m.group(1), "bin", "python"), os.X_OK):
            return os.path.join(m.group(1), "bin", "python")
    return "python3"


class Target:
    """What gdb is attached to, and the worker serving it."""

    def __init__(self, extra: list[Path]) -> None:
        import gdb

        self.gdb = gdb
        inferior = gdb.selected_inferior()
        arch_name = inferior.architecture().name()
        if "x86-64" in arch_name:
            self.arch = "x86_64"
        elif "aarch64" in arch_name:
            self.arch = "aarch64"
        else:
            raise GdbTargetError(f"gdb architecture {arch_name}: only x86_64 and aarch64 "
                                 f"kernels")
        vmlinux = gdb.current_progspace().filename
        if not vmlinux:
            raise GdbTargetError("gdb has no vmlinux: start gdb with the kernel's vmlinux (or "
                                 "its debug file), or use 'file VMLINUX'")
        self.core = self._core_path()
        self.loads = []
        env = dict(os.environ)
        if self.core is not None:
            self.loads, note = elf_core_layout(self.core)
            self.core_file = open(self.core, "rb")
            env["MM_GDB_TARGET"] = f"core file {self.core} (through gdb)"
            if note:
                path = Path(os.environ.get("TMPDIR", "/tmp")) / f"mm-vmcoreinfo-{os.getpid()}"
                path.write_bytes(note)
                env["MM_GDB_VMCOREINFO"] = str(path)
        else:
            env["MM_GDB_TARGET"] = "gdb remote target (QEMU gdbstub)"
            self.physical_mode(False)  # a stub left in physical mode by an earlier gdb
        if self.arch == "aarch64":
            # VBAR_EL1 holds the kernel's relocated 'vectors'; QEMU 7.2 names it VBAR.
            for name in ("VBAR_EL1", "VBAR"):
                try:
                    env["MM_GDB_VBAR"] = hex(int(gdb.selected_frame().read_register(name))
                                             & ((1 << 64) - 1))
                    break
                except (gdb.error, ValueError):
                    continue
        width = gdb.parameter("width")
        env["COLUMNS"] = str(width if isinstance(width, int) and 40 <= width < 10000 else 200)
        rx_r, rx_w = os.pipe()  # worker -> gdb
        tx_r, tx_w = os.pipe()  # gdb -> worker
        cmd = [worker_python(), "-m", "drgn_mmtools.frontends.gdb_worker", self.arch, vmlinux,
               *map(str, extra)]
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        env["MM_GDB_FDS"] = f"{tx_r},{rx_w}"  # the worker's input from us, output to us
        self.proc = subprocess.Popen(cmd, env=env, pass_fds=(tx_r, rx_w))
        os.close(tx_r)
        os.close(rx_w)
        self.rx, self.tx = os.fdopen(rx_r, "rb"), os.fdopen(tx_w, "wb")
        # The worker's virtual reads (the banner, vmcoreinfo_data) go through
        # a vCPU in the kernel when there is one: at user level with KPTI or
        # PTI the kernel is unmapped.  gdb's own selection comes back after.
        selected = gdb.selected_thread()
        if self.core is None:
            self._select_kernel_thread()
        try:
            status = self.serve()
        finally:
            if selected is not None and selected.is_valid():
                selected.switch()
        if status != 0:
            self.close()
            raise GdbTargetError("the drgn worker could not open the target (see above)")

    def _select_kernel_thread(self) -> None:
        """Select a vCPU whose pc is in the kernel half of the address space."""
        for thread in self.gdb.selected_inferior().threads():
            try:
                thread.switch()
                pc = int(self.gdb.selected_frame().read_register("pc")) & ((1 << 64) - 1)
            except (self.gdb.error, ValueError):
                continue
            if pc >> 63:
                return

    def _core_path(self) -> Path | None:
        try:
            text = self.gdb.execute("info target", to_string=True)
        except self.gdb.error:
            return None
        m = re.search(r"Local core dump file:\s*`([^']+)'", text)
        return Path(m.group(1)) if m else None

    def physical_mode(self, on: bool) -> None:
        if self.core is None:
            try:
                self.gdb.execute(f"maint packet Qqemu.PhyMemMode:{1 if on else 0}",
                                 to_string=True)
            except self.gdb.error:
                pass

    def _read(self, space: bytes, address: int, size: int) -> bytes | None:
        if space == b"p" and self.core is not None:
            return self._read_core(address, size)
        try:
            if self.core is None:
                self.physical_mode(space == b"p")
            return bytes(self.gdb.selected_inferior().read_memory(address, size))
        except (self.gdb.MemoryError, self.gdb.error, OverflowError, ValueError):
            return None

    def _read_core(self, address: int, count: int) -> bytes | None:
        out = bytearray()
        while count:
            seg = next((s for s in self.loads if s.paddr <= address < s.paddr + s.memsz), None)
            if seg is None:
                return None
            n = min(count, seg.paddr + seg.memsz - address)
            inside = max(0, min(n, seg.filesz - (address - seg.paddr)))
            if inside:
                self.core_file.seek(seg.offset + address - seg.paddr)
                out += self.core_file.read(inside)
            out += bytes(n - inside)
            address += n
            count -= n
        return bytes(out)

    def _answer(self, request: bytes) -> None:
        """Answer one read request of the worker."""
        address, size = struct.unpack("<QI", request[1:13])
        data = self._read(request[:1], address, size)
        send(self.tx, b"M", b"\0" if data is None else b"\1" + data)

    def _serve(self, final: bytes) -> bytes | None:
        """Answer the worker's reads and print its output until it sends a
        ``final`` frame; returns that frame's payload, None if it died."""
        try:
            while True:
                tag, payload = recv(self.rx)
                if tag == b"R":
                    self._answer(payload)
                elif tag == b"O":
                    self.gdb.write(payload.decode("utf-8", "replace"))
                elif tag == final:
                    return payload
        except (EOFError, BrokenPipeError):
            self.gdb.write("drgn-mmtools: the drgn worker stopped\n")
            return None
        finally:
            self.physical_mode(False)

    def serve(self) -> int:
        """Serve the worker until its command is done; its status."""
        done = self._serve(b"D")
        return 2 if done is None else done[0]

    def run(self, line: str) -> int:
        send(self.tx, b"C", line.encode())
        return self.serve()

    def complete(self, text: str) -> list[tuple[str, int]]:
        """The shell's completions of ``text`` (reads go through gdb)."""
        import json
        send(self.tx, b"K", text.encode())
        found = self._serve(b"L")
        try:
            return [(t, n) for t, n in json.loads(found)] if found is not None else []
        except ValueError:
            return []

    def close(self) -> None:
        try:
            send(self.tx, b"Q")
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class _State:
    target: Target | None = None
    extra: list[Path] = []


def _reset(*_args) -> None:
    if _State.target is not None:
        _State.target.close()
    _State.target = None


def install() -> None:
    """Define the ``mm`` command in this gdb."""
    import gdb

    class MmCommand(gdb.Command):
        """Run a drgn-mmtools command: mm help, mm check, mm page PFN, mm findings | page.

mm symbols FILE... adds debug info (kernel modules); mm reset restarts the
drgn worker.  The worker starts again by itself after the target ran."""

        def __init__(self) -> None:
            super().__init__("mm", gdb.COMMAND_DATA)

        def invoke(self, arg: str, from_tty: bool) -> None:
            words = arg.split()
            if words[:1] == ["symbols"]:
                _State.extra += [Path(w).resolve() for w in words[1:]]
                _reset()
                return
            if words[:1] == ["reset"]:
                _reset()
                return
            if _State.target is None:
                try:
                    _State.target = Target(_State.extra)
                except (GdbTargetError, OSError, ValueError) as e:
                    raise gdb.GdbError(f"drgn-mmtools: {' '.join(str(e).split())}") from None
            status = _State.target.run(arg)
            if status == 2 and _State.target.proc.poll() is not None:
                _State.target = None

        def complete(self, text: str, word: str):
            if _State.target is None:
                try:
                    _State.target = Target(_State.extra)
                except (GdbTargetError, OSError, ValueError):
                    return gdb.COMPLETE_NONE
            # gdb replaces only ``word``; our candidates replace the last
            # ``n`` characters, of which ``word`` is the tail.
            return [t[n - len(word):] if n >= len(word) else t
                    for t, n in _State.target.complete(text)]

    MmCommand()
    gdb.events.cont.connect(_reset)
    gdb.events.exited.connect(_reset)
