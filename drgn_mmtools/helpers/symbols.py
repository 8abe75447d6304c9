"""Name code and data addresses: symbol, offset and owning module."""

from __future__ import annotations

from typing import NamedTuple

import drgn

__all__ = ("SymbolRef", "symbolize")


class SymbolRef(NamedTuple):
    """An address named as ``symbol+offset [module]``."""

    address: int
    name: str | None
    offset: int
    module: str | None  #: "kernel" for vmlinux, else the module's name

    def __str__(self) -> str:
        if self.name is None:
            return hex(self.address)
        off = f"+{self.offset:#x}" if self.offset else ""
        mod = f" [{self.module}]" if self.module and self.module != "kernel" else ""
        return f"{self.name}{off}{mod}"


def symbolize(prog: drgn.Program, address: int) -> SymbolRef:
    """Look an address up; a miss gives a SymbolRef with ``name`` None."""
    if not address:
        return SymbolRef(0, None, 0, None)
    try:
        sym = prog.symbol(address)
        name, offset = sym.name, address - sym.address
    except LookupError:
        name, offset = None, 0
    try:
        module = prog.module(address).name
    except (LookupError, AttributeError):
        module = None
    return SymbolRef(address, name, offset, module)
