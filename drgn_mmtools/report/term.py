"""rich's Console and Text when rich is installed, else plain stand-ins.

The drgn scripts in ``commands/`` run under a stock drgn, which may not
have rich: the text report then prints the same lines without colour.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ("Console", "Text", "HAVE_RICH")

try:
    from rich.console import Console
    from rich.text import Text

    HAVE_RICH = True
except ImportError:  # pragma: no cover - exercised by a test that hides rich
    HAVE_RICH = False

    class Text:  # type: ignore[no-redef]
        """A string; styles are ignored."""

        def __init__(self, text: str = "", style: str = "") -> None:
            self.plain = text

        def append_text(self, other: "Text") -> "Text":
            self.plain += other.plain
            return self

        def __str__(self) -> str:
            return self.plain

    class Console:  # type: ignore[no-redef]
        """Prints lines to a file; no colour, no wrapping."""

        def __init__(self, file: TextIO | None = None, stderr: bool = False,
                     **_: Any) -> None:
            self.file = file or (sys.stderr if stderr else sys.stdout)

        @property
        def is_terminal(self) -> bool:
            return False

        def print(self, *objects: Any, **_: Any) -> None:
            print(*(str(o) for o in objects), file=self.file)
