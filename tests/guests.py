"""Attach stock drgn to a running fixture guest."""

from __future__ import annotations

import drgn

from fixtures import lab
from fixtures.qemu import Guest

from .manifests import load_symbols


def attach(guest: Guest) -> drgn.Program:
    """A stock drgn program on the guest's drgn QMP socket, with its debug info."""
    prog = drgn.Program()
    prog.set_qemu_qmp(str(guest.drgn_socket))
    d = lab.arch_dir(guest.arch)
    load_symbols(prog, d / "vmlinux.debug", [d / "mmfixture.ko"])
    return prog
