"""drgn script: run lines of the drgn-mmtools shell under a stock drgn.

    drgn -c VMCORE -s VMLINUX commands/mm.py 'findings | page' 'stack 42'
    drgn -c VMCORE -s VMLINUX commands/mm.py < commands.txt

Each argument (or each line of stdin when there is none) is one shell line;
structured pipes, '| cmd', '> file' and --format json work as in the shell.
The exit status follows the check rule: 0 nothing found, 1 findings, 2 errors.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from drgn_mmtools.frontends.script import shell_main  # noqa: E402

sys.exit(shell_main(prog, sys.argv[1:]))  # noqa: F821 - drgn provides prog
