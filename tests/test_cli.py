"""The pipeline command: exit codes, JSON schema, and bad input.

Bad input must give exit status 2 and exactly one line on stderr, never a
traceback.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from .manifests import VMCORES, Fixture, all_fixtures
from .tool import cli, cli_json

FIXTURES = all_fixtures()
SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "check-output.schema.json").read_text())


def validate(doc, schema, path="$"):
    """A small JSON Schema subset validator (type, required, properties, items, enum)."""
    types = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool,
             "null": type(None), "number": (int, float)}
    allowed = schema.get("type")
    if allowed:
        allowed = allowed if isinstance(allowed, list) else [allowed]
        ok = any(isinstance(doc, types[a]) and not (a in ("integer", "number") and isinstance(doc, bool))
                 for a in allowed)
        assert ok, f"{path}: {doc!r} is not {allowed}"
    if "enum" in schema:
        assert doc in schema["enum"], f"{path}: {doc!r} not in {schema['enum']}"
    if isinstance(doc, dict):
        for key in schema.get("required", []):
            assert key in doc, f"{path}: missing {key}"
        for key, sub in schema.get("properties", {}).items():
            if key in doc:
                validate(doc[key], sub, f"{path}.{key}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            validate(item, schema["items"], f"{path}[{i}]")


@pytest.mark.parametrize("fx", FIXTURES, ids=[f.id for f in FIXTURES])
def test_json_output_follows_the_schema_and_exit_code(fx: Fixture):
    code, doc = cli_json("--manifest", str(fx.path))
    assert code == (0 if fx.data["clean"] else 1)
    assert doc["exit_code"] == code
    validate(doc, SCHEMA)
    assert doc["target"]["arch"] == fx.data["arch"]
    assert doc["target"]["kernel_release"] == fx.data["kernel_release"]
    for check in doc["checks"]:
        for f in check["findings"]:
            for key in ("pfn", "pid", "address", "inode", "index"):
                if f["evidence"].get(key) is not None:
                    assert isinstance(f["evidence"][key], int), (key, f)


def test_one_check_only():
    fx = [f for f in FIXTURES if not f.data["clean"]][0]
    code, doc = cli_json("--manifest", str(fx.path), "--check", "dax-entries")
    assert [c["check"] for c in doc["checks"]] == ["dax-entries"]
    assert code == 1


def test_text_output_escapes_kernel_strings(tmp_path):
    fx = [f for f in FIXTURES if not f.data["clean"]][0]
    proc = cli("check", "--manifest", str(fx.path), "--output", str(tmp_path / "report.txt"))
    assert proc.returncode == 1
    text = (tmp_path / "report.txt").read_text()
    assert "/tmp/pcc/lower" in text and "\x1b" not in text


def one_line_error(proc):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("drgn-mmtools: ")
    return lines[0]


X86 = VMCORES / "x86_64"


def fake_user_core(path: Path) -> None:
    """A minimal x86_64 ELF core with one PT_LOAD: a core, but not a kernel's."""
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 4, 62, 1, 0,
                       64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 6, 4096, 0x400000, 0, 4096, 4096, 4096)
    path.write_bytes(ehdr + phdr + bytes(4096 - 120) + b"\xcc" * 4096)


@pytest.mark.parametrize("case", ["missing", "empty", "directory", "truncated", "header-only",
                                  "user-core", "wrong-arch-vmlinux", "not-a-vmlinux",
                                  "missing-vmlinux", "no-vmlinux"])
def test_bad_input_gives_one_line_and_exit_2(case, tmp_path):
    dump = X86 / "bugs-1" / "vmcore.kdump"
    vmlinux = X86 / "vmlinux.debug"
    if case == "missing":
        args = [str(tmp_path / "nope"), "--vmlinux", str(vmlinux)]
    elif case == "empty":
        (tmp_path / "empty").touch()
        args = [str(tmp_path / "empty"), "--vmlinux", str(vmlinux)]
    elif case == "directory":
        args = [str(tmp_path), "--vmlinux", str(vmlinux)]
    elif case in ("truncated", "header-only"):
        data = dump.read_bytes()
        cut = tmp_path / "cut.kdump"
        cut.write_bytes(data[:len(data) // 3] if case == "truncated" else data[:4096])
        args = [str(cut), "--vmlinux", str(vmlinux)]
    elif case == "user-core":
        fake_user_core(tmp_path / "user.core")
        args = [str(tmp_path / "user.core"), "--vmlinux", str(vmlinux)]
    elif case == "wrong-arch-vmlinux":
        args = [str(dump), "--vmlinux", str(VMCORES / "aarch64" / "vmlinux.debug")]
    elif case == "not-a-vmlinux":
        args = [str(dump), "--vmlinux", str(Path(__file__))]
    elif case == "missing-vmlinux":
        args = [str(dump), "--vmlinux", str(tmp_path / "vmlinux")]
    else:
        args = [str(dump)]  # no --vmlinux, and nothing on this machine matches
    line = one_line_error(cli("check", *args))
    if case == "wrong-arch-vmlinux":
        assert "does not match" in line
