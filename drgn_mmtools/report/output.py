"""What a command returns: typed records, rendered later by whoever asked.

A command never prints.  It returns an :class:`Output`: a list of records
(dataclass instances, each of one ``kind``) with notes and what could not be
read.  Records flow between commands in a pipeline (``findings | page``);
the last stage's output is rendered once, as a rich table, a detail view or
a tree on a terminal (:mod:`.views`), or as JSON (:func:`to_json`).

Record fields say how they are shown through their metadata:
``hex_field()`` for addresses, pfns and raw values; ``detail`` for fields
left out of tables and shown in detail views only.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ("Output", "hex_field", "detail_field", "record_dict", "to_json", "SCHEMA")

SCHEMA = "drgn-mmtools/command/1"


def hex_field(default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A field shown in hexadecimal (addresses, pfns, raw entries)."""
    if default is not dataclasses.MISSING:
        kw["default"] = default
    return field(metadata={"fmt": "hex", **kw.pop("metadata", {})}, **kw)


def detail_field(default: Any = dataclasses.MISSING, fmt: str = "", **kw: Any) -> Any:
    """A field left out of tables and shown in detail views and JSON."""
    if default is not dataclasses.MISSING:
        kw["default"] = default
    return field(metadata={"fmt": fmt, "detail": True}, **kw)


@dataclass
class Output:
    """One command's result."""

    command: str  #: the command line that made it
    kind: str  #: what each record is: "page", "finding", "vma", "task", "pte", ...
    records: list[Any] = field(default_factory=list)
    title: str = ""
    #: "table" (one row per record), "detail" (one block per record) or
    #: "tree" (records carry ``depth``)
    layout: str = "table"
    notes: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  #: what could not be read
    #: what this output says about the target, as the check exit status
    #: does: 0 nothing found, 1 findings, 2 partial or failed
    status: int = 0
    #: a whole document that stands for this output in JSON (the checks
    #: write their ``drgn-mmtools/check/2`` report), else None
    document: dict[str, Any] | None = None


def record_dict(record: Any) -> dict[str, Any]:
    """A record as plain JSON values."""
    if dataclasses.is_dataclass(record):
        return dataclasses.asdict(record)
    if hasattr(record, "_asdict"):
        return dict(record._asdict())
    if isinstance(record, dict):
        return dict(record)
    return {"value": record}


def to_json(output: Output) -> str:
    """The output as one JSON document (``--format json``)."""
    if output.document is not None:
        return json.dumps(output.document, indent=2, ensure_ascii=True, default=str)
    doc = {"schema": SCHEMA, "command": output.command, "kind": output.kind,
           "title": output.title, "status": output.status,
           "records": [record_dict(r) for r in output.records],
           "notes": output.notes, "unreadable": output.unreadable}
    return json.dumps(doc, indent=2, ensure_ascii=True, default=str)
