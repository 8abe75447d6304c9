"""Probe the target for objects without testing kernel versions."""

from __future__ import annotations

import logging

import drgn

__all__ = ("LayoutError", "READ_ERRORS", "member_offsets", "object_value")

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


class LayoutError(Exception):
    """The debug info lacks a type or member a check needs: the check cannot
    run on this kernel as built, which is a failed check, never unreadable
    memory.  Deliberately not a LookupError, so read guards let it through."""


def member_offsets(prog: drgn.Program, type_name: str, *members: str) -> dict[str, int]:
    """Byte offsets of ``members`` (nested anonymous members included) in
    ``type_name``.

    :raises LayoutError: naming the type or the first missing member.
    """
    try:
        t = prog.type(type_name)
    except LookupError:
        raise LayoutError(f"the debug info has no {type_name}") from None
    out = {}
    for m in members:
        try:
            out[m] = drgn.offsetof(t, m)
        except LookupError:
            release = _release(prog)
            raise LayoutError(f"{type_name} has no member {m!r} in this kernel's debug info"
                              + (f" (Linux {release})" if release else "")) from None
    return out


def _release(prog: drgn.Program) -> str | None:
    try:
        return prog["init_uts_ns"].name.release.string_().decode(errors="replace")
    except (KeyError, LookupError, drgn.FaultError):
        return None


def one_line(err: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


def quiet_drgn_logs() -> None:
    """Keep drgn's own warnings off stderr: errors reach the user as one line."""
    logging.getLogger("drgn").setLevel(logging.CRITICAL)
