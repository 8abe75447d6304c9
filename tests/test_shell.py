"""The shell on every shipped dump: scripted prompt_toolkit sessions, batch
mode from a pipe and from -c, redirections and exit statuses.  Expected
values come from what each guest recorded (the manifest's truth)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from drgn_mmtools.commands.workspace import Workspace
from drgn_mmtools.frontends.shell import Shell
from drgn_mmtools.target import TargetSpec, open_program

from . import oracle
from .expected import expected_findings, finding_key, unstable_keys
from .manifests import Fixture, all_fixtures, open_dump

FIXTURES = all_fixtures()
BUGS = [f for f in FIXTURES if not f.data["clean"]]
CLEAN = [f for f in FIXTURES if f.data["clean"]]
#: Dumps with a poisoned page still in the page cache (shmem keeps one since
#: 5.16): the commands below start from it.
CACHED_POISON = [f for f in BUGS if any(t["in_page_cache"] for t in f.truth("hwpoison"))]


@lru_cache(maxsize=None)
def program(manifest: Path):
    fx = Fixture(manifest)
    spec = TargetSpec(core=fx.dump, vmlinux=fx.vmlinux, modules=fx.modules)
    return open_program(spec), spec


def session(fx: Fixture, lines: list[str]) -> tuple[list[dict], str, int]:
    """Type ``lines`` at the prompt (each --format json); returns the JSON
    documents printed, stderr, and the shell's status."""
    prog, spec = program(fx.path)
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(Workspace.open(prog, spec), console=Console(file=out, width=200),
                  err_console=Console(file=err, width=200))
    with create_pipe_input() as pipe:
        for line in lines:
            pipe.send_text(line + "\r")
        pipe.close()
        status = shell.interact(input=pipe, output=DummyOutput(), history=False)
    docs, text, pos = [], out.getvalue(), 0
    decoder = json.JSONDecoder()
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)
    return docs, err.getvalue(), status


@pytest.mark.parametrize("fx", BUGS, ids=[f.id for f in BUGS])
def test_page_of_each_poisoned_pfn(fx: Fixture):
    truth = fx.truth("hwpoison")
    docs, err, _ = session(fx, [f"page {t['pfn']:#x} --format json" for t in truth])
    assert not err, err
    assert len(docs) == len(truth)
    for t, doc in zip(truth, docs):
        (rec,) = doc["records"]
        assert rec["pfn"] == t["pfn"] and "PG_hwpoison" in rec["flags"], rec
        if t["in_page_cache"]:
            assert (rec["file"], rec["inode"], rec["index"], rec["in_page_cache"]) == \
                (t["file"], t["inode"], t["index"], True)
        seen = {(m["pid"], m["address"]) for m in rec["mapped_by"]}
        for m in t["mapped_by"]:
            if m["pagemap"] in ("present", "swap"):
                assert (m["pid"], m["address"]) in seen, (m, rec["mapped_by"])


@pytest.mark.parametrize("fx", BUGS, ids=[f.id for f in BUGS])
def test_dax_shows_the_locked_entry_and_its_waiter(fx: Fixture):
    waiters = [w for w in fx.truth("dax_waiter") if w["entry_locked"]]
    assert waiters
    docs, err, _ = session(fx, [f"dax {w['file']} --format json" for w in waiters])
    assert not err, err
    for w, doc in zip(waiters, docs):
        (rec,) = [r for r in doc["records"] if r["index"] <= w["index"] < r["index"] +
                  (1 << r["order"])]
        assert rec["locked"] is True
        assert f"{w['pid']} ({w['comm']})" in rec["waiters"]
    entries = {(t["file"], t["index"]): t for t in fx.truth("dax_entry")}
    for doc in docs:
        for rec in doc["records"]:
            t = entries.get((doc["title"].split(" of ")[1].split(" (")[0], rec["index"]))
            if t is not None:
                assert (rec["locked"], rec["pmd"], rec["zero"], rec["order"]) == \
                    (t["locked"], t["pmd"], t["zero"], t["order"])


