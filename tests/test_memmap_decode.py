"""The mem_map scan's byte tests as a pure decoder: column-at-a-time tests,
the switch to page-by-page tests once few pages pass, and free-block
masking, against a page-by-page evaluation of the same tests on random
chunks.  The dumps test the scan against drgn's helpers (test_checks.py)."""

from __future__ import annotations

import random

import pytest

from drgn_mmtools.kernel.memmap import _Chunk, _match
from drgn_mmtools.kernel.pageflags import ByteTest

STRIDE = 64


def naive(buf: bytes, n: int, tests, blocks) -> list[int]:
    masked = set()
    for first, pages in blocks:
        masked.update(range(first, min(first + pages, n)))
    return [i for i in range(n) if i not in masked
            and all(buf[i * STRIDE + t.offset] & t.mask == t.value for t in tests)]


def chunk_bytes(rng: random.Random, n: int, density: float) -> bytes:
    """Random struct pages; each byte is 0 with probability ``density`` (so
    "byte is zero" tests pass that often)."""
    return bytes(0 if rng.random() < density else rng.randrange(1, 256)
                 for _ in range(n * STRIDE))


@pytest.mark.parametrize("seed", range(40))
def test_match_equals_page_by_page_tests(seed):
    rng = random.Random(seed)
    n = rng.choice([64, 512, 4096])
    buf = chunk_bytes(rng, n, rng.choice([0.02, 0.5, 0.97]))
    tests = [ByteTest(rng.randrange(STRIDE), mask, rng.choice([0, mask]))
             for mask in (rng.choice([1, 2, 0x80, 0xF0, 0xFF]) for _ in range(rng.randrange(1, 6)))]
    blocks = ([(rng.randrange(n), 1 << rng.randrange(8)) for _ in range(rng.randrange(4))]
              if rng.random() < 0.5 else [])
    chunk = _Chunk(buf, n, STRIDE)
    got = _match(chunk, tests, blocks)
    want = naive(buf, n, tests, blocks)
    assert ([] if got is None else [i for i, b in enumerate(got) if b]) == want
    # Results are shared between predicates of the same chunk: a second
    # predicate made of the same tests in another order gives the same pages.
    again = _match(chunk, list(reversed(tests)), blocks)
    assert ([] if again is None else [i for i, b in enumerate(again) if b]) == want
