"""The rule table against the fixtures: every rule fires where the scenarios
put its bug, stays quiet on the legitimate designs beside them, and nothing
else is reported.

Expected findings come from the truth records the scenarios wrote inside
each guest (tests/expected.py), never from the tool.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from drgn_mmtools.checks.rules import SEVERITY_ORDER, all_rules, markdown_table

from . import oracle
from .expected import about_control, controls, expected_findings, finding_key, unstable_keys
from .manifests import Fixture, all_fixtures, open_dump
from .schema import SCHEMA
from .tool import results

FIXTURES = all_fixtures()
BUGS = [f for f in FIXTURES if not f.data["clean"]]
ROOT = Path(__file__).resolve().parent.parent


def ids(fxs):
    return [f.id for f in fxs]


def test_rules_are_well_formed():
    for check, rules in all_rules().items():
        names = [r.name for r in rules]
        assert rules, f"{check} documents no rules"
        assert len(names) == len(set(names)), check
        for r in rules:
            assert r.severity in SEVERITY_ORDER, r
            assert re.fullmatch(r"[a-z0-9-]+", r.name), r
            assert r.fires, f"{check}/{r.name} names no fixture case that fires it"
            assert not r.transient or r.severity == "info", r
            if r.severity != "info":
                assert r.legit, f"{check}/{r.name} names no legitimate case that must not fire it"


def test_readme_carries_the_rule_table():
    assert markdown_table() in (ROOT / "README.md").read_text(), \
        "README.md's rule table is stale: paste python3 -m drgn_mmtools.checks.rules"


def _still_free(fx: Fixture):
    prog = open_dump(fx.path)
    blocks = oracle.free_blocks(prog)
    return lambda pfn: any(s <= pfn < e for s, e in blocks)


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_exact_findings(fx: Fixture):
    """The findings of every check are exactly those the truth calls for."""
    truth = fx.data["truth"]
    want = expected_findings(truth, _still_free(fx))
    got = set()
    rules = all_rules()
    for name, r in results(fx.path).items():
        assert not r.failed, r.traceback
        for f in r.findings:
            assert f.rule in {x.name for x in rules[name]}, (name, f.rule)
            got.add(finding_key(name, f.rule, f.evidence))
    # A freed page handed out again is no longer "free": what the entry then
    # maps is legitimately something else.
    unstable = unstable_keys(truth)
    got = {k for k in got if not (k[0] == "pagetable-sanity" and (k[2], k[3]) in unstable
                                  and k not in want)}
    extra, missed = sorted(got - want, key=str), sorted(want - got, key=str)
    assert not extra, f"findings the truth does not explain: {extra}"
    assert not missed, f"truth the tool missed: {missed}"


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_controls_get_nothing_above_info(fx: Fixture):
    cs = controls(fx.data["truth"])
    assert cs, "every fixture guest runs the controls"
    whats = {c["what"] for c in cs}
    assert {"udmabuf", "relay", "hugetlbfs", "busy", "busy_writer"} <= whats, whats
    if not fx.data["clean"]:
        assert "poison-isolated" in whats
    for name, r in results(fx.path).items():
        for f in r.findings:
            for c in cs:
                assert not about_control(f.evidence, c), (c["what"], name, f.rule, f.summary)


@pytest.mark.parametrize("arch", sorted({f.data["arch"] for f in BUGS}))
def test_every_rule_fires_on_each_arch(arch):
    """Each rule fires in at least one dump of each arch: a finding for
    error and warning rules, a record for info rules."""
    seen: set[tuple[str, str]] = set()
    for fx in (f for f in BUGS if f.data["arch"] == arch):
        for name, r in results(fx.path).items():
            seen |= {(name, f.rule) for f in r.findings}
            seen |= {(name, rec["rule"]) for rec in r.records if "rule" in rec}
    missing = [(c, r.name) for c, rules in all_rules().items() for r in rules
               if (c, r.name) not in seen and not r.transient]
    assert missing == []


@pytest.mark.parametrize("fx", FIXTURES, ids=ids(FIXTURES))
def test_evidence_keys_are_documented(fx: Fixture):
    documented = set(SCHEMA["properties"]["checks"]["items"]["properties"]["findings"]["items"]
                     ["properties"]["evidence"]["properties"])
    for name, r in results(fx.path).items():
        for f in r.findings:
            undocumented = set(f.evidence) - documented
            assert not undocumented, (name, f.rule, undocumented)
            json.dumps(f.evidence)
