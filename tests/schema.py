"""The JSON schema of check reports, and a validator for the subset it uses."""

from __future__ import annotations

import json
from pathlib import Path

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
