"""The versioned JSON document of a check run (docs/check-output.schema.json)."""

from __future__ import annotations

import json
from typing import Any, Sequence

from .. import __version__
from .findings import CheckResult

SCHEMA = "drgn-mmtools/check/2"


def document(results: Sequence[CheckResult], target: dict[str, Any], exit_code: int) -> dict:
    """The whole run as plain JSON values."""
    return {
        "schema": SCHEMA,
        "tool": {"name": "drgn-mmtools", "version": __version__},
        "target": target,
        "exit_code": exit_code,
        "findings_total": sum(len(r.findings) for r in results),
        "checks": [r.to_json() for r in results],
    }


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=True)
