"""The checks, one module each, found by :func:`all_checks`.

A check asks one question of the whole target and returns a
:class:`~drgn_mmtools.report.findings.CheckResult`; it imports from
``analysis``, ``kernel`` and ``report``, never from another check.
"""

from .base import Check, all_checks

__all__ = ("Check", "all_checks")
