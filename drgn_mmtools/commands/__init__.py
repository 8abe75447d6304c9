"""Commands to explore a target, each defined once on drgn's command
framework (:mod:`drgn.commands`) in :data:`~.registry.MM_NAMESPACE`.

Each command returns an :class:`~drgn_mmtools.report.output.Output` of typed
records and never prints; the shell, drgn's prompt (``%mm_page``), gdb
(``mm page``) and plain drgn scripts render it.  Importing this package
registers every command module below.
"""

from .registry import COMMANDS, MM_NAMESPACE, CommandInfo, run_line  # noqa: F401
from . import checks, inodes, pages, pgtables, tasks, vmas, xarrays  # noqa: F401,E402

__all__ = ("COMMANDS", "MM_NAMESPACE", "CommandInfo", "run_line")
