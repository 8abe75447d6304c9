"""README.md's kernel x arch x check table is the one the shipped dumps give."""

from __future__ import annotations

from pathlib import Path

from .manifests import all_fixtures
from .matrix import table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_check_passes_its_truth_on_every_kernel_and_readme_says_so():
    text = table(all_fixtures(narrow=False))
    assert "FAIL" not in text, text
    assert len({line.split("|")[1] for line in text.splitlines()[2:]}) >= 3, "three kernel series"
    assert text in README.read_text(), \
        "README.md's version table is stale: paste python3 -m tests.matrix"