@pytest.mark.parametrize("fx", BUGS, ids=[f.id for f in BUGS])
def test_show_names_both_files_of_the_pcc_page_and_drills_down(fx: Fixture):
    pcc = [t for t in fx.truth("mapping_mismatch") if t.get("mismatch", "other-file") ==
           "other-file"]
    docs, err, _ = session(fx, ["findings --rule other-file --format json"])
    numbers = [r["n"] for r in docs[0]["records"]]
    assert len(numbers) == len(pcc)
    lines = [f"show {n} --format json" for n in numbers]
    lines += [f"pte {t['pid']} {t['address']:#x} --format json" for t in pcc]
    docs, err, _ = session(fx, lines)
    assert not err, err
    shown = {(d["records"][0]["evidence"]["pid"], d["records"][0]["evidence"]["address"]):
             d["records"][0] for d in docs[:len(numbers)]}
    for t, walk in zip(pcc, docs[len(numbers):]):
        rec = shown[(t["pid"], t["address"])]
        ev = rec["evidence"]
        assert (ev["vma_file"], ev["page_file"], ev["pfn"]) == \
            (t["vma_file"], t["page_file"], t["pfn"])
        if "page_inode" in t:
            assert ev["page_inode"] == t["page_inode"]
        assert f"page {t['pfn']:#x}" in rec["next"] and f"stack {t['pid']}" in rec["next"]
        leaf = walk["records"][-1]
        assert leaf["kind"] == "leaf" and leaf["phys"] >> 12 == t["pfn"], walk["records"]
        assert [r["level"] for r in walk["records"]][-1] == "pte"


@pytest.mark.parametrize("fx", BUGS, ids=[f.id for f in BUGS])
def test_structured_pipes(fx: Fixture):
    docs, err, _ = session(fx, ["findings --check hwpoison-pagecache | page --format json",
                                "tasks --stuck | vma --format json",
                                "findings --check dax-entries | stack --format json"])
    assert not err, err
    reachable = {t["pfn"] for t in fx.truth("hwpoison") if t["in_page_cache"] or any(
        m["pagemap"] == "present" for m in t["mapped_by"])}
    assert docs[0]["kind"] == "page"
    assert {r["pfn"] for r in docs[0]["records"]} == reachable
    assert all("PG_hwpoison" in r["flags"] for r in docs[0]["records"])
    files = {(r["pid"], r["file"]) for r in docs[1]["records"]}
    for t in fx.truth("mapping_mismatch"):
        if any(f["pid"] == t["pid"] for f in fx.truth("fault_retry")):
            assert (t["pid"], t["vma_file"]) in files
    frames = {(r["pid"], (r["function"] or "").split("+")[0]) for r in docs[2]["records"]}
    for w in fx.truth("dax_waiter"):
        assert (w["pid"], w["wchan"]) in frames, w


@pytest.mark.parametrize("fx", FIXTURES, ids=[f.id for f in FIXTURES])
def test_findings_match_the_scenarios_and_status_follows_the_check_rule(fx: Fixture):
    docs, err, status = session(fx, ["check --format json"])
    assert not err, err
    truth = fx.data["truth"]
    prog = open_dump(fx.path)
    blocks = oracle.free_blocks(prog)
    want = expected_findings(truth, lambda pfn: any(s <= pfn < e for s, e in blocks))
    unstable = unstable_keys(truth)
    got = {finding_key(c["check"], f["rule"], f["evidence"]) for c in docs[0]["checks"]
           for f in c["findings"]}
    got = {k for k in got if not (k[0] == "pagetable-sanity" and (k[2], k[3]) in unstable
                                  and k not in want)}
    assert got == want
    assert status == (1 if want else 0) and docs[0]["exit_code"] == status


COMMAND_SCHEMA = json.loads((Path(__file__).parent.parent / "docs" /
                             "command-output.schema.json").read_text())


@pytest.mark.parametrize("fx", [CACHED_POISON[0], CACHED_POISON[-1]],
                         ids=[CACHED_POISON[0].id, CACHED_POISON[-1].id])
