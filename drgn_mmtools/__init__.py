"""drgn-mmtools: Linux memory-management inspection for live kernels and crash dumps.

The package is organised as helpers by kernel structure, checks by question,
and renderers apart; :mod:`drgn_mmtools.target` opens what is inspected.
"""

__version__ = "0.1.0"
