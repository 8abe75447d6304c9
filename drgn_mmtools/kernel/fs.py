"""Files, inodes and address_spaces, named for humans."""

from __future__ import annotations

from typing import NamedTuple

import drgn
from drgn import Object
from drgn import container_of
from drgn.helpers.linux.fs import for_each_mount

from .walk import hlist_entries

__all__ = ("MappingOwner", "file_mtime", "file_path", "inode_full_path", "kernel_time",
           "mapping_owner")


class MappingOwner(NamedTuple):
    """The inode behind an address_space."""

    mapping: int
    inode: int  #: i_ino
    inode_address: int
    path: str | None  #: a path of the inode, None when it has no dentry
    fstype: str | None  #: the superblock's file system type name


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode(errors="replace")


#: More path components than this means a corrupted dentry chain
#: (PATH_MAX is 4096 bytes, so at most 2048 components).
MAX_COMPONENTS = 2048
#: More mounts than this means a corrupted mount list.
MAX_MOUNTS = 1 << 17


def d_path(mnt: Object | None, dentry: Object) -> bytes:
    """The path of a dentry, through ``struct vfsmount *`` mnt (and the
    mounts above it) when given, else inside its file system.  Like drgn's
    ``d_path``, with the chain bounded.

    :raises drgn.FaultError: on an unreadable or implausibly long chain.
    """
    mount = container_of(mnt, "struct mount", "mnt") if mnt is not None else None
    d_op = dentry.d_op.read_()
    if d_op and d_op.d_dname:
        # A pseudo file (memfd, dma-buf, pipe): its file system and name,
        # e.g. "[tmpfs]/memfd:udmabuf-control".
        name = dentry.d_name.name.string_()
        return (b"[" + dentry.d_inode.i_sb.s_type.name.string_() + b"]"
                + (b"/" + name if name and name != b"/" else b""))
    parts: list[bytes] = []
    for _ in range(MAX_COMPONENTS):
        if mount is not None and dentry == mount.mnt.mnt_root:
            parent = mount.mnt_parent.read_()
            if parent == mount:
                break
            dentry, mount = mount.mnt_mountpoint.read_(), parent
            continue
        up = dentry.d_parent.read_()
        if up == dentry:
            break
        parts.append(dentry.d_name.name.string_())
        dentry = up
    else:
        raise drgn.FaultError("dentry chain too long (cycle?)", dentry.value_())
    return b"/" + b"/".join(reversed(parts))


def file_path(file: Object) -> str | None:
    """The path of a ``struct file *`` as d_path() would print it."""
    try:
        return _text(d_path(file.f_path.mnt, file.f_path.dentry))
    except (drgn.FaultError, ValueError):
        return None


def _sb_mounts(prog: drgn.Program) -> dict[int, Object]:
    """Super block address -> its first mount (``struct vfsmount *``); cached."""
    if "mmtools_sb_mounts" not in prog.cache:
        mounts: dict[int, Object] = {}
        try:
            for i, mnt in enumerate(for_each_mount(prog)):
                if i >= MAX_MOUNTS:
                    break  # a looping mount list: the mounts seen so far will do
                mounts.setdefault(mnt.mnt.mnt_sb.value_(), mnt.mnt.address_of_())
        except (drgn.FaultError, ValueError, LookupError):
            pass
        prog.cache["mmtools_sb_mounts"] = mounts
    return prog.cache["mmtools_sb_mounts"]


def inode_full_path(inode: Object) -> str | None:
    """An absolute path of ``struct inode *``, through a mount of its super
    block; the path inside the file system when it is not mounted."""
    prog = inode.prog_
    mnt = _sb_mounts(prog).get(inode.i_sb.value_())
    for dentry in hlist_entries("struct dentry", inode.i_dentry.address_of_(), "d_u.d_alias"):
        return _text(d_path(mnt, dentry))
    return None


def mapping_owner(prog: drgn.Program, mapping: int) -> MappingOwner:
    """Describe ``struct address_space *`` ``mapping`` by its host inode.

    :raises drgn.FaultError: if the mapping or its inode cannot be read.
    """
    m = Object(prog, "struct address_space *", mapping)
    inode = m.host
    try:
        path = inode_full_path(inode)
    except (drgn.FaultError, ValueError):
        path = None
    try:
        fstype = inode.i_sb.s_type.name.string_().decode(errors="replace")
    except drgn.FaultError:
        fstype = None
    return MappingOwner(mapping, inode.i_ino.value_(), inode.value_(), path, fstype)


def _timespec(ts: Object) -> float:
    return ts.tv_sec.value_() + ts.tv_nsec.value_() / 1e9


def inode_mtime(inode: Object) -> float | None:
    """The modification time of ``struct inode *`` in seconds since the epoch:
    ``i_mtime`` (before 6.6), ``__i_mtime`` (6.6) or ``i_mtime_sec`` and
    ``i_mtime_nsec`` (6.7+); None when unreadable."""
    try:
        for name in ("i_mtime", "__i_mtime"):
            if hasattr(inode, name):
                return _timespec(getattr(inode, name))
        return inode.i_mtime_sec.value_() + inode.i_mtime_nsec.value_() / 1e9
    except (AttributeError, drgn.FaultError):
        return None


def file_mtime(prog: drgn.Program, vma) -> float | None:
    """The mtime of the inode behind a :class:`~.vma.VmaInfo`'s file, or None."""
    if not vma.mapping:
        return None
    try:
        return inode_mtime(Object(prog, "struct address_space *", vma.mapping).host)
    except drgn.FaultError:
        return None


def kernel_time(prog: drgn.Program) -> float | None:
    """CLOCK_REALTIME as the kernel's timekeeper last updated it (the time
    of a dump, to a tick), in seconds; None when it cannot be read."""
    try:
        tk = prog["tk_core"].timekeeper
        nsec = tk.tkr_mono.xtime_nsec.value_() >> tk.tkr_mono.shift.value_()
        return tk.xtime_sec.value_() + nsec / 1e9
    except (KeyError, LookupError, AttributeError, drgn.FaultError):
        return None
