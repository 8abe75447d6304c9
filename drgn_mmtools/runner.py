"""Run checks in isolation: a check that raises is recorded, the rest go on."""

from __future__ import annotations

import time
import traceback
from typing import Callable, Iterable, Sequence

from .checks import CheckSpec, all_checks
from .context import Context
from .findings import CheckResult


def exit_code(results: Sequence[CheckResult]) -> int:
    """2 if a check failed, else 1 if anything was found, else 0."""
    if any(r.failed for r in results):
        return 2
    return 1 if any(r.findings for r in results) else 0


def run_checks(ctx: Context, names: Iterable[str] | None = None,
               progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Run the named checks (all by default) and return their results in order."""
    specs = all_checks()
    chosen = list(names) if names else list(specs)
    results = []
    for name in chosen:
        spec: CheckSpec = specs[name]
        if progress:
            progress(name)
        start = time.monotonic()
        try:
            result = spec.run(ctx)
        except Exception as e:  # noqa: BLE001 - isolation is the point
            result = CheckResult(name, error=f"{type(e).__name__}: {' '.join(str(e).split())}",
                                 traceback=traceback.format_exc())
        result.seconds = time.monotonic() - start
        results.append(result)
    return results
