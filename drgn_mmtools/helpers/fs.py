"""Files, inodes and address_spaces, named for humans."""

from __future__ import annotations

from typing import NamedTuple

import drgn
from drgn import Object
from drgn.helpers.linux.fs import d_path, for_each_mount, inode_path
from drgn.helpers.linux.list import hlist_for_each_entry

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


def file_path(file: Object) -> str | None:
    """The path of a ``struct file *`` as d_path() would print it."""
    try:
        return _text(d_path(file.f_path.address_of_()))
    except (drgn.FaultError, ValueError):
        return None


def _sb_mounts(prog: drgn.Program) -> dict[int, Object]:
    """Super block address -> its first mount (``struct vfsmount *``); cached."""
    if "mmtools_sb_mounts" not in prog.cache:
        mounts: dict[int, Object] = {}
        try:
            for mnt in for_each_mount(prog):
                mounts.setdefault(mnt.mnt.mnt_sb.value_(), mnt.mnt.address_of_())
        except drgn.FaultError:
            pass
        prog.cache["mmtools_sb_mounts"] = mounts
    return prog.cache["mmtools_sb_mounts"]


def inode_full_path(inode: Object) -> str | None:
    """An absolute path of ``struct inode *``, through a mount of its super
    block; the path inside the file system when it is not mounted."""
    prog = inode.prog_
    mnt = _sb_mounts(prog).get(inode.i_sb.value_())
    if mnt is not None:
        for dentry in hlist_for_each_entry("struct dentry", inode.i_dentry.address_of_(),
                                           "d_u.d_alias"):
            return _text(d_path(mnt, dentry))
    return _text(inode_path(inode))


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
