"""Probe the target for objects without testing kernel versions."""

from __future__ import annotations

import drgn

__all__ = ("READ_ERRORS", "object_value")

#: What reading a corrupted structure can raise: drgn's fault and absent
#: errors, drgn helpers' ValueError, LookupError or NotImplementedError on a
#: value they cannot decode, and Python's errors on a wild size or index.
READ_ERRORS = (drgn.FaultError, drgn.ObjectAbsentError, ValueError, LookupError,
               OverflowError, NotImplementedError, IndexError, MemoryError, RecursionError)


def object_value(prog: drgn.Program, name: str, default: int | None = None) -> int | None:
    """The integer value of a kernel object or constant, or ``default`` if the
    kernel has no such object or it cannot be read."""
    try:
        return prog[name].value_()
    except (KeyError, LookupError, drgn.FaultError):
        return default
