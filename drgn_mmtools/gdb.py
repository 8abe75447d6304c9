"""Inside gdb: ``python import drgn_mmtools.gdb`` defines the ``mm``
command (see :mod:`drgn_mmtools.frontends.gdb`).  Outside gdb,
``python3 -m drgn_mmtools.gdb`` prints the line to put in ``.gdbinit``.
"""

import os
import sys

if __name__ == "__main__" and "gdb" not in sys.modules:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    site = [p for p in sys.path if p.endswith("site-packages")]
    print("python import sys; sys.path[:0] = " + repr([here, *site]) +
          "; import drgn_mmtools.gdb")
else:
    from drgn_mmtools.frontends.gdb import install

    install()
