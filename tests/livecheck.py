"""Compare a run of drgn-mmtools on a guest (live, or a dump taken at test
time) with what the guest recorded."""

from __future__ import annotations

from typing import Any


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

    (mm,) = [t for t in truth if t["kind"] == "mapping_mismatch"]
    (ev,) = [e for e in findings("mapping-mismatch") if e["pid"] == mm["pid"]]
    assert (ev["address"], ev["pfn"], ev["page_inode"], ev["vma_file"]) == \
        (mm["address"], mm["pfn"], mm["page_inode"], mm["vma_file"])

    (fr,) = [t for t in truth if t["kind"] == "fault_retry"]
    (f,) = [f for f in doc_checks["fault-retry"]["findings"] if f["evidence"]["pid"] == fr["pid"]]
    ev = f["evidence"]
    assert f["severity"] == "error", f["summary"]
    assert ev["address"] == fr["address"]
    assert ev["page_mkwrite_handler"] == "pcc_retry_page_mkwrite [mmfixture]"
    assert ev["refused_pages"] >= 1 and ev["progress"] == []
    if live:
        assert ev["fault_rate"] > 0
        assert all(b > a for a, b in zip(ev["fault_samples"], ev["fault_samples"][1:]))
    else:
        assert ev["storm"] is True
    (bw,) = [t for t in truth if t["kind"] == "busy_writer"]
    assert not [e for e in findings("fault-retry") if e["pid"] == bw["pid"]], \
        "the busy writer's faults complete: it is no fault-retry finding"

    poisoned = {e["pfn"]: e for e in findings("hwpoison-pagecache")}
    for t in (t for t in truth if t["kind"] == "hwpoison"):
        assert poisoned[t["pfn"]]["in_page_cache"] == t["in_page_cache"]

    (locked,) = [t for t in truth if t["kind"] == "dax_entry" and t["locked"]]
    (ev,) = [e for e in findings("dax-entries") if e["locked"]]
    assert (ev["inode"], ev["index"], ev["waiter_pids"]) == \
        (locked["inode"], locked["index"], locked["waiter_pids"])
