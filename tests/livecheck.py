"""Compare a run of drgn-mmtools on a guest (live, or a dump taken at test
time) with what the guest recorded."""

from __future__ import annotations

from typing import Any

from .expected import about_control, controls, expected_findings, finding_key, unstable_keys


def assert_guest_findings(doc_checks: dict[str, dict[str, Any]], truth: list[dict[str, Any]],
                          live: bool = True) -> None:
    """The findings on a bugs guest match its truth records.

    :param doc_checks: check name -> that check's JSON result.
    :param live: the run was live (fault-retry sampled counters) rather than on a dump.
    """
    for name, check in doc_checks.items():
        # Live memory changes under the reader: a read may fail (partial).
        allowed = ("ok", "partial") if live else ("ok",)
        assert check["status"] in allowed, (name, check["status"], check["error"],
                                            check["unreadable"])

    def findings(name):
        return [f["evidence"] for f in doc_checks[name]["findings"]]

    # Exactly the findings the truth calls for, and none about a control.
    got = {finding_key(name, f["rule"], f["evidence"])
           for name, c in doc_checks.items() for f in c["findings"]}
    unstable = unstable_keys(truth)
    got = {k for k in got if not (k[0] == "pagetable-sanity" and (k[2], k[3]) in unstable)}
    want = expected_findings(truth)
    extra, missed = sorted(got - want, key=str), sorted(want - got, key=str)
    assert not extra, f"findings the truth does not explain: {extra}"
    assert not missed, f"truth the tool missed: {missed}"
    for c in controls(truth):
        for name, check in doc_checks.items():
            for f in check["findings"]:
                assert not about_control(f["evidence"], c), (c["what"], name, f["summary"])

    for fr in (t for t in truth if t["kind"] == "fault_retry"):
        (f,) = [f for f in doc_checks["fault-retry"]["findings"]
                if f["evidence"]["pid"] == fr["pid"]]
        ev = f["evidence"]
        assert f["severity"] == "error", f["summary"]
        if fr.get("page") == "own":
            assert ev["page_mkwrite_handler"] == "pccfs_frozen_page_mkwrite [mmfixture]"
            assert ev["stuck_pages"] >= 1 and ev["refused_pages"] == 0
        else:
            assert ev["address"] == fr["address"]
            assert ev["page_mkwrite_handler"] == "pcc_retry_page_mkwrite [mmfixture]"
            assert ev["refused_pages"] >= 1
        assert ev["progress"] == []
        if live:
            assert ev["fault_rate"] > 0
            assert all(b > a for a, b in zip(ev["fault_samples"], ev["fault_samples"][1:]))
        else:
            assert ev["storm"] is True

    for mm in (t for t in truth if t["kind"] == "mapping_mismatch"):
        (ev,) = [e for e in findings("mapping-mismatch")
                 if (e.get("pid"), e.get("address")) == (mm["pid"], mm["address"])]
        assert (ev["pfn"], ev["vma_file"]) == (mm["pfn"], mm["vma_file"])

    poisoned = {e["pfn"]: e for e in findings("hwpoison-pagecache")}
    for t in (t for t in truth if t["kind"] == "hwpoison" and t["in_page_cache"]):
        assert poisoned[t["pfn"]]["page_inode"] == t["inode"]
