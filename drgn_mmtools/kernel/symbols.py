"""Name code and data addresses: symbol, offset, owning module, and where
the name came from.

Names come from the symbol tables of the loaded debug files first
(``source`` "debuginfo").  An address they do not cover, typically in a
third-party module whose debug info is not at hand, is looked up in the
symbol tables the kernel keeps in memory (``source`` "kallsyms"): each
module's own kallsyms (any kernel with ``CONFIG_KALLSYMS``), and the core
kernel's (needs Linux 6.0+ VMCOREINFO, or /proc/kallsyms when live).
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

import drgn

__all__ = ("SymbolRef", "modules_without_debug_info", "symbolize")


class SymbolRef(NamedTuple):
    """An address named as ``symbol+offset [module]``."""

    address: int
    name: str | None
    offset: int
    module: str | None  #: "kernel" for vmlinux, else the module's name
    source: str | None = None  #: "debuginfo", "kallsyms", or None when unnamed

    def __str__(self) -> str:
        if self.name is None:
            return hex(self.address)
        off = f"+{self.offset:#x}" if self.offset else ""
        mod = f" [{self.module}]" if self.module and self.module != "kernel" else ""
        return f"{self.name}{off}{mod}"


class _KallsymsTable(NamedTuple):
    starts: list[int]
    symbols: list[tuple[int, int, str, str]]  #: (address, size, name, module)


def _module_kallsyms(prog: drgn.Program) -> _KallsymsTable:
    """Every loaded module's in-memory symbols, sorted; cached per program."""
    key = "mmtools_module_kallsyms"
    if key in prog.cache:
        return prog.cache[key]
    from drgn.helpers.linux.kallsyms import module_kallsyms

    from .walk import list_entries

    rows: list[tuple[int, int, str, str]] = []
    try:
        for mod in list_entries("struct module", prog["modules"].address_of_(), "list"):
            try:
                name = mod.name.string_().decode(errors="replace")
                rows += [(s.address, s.size, s.name, name) for s in module_kallsyms(mod)
                         if s.address]
            except (drgn.FaultError, ValueError, LookupError, UnicodeDecodeError):
                continue  # one unreadable module does not hide the others
    except (drgn.FaultError, LookupError, ValueError):
        pass  # a broken module list: the modules before the break still count
    rows.sort()
    table = _KallsymsTable([r[0] for r in rows], rows)
    prog.cache[key] = table
    return table


def _vmlinux_kallsyms(prog: drgn.Program):
    """drgn's kallsyms index of the core kernel, or None; cached per program."""
    key = "mmtools_vmlinux_kallsyms"
    if key not in prog.cache:
        try:
            from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

            prog.cache[key] = load_vmlinux_kallsyms(prog)
        except Exception:  # noqa: BLE001 - kernels before 6.0 without /proc/kallsyms
            prog.cache[key] = None
    return prog.cache[key]


def _module_name(prog: drgn.Program, address: int) -> str | None:
    try:
        return prog.module(address).name
    except (LookupError, AttributeError):
        return None


def _kernel_address(prog: drgn.Program, address: int) -> bool:
    """Whether ``address`` lies in the kernel's half of the address space
    (x86_64 and aarch64: the top as large as user space below; elsewhere
    any address)."""
    from .pgtable import page_table_format
    try:
        user_top = page_table_format(prog).user_top
    except NotImplementedError:
        return True
    return address >= (1 << 64) - user_top


def _from_kallsyms(prog: drgn.Program, address: int, module: str | None) -> SymbolRef | None:
    table = _module_kallsyms(prog)
    i = bisect.bisect_right(table.starts, address) - 1
    if i >= 0:
        start, size, name, mod = table.symbols[i]
        # A sized symbol must contain the address; an unsized one (size 0)
        # is taken only within its own module.
        if address < start + size or (size == 0 and module == mod):
            return SymbolRef(address, name, address - start, mod, "kallsyms")
    index = _vmlinux_kallsyms(prog)
    if index is not None and module in (None, "kernel"):
        try:
            found = index(prog, None, address, True)
        except Exception:  # noqa: BLE001 - unreadable kallsyms tables
            found = []
        if found:
            return SymbolRef(address, found[0].name, address - found[0].address, "kernel",
                             "kallsyms")
    return None


def symbolize(prog: drgn.Program, address: int) -> SymbolRef:
    """Name an address: from debug info, else from kallsyms; a miss gives a
    SymbolRef whose ``name`` and ``source`` are None."""
    if not address:
        return SymbolRef(0, None, 0, None)
    # Cached per program, as the kallsyms tables are: the same few vm_ops,
    # fault and page_mkwrite handlers come up for every VMA.
    cache = prog.cache.setdefault("mmtools_symbolize", {})
    ref = cache.get(address)
    if ref is None:
        ref = cache[address] = _symbolize(prog, address)
    return ref


def _symbolize(prog: drgn.Program, address: int) -> SymbolRef:
    if not _kernel_address(prog, address):
        # A user PC, or garbage from a broken unwind: no kernel symbol names
        # it (and kallsyms, loaded for nothing, costs 0.15 s on a big dump).
        return SymbolRef(address, None, 0, None)
    module = _module_name(prog, address)
    try:
        sym = prog.symbol(address)
        return SymbolRef(address, sym.name, address - sym.address, module, "debuginfo")
    except LookupError:
        pass
    return _from_kallsyms(prog, address, module) or SymbolRef(address, None, 0, module)


def modules_without_debug_info(prog: drgn.Program) -> list[str]:
    """Names of loaded kernel modules whose debug info is not loaded."""
    out = []
    try:
        for m in prog.modules():
            if m.name != "kernel" and m.wants_debug_file():
                out.append(m.name)
    except (AttributeError, LookupError):
        pass
    return sorted(out)
