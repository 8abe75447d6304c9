"""Version-robust helpers over drgn, one module per kernel structure.

Each helper probes the kernel's own types and enums instead of testing
version numbers, and caches what it learns in ``prog.cache``.
"""
