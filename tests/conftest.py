"""Options of the test suite."""

from __future__ import annotations


def pytest_addoption(parser):
    group = parser.getgroup("drgn-mmtools")
    group.addoption("--fuzz-cases", type=int, default=100,
                    help="corrupted-dump cases to run (tests/test_corruption.py)")
    group.addoption("--fuzz-seed", type=int, default=1, help="seed of the corrupted-dump cases")


def pytest_generate_tests(metafunc):
    if "fuzz_case" in metafunc.fixturenames:
        n = metafunc.config.getoption("--fuzz-cases")
        seed = metafunc.config.getoption("--fuzz-seed")
        metafunc.parametrize("fuzz_case", [(seed, i) for i in range(n)],
                             ids=[f"seed{seed}-case{i}" for i in range(n)])
