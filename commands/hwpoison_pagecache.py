"""drgn script: the hwpoison-pagecache check.

    drgn -c VMCORE -s VMLINUX commands/hwpoison_pagecache.py [--format json]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from drgn_mmtools.frontends.script import script_main  # noqa: E402

sys.exit(script_main(prog, ["hwpoison-pagecache"]))  # noqa: F821 - drgn provides prog
