"""What to look at next for a finding: commands for drgn's prompt.

``%crash`` commands run at drgn's prompt in its crash-compatible mode (drgn
0.3.0); plain expressions are drgn Python with its Linux helpers imported.
"""

from __future__ import annotations

from .findings import Finding

__all__ = ("next_commands",)


def next_commands(f: Finding) -> list[str]:
    """One to three commands that show the finding's task, page or mapping."""
    ev, out = f.evidence, []
    pid = ev.get("pid")
    if pid is not None:
        out.append(f"%crash bt {pid}")
        if ev.get("address") is not None:
            out.append(f"%crash vm {pid}")
    for waiter in (ev.get("waiter_pids") or [])[:2]:
        out.append(f"%crash bt {waiter}")
    if ev.get("pfn") is not None:
        out.append(f"pfn_to_page(prog, {ev['pfn']:#x})")
    return out[:3]
