"""Find the shipped fixture dumps and open them with stock drgn."""

from __future__ import annotations

import os

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import drgn

ROOT = Path(__file__).resolve().parent.parent
VMCORES = ROOT / "vmcores"


@dataclass(frozen=True)
class Fixture:
    """One manifest.json and the files it names."""

    path: Path

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.path.read_text())

    @property
    def id(self) -> str:
        """``<arch>-<capture>``, e.g. ``x86_64-bugs-2``, for the default kernel
        series; ``<series>-<arch>-<capture>`` (``6.12-x86_64-bugs-1``) for the
        others, which live in ``vmcores/<series>/<arch>/``."""
        series_dir = self.path.parent.parent.parent
        prefix = "" if series_dir == VMCORES else f"{series_dir.name}-"
        return f"{prefix}{self.data['arch']}-{self.path.parent.name}"

    def file(self, rel: str) -> Path:
        return (self.path.parent / rel).resolve()

    @property
    def dump(self) -> Path:
        return self.file(self.data["dump"])

    @property
    def vmlinux(self) -> Path:
        return self.file(self.data["vmlinux"])

    @property
    def modules(self) -> list[Path]:
        return [self.file(m) for m in self.data["modules"]]

    def truth(self, kind: str) -> list[dict[str, Any]]:
        return [t for t in self.data["truth"] if t["kind"] == kind]


def all_fixtures(narrow: bool = True) -> list[Fixture]:
    """Every shipped dump, the default kernel series' first; ``MMTOOLS_FIXTURES=x86_64/bugs-1,...`` narrows the
    set (the mutation pass, tests/mutate.py, runs on a few)."""
    # The default kernel series first, then the others by series.
    fxs = [Fixture(p) for p in [*sorted(VMCORES.glob("*/*/manifest.json")),
                                *sorted(VMCORES.glob("*/*/*/manifest.json"))]]
    only = os.environ.get("MMTOOLS_FIXTURES") if narrow else None
    if only:
        wanted = set(only.split(","))
        fxs = [f for f in fxs if f.id in wanted]
    return fxs


def load_symbols(prog: drgn.Program, vmlinux: Path, modules: list[Path]) -> None:
    """Load exactly the given debug files (no search elsewhere)."""
    try:
        prog.load_debug_info([str(vmlinux), *map(str, modules)])
    except drgn.MissingDebugInfoError:
        pass  # modules whose debug info the fixture does not ship
    assert not prog.main_module().wants_debug_file(), f"{vmlinux} did not load"


@lru_cache(maxsize=None)
def open_dump(manifest: Path) -> drgn.Program:
    """A stock drgn program on a fixture dump, cached per manifest."""
    fx = Fixture(manifest)
    prog = drgn.Program()
    prog.set_core_dump(str(fx.dump))
    load_symbols(prog, fx.vmlinux, fx.modules)
    return prog
