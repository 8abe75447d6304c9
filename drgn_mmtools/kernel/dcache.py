"""Names in the dentry cache: look a path up, list a directory's cached
children, find inodes by number.  All kernels: a dentry's children are the
``d_subdirs`` list before Linux 6.8 and the ``d_children`` hlist since
(commit da549bdd15c2, "dentry: switch the lists of children to hlist")."""

from __future__ import annotations

from typing import Iterator

import drgn
from drgn import Object
from drgn.helpers.linux.fs import path_lookup

from .walk import hlist_entries, list_entries

__all__ = ("MAX_CHILDREN", "cached_inodes", "dentry_children", "inodes_by_number",
           "lookup_inode")

MAX_CHILDREN = 4096  #: children listed per directory (a corrupted list stops here)


def lookup_inode(prog: drgn.Program, path: str) -> Object:
    """``struct inode *`` of an absolute path, through the dentry cache and
    the mounts, as the kernel would resolve it.

    :raises LookupError: when a component is not in the dentry cache.
    :raises drgn.FaultError: when a dentry cannot be read.
    """
    found = path_lookup(prog, path)
    inode = found.dentry.d_inode.read_()
    if not inode:
        raise LookupError(f"{path}: a negative dentry (no inode)")
    return inode


def dentry_children(dentry: Object) -> Iterator[Object]:
    """The cached children of a directory dentry (``struct dentry *``),
    at most :data:`MAX_CHILDREN`."""
    if hasattr(dentry, "d_children"):
        it = hlist_entries("struct dentry", dentry.d_children.address_of_(), "d_sib")
    else:
        it = list_entries("struct dentry", dentry.d_subdirs.address_of_(), "d_child")
    for i, child in enumerate(it):
        if i >= MAX_CHILDREN:
            return
        yield child


def cached_inodes(prog: drgn.Program, problems: list[str]) -> Iterator[Object]:
    """Every inode on a super block's ``s_inodes`` list, over all super
    blocks.  A super block whose inode list cannot be read or loops is
    described in ``problems`` and skipped; the others are still walked."""
    try:
        for sb in list_entries("struct super_block", prog["super_blocks"].address_of_(),
                               "s_list"):
            try:
                yield from list_entries("struct inode", sb.s_inodes.address_of_(),
                                        "i_sb_list")
            except drgn.FaultError as e:
                problems.append(f"inodes of super block {sb.value_():#x}: {e}")
    except drgn.FaultError as e:
        problems.append(f"super block list: {e}")


def inodes_by_number(prog: drgn.Program, ino: int, problems: list[str]) -> Iterator[Object]:
    """Every cached inode numbered ``ino`` (see :func:`cached_inodes`)."""
    for inode in cached_inodes(prog, problems):
        try:
            found = inode.i_ino.value_() == ino
        except drgn.FaultError as e:
            problems.append(f"inode {inode.value_():#x}: {e}")
            continue
        if found:
            yield inode
