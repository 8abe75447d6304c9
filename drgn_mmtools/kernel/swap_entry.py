"""Non-present page-table entries in swap format: swap, migration, hwpoison.

A non-present, non-none PTE (or PMD, for THP migration) holds a swap entry:
a type and an offset.  Types below ``MAX_SWAPFILES`` name swap devices
(``swap_info[type]``, offset a slot below ``si->max``); the types above are
special, and their offset is a pfn: hwpoison (``SWP_HWPOISON ==
MAX_SWAPFILES``), migration, device-private and exclusive; or a small
marker (PTE markers, swap-in errors).

Layouts (``arch/*/include/asm/pgtable*.h``):

- x86_64 (since 4.19, L1TF): type in bits 59-63, the offset inverted in bits
  9-58 (``__swp_offset(x) = ~x << 5 >> 14``);
- arm64 up to 6.2: type in bits 2-7, offset from bit 8; since 6.3 (and in
  kernels with ``PTE_SWP_EXCLUSIVE`` backported) type in bits 3-7, offset
  from bit 8.  Macros are not in the debug info, so both arm64 readings are
  tried and an entry is valid when either reading is.

``MAX_SWAPFILES`` is the length of ``swap_info[]`` when the kernel has
CONFIG_SWAP.  Without it, types from :data:`SPECIAL_LOW` up are taken as
special: at most 10 types sit above ``MAX_SWAPFILES`` in any kernel so far
(1 hwpoison, 3 migration, 4 device, 1 swap-in error, 1 marker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import drgn

__all__ = ("SwapEntry", "SwapTypes", "decode_swap", "swap_types", "SPECIAL_LOW")

MAX_SWAPFILES_SHIFT = 5
#: Lowest type that may be special when MAX_SWAPFILES is unknown.
SPECIAL_LOW = (1 << MAX_SWAPFILES_SHIFT) - 10
#: Special entries whose offset is small data, not a pfn (PTE markers).
MARKER_MAX = 16
_M64 = (1 << 64) - 1


class SwapEntry(NamedTuple):
    """One reading of a raw entry as a swap entry."""

    type: int
    offset: int


def decode_swap(arch: str, value: int) -> list[SwapEntry]:
    """The readings of a non-present entry as (type, offset); two on arm64."""
    if arch == "x86_64":
        return [SwapEntry(value >> 59, ((~value & _M64) << 5 & _M64) >> 14)]
    offset = value >> 8 & ((1 << 50) - 1)
    readings = [SwapEntry(value >> 3 & 0x1F, offset)]
    old_type = value >> 2 & 0x3F
    if old_type < 1 << MAX_SWAPFILES_SHIFT and old_type != readings[0].type:
        readings.append(SwapEntry(old_type, offset))
    return readings


@dataclass
class SwapTypes:
    """What the target's swap types mean."""

    max_swapfiles: int | None  #: None when the kernel has no swap_info[]
    #: type -> slots of the active swap devices (``swap_info[type]->max``)
    devices: dict[int, int]

    @property
    def special_low(self) -> int:
        return self.max_swapfiles if self.max_swapfiles is not None else SPECIAL_LOW

    def is_special(self, t: int) -> bool:
        return t >= self.special_low

    def problem(self, entry: SwapEntry, level: int,
                pfn_valid: Callable[[int], bool | None]) -> str | None:
        """Why ``entry`` at ``level`` (0 PTE, 1 PMD) cannot be right, or None.

        Swap slots must exist on an active device; special entries must name
        a pfn with a struct page (or be a marker, PTE level only); PMDs hold
        migration entries only, which are special.
        """
        if not self.is_special(entry.type):
            if level > 0:
                return f"a swap entry (type {entry.type}) in a PMD, where only migration entries go"
            slots = self.devices.get(entry.type)
            if slots is None:
                return f"swap type {entry.type} names no active swap device"
            if entry.offset >= slots:
                return f"swap offset {entry.offset} is past the {slots} slots of swap type {entry.type}"
            return None
        if entry.offset < MARKER_MAX and level == 0:
            return None
        if pfn_valid(entry.offset) is False:
            return f"special swap entry (type {entry.type}) names pfn {entry.offset:#x}, outside RAM"
        return None


def swap_types(prog: drgn.Program) -> SwapTypes:
    """Probe ``swap_info[]``; cached per program."""
    key = "mmtools_swap_types"
    if key in prog.cache:
        return prog.cache[key]
    max_swapfiles = None
    devices: dict[int, int] = {}
    try:
        info = prog["swap_info"]
        max_swapfiles = info.type_.length
        try:
            nr = prog["nr_swapfiles"].value_()
        except (KeyError, LookupError):
            nr = max_swapfiles or 0
        used = 1  # SWP_USED
        for t in range(min(nr, max_swapfiles or 0)):
            si = info[t]
            if si and si.flags.value_() & used:
                devices[t] = si.max.value_()
    except (KeyError, LookupError, AttributeError, drgn.FaultError):
        pass
    result = SwapTypes(max_swapfiles, devices)
    prog.cache[key] = result
    return result
