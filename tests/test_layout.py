"""A type or member a check needs that the debug info lacks fails the check,
naming it: never "unreadable", never a clean result."""

from __future__ import annotations

import drgn
import pytest

from drgn_mmtools.analysis.session import Session
from drgn_mmtools.checks.runner import exit_code, run_checks
from drgn_mmtools.target import TargetSpec, open_program

from .manifests import all_fixtures

BUGS = [f for f in all_fixtures() if not f.data["clean"] and f.modules]


def without_member(prog: drgn.Program, type_name: str, member: str) -> None:
    """Hide ``member`` (at any depth of anonymous structs and unions) from
    ``type_name`` in the program's view, through a type finder that runs first."""
    def strip(t: drgn.Type) -> drgn.Type:
        members = []
        for m in t.members:
            if m.name == member:
                continue
            mt = m.type
            if m.name is None and mt.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
                mt = strip(mt)
            members.append(drgn.TypeMember(mt, m.name, m.bit_offset))
        make = prog.struct_type if t.kind == drgn.TypeKind.STRUCT else prog.union_type
        return make(t.tag, t.size, members)

    kind, tag = type_name.split()
    fake = strip(prog.type(type_name))

    def finder(prog, kinds, name, filename):
        return fake if name == tag and drgn.TypeKind.STRUCT in kinds else None

    prog.register_type_finder(f"hide {type_name}.{member}", finder, enable_index=0)


@pytest.mark.parametrize("member", ["index", "mapping", "_refcount"])
def test_missing_struct_page_member_fails_the_check_by_name(member):
    fx = BUGS[0]
    spec = TargetSpec(core=fx.dump, vmlinux=fx.vmlinux, modules=fx.modules)
    prog = open_program(spec)
    without_member(prog, "struct page", member)
    (r,) = run_checks(Session(prog, spec=spec), ["mapping-mismatch"])
    assert r.failed and r.status == "failed"
    assert "struct page" in r.error and repr(member) in r.error, r.error
    assert "\n" not in r.error
    assert exit_code([r]) == 2


def test_missing_xa_node_member_fails_the_checks_that_walk_xarrays():
    fx = BUGS[0]
    spec = TargetSpec(core=fx.dump, vmlinux=fx.vmlinux, modules=fx.modules)
    prog = open_program(spec)
    without_member(prog, "struct xa_node", "shift")
    results = run_checks(Session(prog, spec=spec), ["dax-entries", "mapping-mismatch"])
    for r in results:
        assert r.failed and "struct xa_node" in r.error and "'shift'" in r.error, (r.check, r.error)
    assert exit_code(results) == 2
