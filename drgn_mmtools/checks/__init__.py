"""The checks, one module each; every check returns a CheckResult.

A check is a function ``run(ctx) -> CheckResult`` plus a :class:`CheckSpec`
that names and describes it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from ..context import Context
from ..findings import CheckResult
from ..rules import Rule


class CheckSpec(NamedTuple):
    name: str
    description: str
    run: Callable[[Context], CheckResult]
    rules: tuple[Rule, ...] = ()  #: every rule its findings and records name


def all_checks() -> dict[str, CheckSpec]:
    """Every check by name, in the order they run."""
    from . import dax_entries, fault_retry, hwpoison_pagecache, mapping_mismatch, pagetable_sanity

    specs = [m.SPEC for m in (mapping_mismatch, fault_retry, hwpoison_pagecache, dax_entries,
                              pagetable_sanity)]
    return {s.name: s for s in specs}
