"""drgn script: the drgn-mmtools check report, as the pipeline writes it.

    drgn -c VMCORE -s VMLINUX commands/check.py [--check NAME ...] [--format json]

Exit status: 0 clean, 1 findings, 2 a check failed or could not read everything.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from drgn_mmtools.frontends.script import script_main  # noqa: E402

sys.exit(script_main(prog))  # noqa: F821 - drgn provides prog
