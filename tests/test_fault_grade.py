"""The grading rule of fault-retry, as a pure function of its evidence.

The dumps exercise the error and info grades on real kernels
(test_checks.py); these cases pin the rule for the combinations the
fixtures do not produce, such as a VM_FAULT_RETRY loop that never counts
its faults.
"""

from __future__ import annotations

import pytest

from drgn_mmtools.checks.fault_retry import Counters, PageEvidence, grade

STUCK = [("leaf", "vma")]
REFUSED = [("leaf", "vma", "other-file")]


@pytest.mark.parametrize("storm, stuck, refused, progress, faulting_refused, expected", [
    (True, STUCK, REFUSED, [], False, ("error", "refused-loop")),       # PCC NOPAGE loop
    (True, STUCK, REFUSED, ["syscall"], False, ("error", "refused-loop")),  # refused beats progress
    (False, STUCK, REFUSED, [], True, ("error", "refused-loop")),       # VM_FAULT_RETRY in kernel
    (False, STUCK, REFUSED, [], False, ("warning", "refused-no-storm")),  # no loop seen
    (True, STUCK, [], [], False, ("error", "stuck-no-progress")),       # handler refuses own page
    (True, STUCK, [], ["dirty pages"], False, ("info", "candidate")),   # busy writer
    (True, [], [], [], False, ("info", "candidate")),                   # allocator, or a ->fault
    (True, [], [], ["syscall"], False, ("info", "candidate")),          # loop that leaves no PTE
    (False, STUCK, [], [], False, ("info", "candidate")),               # written back, not again
])
def test_grade(storm, stuck, refused, progress, faulting_refused, expected):
    pages = PageEvidence(stuck=list(stuck), refused=list(refused))
    assert grade(storm, pages, progress, faulting_refused) == expected


def counters(faults=1_000_000, nvcsw=0, cpu=10.0, resident=100):
    return Counters(faults, faults, 0, nvcsw, 5, cpu, resident)


@pytest.mark.parametrize("c, storm", [
    (counters(), True),
    (counters(faults=9_999, resident=1), False),            # too few faults
    (counters(resident=20_000), False),                      # faulting in a big working set
    (counters(nvcsw=2_000), False),                          # sleeps between faults
    (counters(cpu=2_000.0), False),                          # faults are a small part of its time
    (counters(cpu=None), True),                              # CPU time unknown: not held against it
])
def test_storm_thresholds(c, storm):
    assert c.storm is storm
