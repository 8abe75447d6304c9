"""bench/ scripts are run by hand, rarely: their imports at least must follow
the package's layout (a module move once broke one unnoticed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_benchmarks_import():
    scripts = sorted(BENCH.glob("*.py"))
    assert scripts
    for script in scripts:
        spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert callable(getattr(module, "main"))
