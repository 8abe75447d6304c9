"""Make strings from kernel memory safe to show on a terminal.

A corrupted or hostile dump can carry escape sequences, bidirectional
overrides (U+202E turns the rest of a line around) and other invisible
format characters in task names and file names.  Every such character
becomes a visible escape.
"""

from __future__ import annotations

import re

#: C0 and C1 controls, DEL, zero-width and bidirectional format characters,
#: line and paragraph separators, the byte order mark.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e"
                     "\u2060-\u2069\ufeff\ufff9-\ufffb]")


def printable(s: object) -> str:
    """``str(s)`` with control and format characters shown as ``\\xNN`` or
    ``\\uNNNN``."""
    def esc(m: re.Match) -> str:
        c = ord(m.group())
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    return _UNSAFE.sub(esc, str(s))
