"""Renderers of command output: rich text on a terminal, and JSON."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

from rich.console import Console

from drgn_mmtools.report.output import SCHEMA, Output, detail_field, hex_field, to_json
from drgn_mmtools.report.views import render


@dataclass
class Row:
    pid: int
    comm: str
    address: int = hex_field()
    file: str | None = None
    flags: list[str] = field(default_factory=list)
    hidden: int = detail_field(0, fmt="hex")


def draw(out: Output, width: int = 80) -> str:
    buf = io.StringIO()
    render(Console(file=buf, width=width, no_color=True, highlight=False), out)
    return buf.getvalue()


def test_table_shows_hex_fields_in_hex_and_hides_detail_fields():
    text = draw(Output("x", "row", [Row(41, "pcc_retry", 0x7F3A5C001000, "/dev/pcc", ["a"], 7)]))
    assert "0x7f3a5c001000" in text and "41" in text and "hidden" not in text
    assert text.splitlines()[0].split() == ["pid", "comm", "address", "file", "flags"]


def test_brackets_are_text_not_markup():
    text = draw(Output("x", "row", [Row(1, "[heap]", 1, "/lib/x [deleted]")], title="[bold]"))
    assert "[heap]" in text and "/lib/x [deleted]" in text and "[bold]" in text


def test_escape_sequences_from_a_dump_are_shown_escaped():
    evil = "a\x1b[2Jb\u202ec"
    text = draw(Output("x", "row", [Row(1, evil, 1, evil)]))
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\x1b[2Jb\\u202ec" in text


def test_addresses_are_never_cut_at_any_width():
    rows = [Row(i, "c" * 30, 0xFFFF888003A1C5F8 + i, "/very/long/path/" * 6) for i in range(3)]
    for width in (40, 60, 80, 200):
        text = draw(Output("x", "row", rows), width)
        for r in rows:
            assert f"{r.address:#x}" in text, (width, text)
        assert "…" not in text


def test_detail_view_lists_every_field_and_expands_dicts():
    @dataclass
    class D:
        n: int
        evidence: dict

    text = draw(Output("show 1", "finding", [D(1, {"pfn": 0x1FD3D, "pid": 39})],
                       layout="detail"))
    assert "evidence" in text and "pfn" in text and "0x1fd3d" in text and "39" in text


def test_tree_view_nests_by_depth():
    @dataclass
    class N:
        depth: int
        node: int = hex_field()

    text = draw(Output("xa --nodes", "xa-node", [N(0, 0x10), N(1, 0x20), N(1, 0x30)],
                       layout="tree"))
    lines = [line for line in text.splitlines() if "node=" in line]
    assert len(lines) == 3
    assert lines[0].index("node=") < lines[1].index("node=") == lines[2].index("node=")


def test_empty_output_says_so_and_notes_follow():
    out = Output("vma 1", "vma", notes=["pid 1 is a kernel thread"], unreadable=["x"])
    text = draw(out)
    assert "no vma records" in text and "note: pid 1 is a kernel thread" in text
    assert "unreadable: x" in text


def test_json_is_the_schema_with_plain_values():
    out = Output("vma 41", "vma", [Row(41, "p\x1b", 16)], status=1)
    doc = json.loads(to_json(out))
    assert doc["schema"] == SCHEMA and doc["kind"] == "vma" and doc["status"] == 1
    assert doc["records"] == [{"pid": 41, "comm": "p\x1b", "address": 16, "file": None,
                               "flags": [], "hidden": 0}]
    assert "\x1b" not in to_json(out)  # ASCII with escapes
    assert json.loads(to_json(Output("c", "finding", document={"schema": "other"}))) == \
        {"schema": "other"}
