"""Filtered dumps: the dump level read from the kdump header, and reads of
pages the level left out explained with the level that keeps them."""

from __future__ import annotations

import re

import drgn
import pytest
from drgn.helpers.linux.mm import pfn_to_virt

from drgn_mmtools.dumpfile import dump_level
from drgn_mmtools.kernel.dumplevel import dropped_by, explain_address, explain_line

from .manifests import Fixture, all_fixtures, open_dump

FIXTURES = all_fixtures()


@pytest.mark.parametrize("fx", FIXTURES, ids=[f.id for f in FIXTURES])
def test_dump_level_is_what_makedumpfile_was_given(fx: Fixture):
    want = int(re.search(r"-d (\d+)", fx.data["dump_filter"]).group(1))
    assert dump_level(fx.dump) == want
    assert dump_level(fx.vmlinux) is None  # not a kdump file


@pytest.mark.parametrize("fx", [f for f in FIXTURES if not f.data["clean"]],
                         ids=[f.id for f in FIXTURES if not f.data["clean"]])
def test_a_page_the_level_left_out_is_named_with_the_level_that_keeps_it(fx: Fixture):
    prog = open_dump(fx.path)
    level = dump_level(fx.dump)
    for t in fx.truth("mapping_mismatch"):
        if t.get("mismatch", "other-file") != "other-file":
            continue
        address = pfn_to_virt(prog, t["pfn"]).value_()
        with pytest.raises(drgn.FaultError):  # the dump itself does not hold it
            prog.read(address, 8)
        why = explain_address(prog, level, address)
        bit = dropped_by(prog, t["pfn"])
        assert bit in (2, 4) and level & bit  # a tmpfs page: page cache
        assert why == (f"pfn {t['pfn']:#x} is a page-cache page{' with private data' if bit == 4 else ''}, "
                       f"which dump level {level} leaves out; makedumpfile -d {level & ~bit} "
                       f"keeps it")
        line = f"page of pid {t['pid']}: Excluded page: {address:#x}"
        assert explain_line(prog, level, line) == f"{line} ({why})"
    # What every level keeps is never blamed on the level: init_task (kernel
    # data), and a level of 0.
    task = prog["init_task"].address_of_().value_()
    assert explain_address(prog, level, task) is None
    assert explain_address(prog, 0, pfn_to_virt(prog, fx.truth("mapping_mismatch")[0]["pfn"])
                           .value_()) is None
