"""Probe the target for objects without testing kernel versions."""

from __future__ import annotations

import drgn

__all__ = ("object_value",)


def object_value(prog: drgn.Program, name: str, default: int | None = None) -> int | None:
    """The integer value of a kernel object or constant, or ``default`` if the
    kernel has no such object or it cannot be read."""
    try:
        return prog[name].value_()
    except (KeyError, LookupError, drgn.FaultError):
        return default
