"""The exact findings a fixture guest must produce, from its truth records.

Every truth record a scenario wrote names the finding it stands for: check,
rule and the identity of the object (pid and address, pfn, or inode and
index).  :func:`expected_findings` turns a truth list into that set;
:func:`finding_key` turns a finding into the same shape.  Tests compare the
two sets for equality: nothing missing, nothing extra.

Controls (``{"kind": "control", ...}``) are the other half: no finding
above info may be about a control's pid and address, or its pfn.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

#: pagetable_corrupt "how" -> the rule that must report it
CORRUPTION_RULES = {
    "pte-garbage": "bad-swap-entry",
    "pte-swap-nodev": "bad-swap-entry",
    "pmd-swap": "bad-swap-entry",
    "pte-reserved": "reserved-bits",
    "pte-beyond": "outside-ram",
    "pte-free": "free-page",
    "pte-slab": "slab-page",
    "pte-pagetable": "page-table-page",
    "pte-refcount0": "refcount-zero",
    "pte-outside": "outside-vma",
    "pmd-beyond": "bad-table-entry",
}

Key = tuple


def finding_key(check: str, rule: str, ev: dict[str, Any]) -> Key:
    """The identity of one finding, in the shape of :func:`expected_findings`."""
    if check == "hwpoison-pagecache":
        return (check, rule, ev["pfn"])
    if check == "dax-entries" and rule == "locked-with-waiters":
        return (check, rule, ev["mapping_inode"], ev["index"])
    if check == "mapping-mismatch" and rule == "slot":
        return (check, rule, ev["mapping_inode"], ev["slot_index"])
    if check == "fault-retry" or (check, rule) == ("dax-entries", "lost-wakeup"):
        return (check, rule, ev["pid"])
    if check == "pagetable-sanity":
        return (check, rule, ev["pid"], ev.get("address"), ev.get("level", 0))
    return (check, rule, ev["pid"], ev.get("address"))


def expected_findings(truth: Iterable[dict[str, Any]],
                      still_free: Callable[[int], bool] | None = None) -> set[Key]:
    """Every finding above info that the truth records call for.

    :param still_free: whether a pfn is still free in the dump (stock drgn);
        a "pte-free" corruption whose freed page was reused since is then not
        expected as "free-page".  None (live): such entries are left out and
        :func:`unstable_keys` names them.
    """
    out: set[Key] = set()
    for t in truth:
        kind = t["kind"]
        if kind == "mapping_mismatch":
            out.add(("mapping-mismatch", t.get("mismatch", "other-file"), t["pid"], t["address"]))
        elif kind == "pagecache_slot":
            out.add(("mapping-mismatch", "slot", t["inode"], t["index"]))
        elif kind == "fault_retry":
            rule = "stuck-no-progress" if t.get("page") == "own" else "refused-loop"
            out.add(("fault-retry", rule, t["pid"]))
        elif kind == "refused_page":
            out.add(("fault-retry", "refused-no-storm", t["pid"]))
        elif kind == "hwpoison":
            if t["in_page_cache"]:
                out.add(("hwpoison-pagecache", "in-page-cache", t["pfn"]))
            elif any(m.get("pagemap") == "present" for m in t.get("mapped_by", [])):
                out.add(("hwpoison-pagecache", "mapped", t["pfn"]))
        elif kind == "dax_entry":
            if t["locked"] and t["waiter_pids"]:
                out.add(("dax-entries", "locked-with-waiters", t["inode"], t["index"]))
        elif kind == "dax_waiter":
            if t.get("entry_locked") is False:
                out.add(("dax-entries", "lost-wakeup", t["pid"]))
        elif kind == "pagetable_corrupt":
            rule = CORRUPTION_RULES[t["how"]]
            if t["how"] == "pte-free" and (still_free is None or not still_free(t["pfn"])):
                continue
            out.add(("pagetable-sanity", rule, t["pid"], t["address"], t["level"]))
    return out


def unstable_keys(truth: Iterable[dict[str, Any]]) -> set[tuple[int, int]]:
    """(pid, address) of truth whose finding may legitimately differ: a
    freed page that the kernel may have handed out again."""
    return {(t["pid"], t["address"]) for t in truth
            if t["kind"] == "pagetable_corrupt" and t["how"] == "pte-free"}


def controls(truth: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in truth if t["kind"] == "control"] + \
        [{"what": "busy_writer", **t} for t in truth if t["kind"] == "busy_writer"]


def about_control(ev: dict[str, Any], control: dict[str, Any], page_shift: int = 12) -> bool:
    """Whether a finding's evidence is about ``control``'s task and address
    (any address of the task when the control names none), or its pfn."""
    if control.get("pfn") is not None and ev.get("pfn") == control["pfn"]:
        return True
    if ev.get("pid") != control["pid"]:
        return False
    address = control.get("address")
    if address is None or ev.get("address") is None:
        return True
    size = ev.get("size") or (1 << page_shift)
    return ev["address"] <= address < ev["address"] + size
