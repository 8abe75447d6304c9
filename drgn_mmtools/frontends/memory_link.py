"""The framing between gdb and the drgn worker it starts.

gdb's process cannot host drgn safely: gdb links the system's libelf, which
then stands in for the newer one drgn's libdw was built against.  So the gdb
front end starts a worker process (the Python drgn-mmtools is installed in)
and serves it memory.  Frames on two pipes:

- worker to gdb: ``R`` space(1: "v" virtual or "p" physical) address(8)
  size(4) — read memory; ``O`` text — output to print; ``D`` status(1) —
  the command is done; ``L`` JSON ``[[text, replace], ...]`` — completions;
- gdb to worker: ``M`` ok(1) bytes — the answer to ``R``; ``C`` line — run
  a command; ``K`` text — complete it; ``Q`` — quit.

Every frame is a tag byte, a payload length (4 bytes) and the payload;
integers are little-endian.  Neither side imports drgn here.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

__all__ = ("send", "recv")


def send(f: BinaryIO, tag: bytes, payload: bytes = b"") -> None:
    f.write(tag + struct.pack("<I", len(payload)) + payload)
    f.flush()


def recv(f: BinaryIO) -> tuple[bytes, bytes]:
    """One frame: (tag, payload).

    :raises EOFError: when the other side has gone.
    """
    head = f.read(5)
    if len(head) < 5:
        raise EOFError("the other side closed the link")
    tag, n = head[:1], struct.unpack("<I", head[1:])[0]
    payload = f.read(n) if n else b""
    if len(payload) < n:
        raise EOFError("the other side closed the link")
    return tag, payload