def test_every_command_prints_json_that_follows_the_schema(fx: Fixture):
    from .schema import validate

    (hw,) = [t for t in fx.truth("hwpoison") if t["in_page_cache"]]
    (mm,) = [t for t in fx.truth("mapping_mismatch") if t["comm"] == "pcc_retry"]
    lines = [f"page {hw['pfn']:#x}", f"xa {hw['file']}", f"xa {hw['file']} --nodes",
             "dax /mnt/dax/small", f"vma {mm['pid']}", f"pte {mm['pid']} {mm['address']:#x}",
             f"inode {hw['file']}", "tasks", f"stack {mm['pid']}", "findings", "records",
             "show 1", "findings --statuses"]
    docs, err, _ = session(fx, [f"{line} --format json" for line in lines])
    assert not err, err
    assert len(docs) == len(lines)
    for line, doc in zip(lines, docs):
        validate(doc, COMMAND_SCHEMA)
        assert doc["command"] == f"{line} --format json"
        assert doc["records"], line


def test_completion_offers_what_the_dump_holds():
    """PIDs with comm, and paths from the dump's dentry cache."""
    from drgn_mmtools.frontends.completion import complete

    fx = CACHED_POISON[0]
    prog, spec = program(fx.path)
    shell = Shell(Workspace.open(prog, spec), console=Console(file=io.StringIO()))
    data = shell.completion_data()
    (mm,) = [t for t in fx.truth("mapping_mismatch") if t["comm"] == "pcc_retry"]
    got = {(c.text, c.meta) for c in complete(f"vma {mm['pid']}", data)}
    assert (str(mm["pid"]), mm["comm"]) in got
    (hw,) = [t for t in fx.truth("hwpoison") if t["in_page_cache"]]
    directory, _, name = hw["file"].rpartition("/")
    assert f"{directory}/" in {c.text for c in complete(f"xa {directory[:-1]}", data)}
    assert [c.text for c in complete(f"inode {directory}/{name[:3]}", data)] == [hw["file"]]
    shown = {c.text for c in complete("show ", data)}
    assert shown == {str(n) for n in range(1, len(shell.ws.findings()) + 1)}


def _cli(fx: Fixture, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drgn_mmtools", "shell", "--manifest",
                           str(fx.path), *args], input=stdin, capture_output=True, text=True,
                          timeout=600)


def test_batch_mode_from_a_pipe_and_from_c(tmp_path):
    fx = CACHED_POISON[0]
    (t,) = [t for t in fx.truth("hwpoison") if t["in_page_cache"]]
    target = tmp_path / "page.txt"
    proc = _cli(fx, stdin=f"page {t['pfn']:#x} > {target}\n"
                          f"page {t['pfn']:#x} | grep -c PG_hwpoison\n"
                          f"page {t['pfn']:#x} --format json >> {target}.json\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"  # grep counted one line
    assert t["file"] in target.read_text() and "\x1b" not in target.read_text()
    assert json.loads((tmp_path / "page.txt.json").read_text())["records"][0]["pfn"] == t["pfn"]
    proc = _cli(fx, "-c", f"findings --severity warning; page {t['pfn']:#x}; "
                          f"py hex(prog['init_task'].pid.value_() + {t['pfn']})")
    assert proc.returncode == 1, proc.stderr  # findings listed
    assert "refused-no-storm" in proc.stdout and t["file"] in proc.stdout
    assert f"'{t['pfn']:#x}'" in proc.stdout  # py: init_task's pid is 0
    assert "Traceback" not in proc.stderr


def test_errors_are_one_line_and_make_status_2_without_ending_the_session():
    fx = BUGS[0]
    proc = _cli(fx, "-c", "nosuch; page 0xffffffffffff0000; vma 999999; pte 1; page")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 5, proc.stderr
    assert all(line.startswith("error: ") for line in lines), proc.stderr
    assert "nosuch: command not found" in lines[0] and "no such task" in lines[2]
    assert "Traceback" not in proc.stderr


def test_clean_dump_is_status_0():
    fx = CLEAN[0]
    proc = _cli(fx, "-c", "findings; dax /mnt/dax/small")
    assert proc.returncode == 0, proc.stderr
    assert "0 findings" in proc.stdout


def test_help_lists_every_command_with_an_example():
    from drgn_mmtools.commands import COMMANDS
    fx = BUGS[0]
    proc = _cli(fx, "-c", "help; " + "; ".join(f"help {c}" for c in COMMANDS))
    assert proc.returncode == 0, proc.stderr
    for name, info in COMMANDS.items():
        assert name in proc.stdout
        assert info.examples, name
        assert info.examples[0] in proc.stdout, name
