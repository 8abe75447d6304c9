"""What a check is, and how the checks are found.

A check module defines ``CHECK = Check(...)``: its name, a one-line
description, the rules its findings name, the arguments it takes (drgn
:class:`~drgn.commands.argument` declarations whose ``dest`` is a field of
:class:`~drgn_mmtools.analysis.session.Options`), and ``run(session,
result) -> CheckResult``.  :func:`all_checks` finds every module of this
package that defines one, so adding a check touches one file.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from drgn.commands import argument

from ..analysis.session import Session
from ..report.findings import CheckResult
from .rules import Rule

__all__ = ("Check", "all_checks", "check_arguments", "apply_arguments")


@dataclass(frozen=True)
class Check:
    """One check: a question asked of the whole target."""

    name: str  #: "mapping-mismatch"; the ``check`` of its findings
    description: str  #: one line
    run: Callable[[Session, CheckResult], CheckResult]
    rules: tuple[Rule, ...] = ()  #: every rule its findings and records name
    #: drgn ``argument`` declarations; each ``dest`` names an Options field
    arguments: tuple[argument, ...] = ()
    order: int = 50  #: position in reports (lower first)
    dump_ok: bool = True  #: works on crash dumps
    live_ok: bool = True  #: works on live kernels


_NOT_CHECKS = {"base", "rules", "runner"}


def all_checks() -> dict[str, Check]:
    """Every check by name, in report order (each module's ``CHECK``)."""
    from .. import checks as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _NOT_CHECKS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        check = getattr(module, "CHECK", None)
        if isinstance(check, Check):
            found.append(check)
    return {c.name: c for c in sorted(found, key=lambda c: (c.order, c.name))}


def check_arguments() -> tuple[argument, ...]:
    """Every check's arguments, each once (checks may share one)."""
    seen, out = set(), []
    for check in all_checks().values():
        for arg in check.arguments:
            if arg.args not in seen:
                seen.add(arg.args)
                out.append(arg)
    return tuple(out)


def apply_arguments(options, namespace) -> None:
    """Copy parsed check arguments (by ``dest``) onto ``options``."""
    for arg in check_arguments():
        dest = arg.kwargs.get("dest") or arg.args[-1].lstrip("-").replace("-", "_")
        value = getattr(namespace, dest, None)
        if value is not None:
            setattr(options, dest, value)
