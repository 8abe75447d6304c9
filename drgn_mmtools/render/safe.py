"""Make strings from kernel memory safe to show on a terminal.

A corrupted or hostile dump can carry escape sequences in task names and
file names; every control character becomes a visible escape.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(s: object) -> str:
    """``str(s)`` with control characters shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(s))
