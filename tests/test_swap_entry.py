"""The swap-entry decoder against the kernels' own encodings.

The encoders below transcribe the ``__swp_entry`` macros of
``arch/x86/include/asm/pgtable_64.h`` (4.19+) and
``arch/arm64/include/asm/pgtable.h`` (before and since 6.3); the dumps
check the decoder on real hwpoison entries (test_checks.py compares with
the guest's pagemap).
"""

from __future__ import annotations

import pytest

from drgn_mmtools.kernel.swap_entry import SPECIAL_LOW, SwapEntry, SwapTypes, decode_swap

M64 = (1 << 64) - 1


def x86_entry(t: int, offset: int) -> int:
    # SWP_TYPE_BITS 5, SWP_OFFSET_SHIFT = _PAGE_BIT_PROTNONE + 1 + 5 = 14
    return ((((~offset & M64) << 14) & M64) >> 5) | (t << 59)


def arm64_entry(t: int, offset: int, type_shift: int) -> int:
    return t << type_shift | offset << 8


@pytest.mark.parametrize("t, offset", [(0, 1), (3, 0x1234), (27, 0x1FD3D), (31, (1 << 40) + 7)])
def test_x86_64_round_trip(t, offset):
    assert decode_swap("x86_64", x86_entry(t, offset)) == [SwapEntry(t, offset)]


@pytest.mark.parametrize("type_shift", [2, 3])
@pytest.mark.parametrize("t, offset", [(1, 5), (27, 0x4610), (30, 1 << 30)])
def test_arm64_either_layout_is_read(type_shift, t, offset):
    assert SwapEntry(t, offset) in decode_swap("aarch64", arm64_entry(t, offset, type_shift))


def test_x86_64_garbage_reads_as_an_impossible_swap_slot():
    (e,) = decode_swap("x86_64", 0xDEADBE00)
    assert e.type == 0 and e.offset > 1 << 40


def test_validity():
    types = SwapTypes(max_swapfiles=27, devices={0: 1000})
    valid = {1, 2, 0x4610}.__contains__
    ok = lambda e, level=0: types.problem(e, level, valid) is None  # noqa: E731
    assert ok(SwapEntry(0, 999))
    assert not ok(SwapEntry(0, 1000))                # past the device's slots
    assert not ok(SwapEntry(3, 1))                   # no such device
    assert ok(SwapEntry(27, 0x4610))                 # hwpoison entry to a real pfn
    assert not ok(SwapEntry(27, 0x99999))            # ... to a pfn outside RAM
    assert ok(SwapEntry(31, 3))                      # a PTE marker: small data, no pfn
    assert not ok(SwapEntry(31, 3), level=1)         # ... which PMDs never hold
    assert not ok(SwapEntry(0, 5), level=1)          # PMDs hold migration entries only
    assert ok(SwapEntry(28, 0x4610), level=1)
    unknown = SwapTypes(max_swapfiles=None, devices={})
    assert unknown.special_low == SPECIAL_LOW and unknown.is_special(27) and not unknown.is_special(3)
