"""Run checks in isolation: a check that raises or runs past its deadline is
recorded with what it had, and the rest go on."""

from __future__ import annotations

import signal
import threading
import time
import traceback
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

from .base import Check, all_checks
from ..analysis.session import Session
from ..report.findings import CheckResult
from ..kernel.probe import one_line

#: Seconds one check may run by default.  A full scan of a 16 GiB dump takes
#: about a second; a check still running after this is caught in a loop.
CHECK_TIMEOUT = 600.0


class Deadline(BaseException):
    """Raised inside a check at its deadline.  A BaseException, so that the
    checks' own ``except Exception`` guards do not swallow it."""


def exit_code(results: Sequence[CheckResult]) -> int:
    """2 if a check failed or timed out; else 1 if anything was found; else 2
    if a check could not read everything (a partial result is never clean);
    else 0."""
    if any(r.failed or r.timed_out for r in results):
        return 2
    if any(r.findings for r in results):
        return 1
    return 2 if any(r.unreadable for r in results) else 0


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`Deadline` in this thread after ``seconds`` (a timer
    signal; only in the main thread, elsewhere no deadline applies)."""
    if (seconds is None or threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "setitimer")):
        yield
        return

    def fire(signum, frame):
        raise Deadline()

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_checks(ctx: Session, names: Iterable[str] | None = None,
               progress: Callable[[str], None] | None = None,
               check_timeout: float | None = CHECK_TIMEOUT,
               run_timeout: float | None = None) -> list[CheckResult]:
    """Run the named checks (all by default) and return their results in order.

    Each check stops at ``check_timeout`` seconds, and the run at
    ``run_timeout``; a check stopped so keeps what it found, with status
    "timed-out", and the checks after a run timeout are reported as timed
    out without running.
    """
    specs = all_checks()
    chosen = list(names) if names else list(specs)
    run_end = None if run_timeout is None else time.monotonic() + run_timeout
    results = []
    for name in chosen:
        spec: Check = specs[name]
        result = CheckResult(name)
        start = time.monotonic()
        limit = check_timeout
        if run_end is not None:
            left = run_end - start
            limit = left if limit is None else min(limit, left)
        if limit is not None and limit <= 0:
            result.timed_out = True
            result.notes.append("not run: the run's --timeout was used up")
            results.append(result)
            continue
        if progress:
            progress(name)
        try:
            with deadline(limit):
                result = spec.run(ctx, result)
        except Deadline:
            result.timed_out = True
            result.notes.append(f"stopped after {limit:.0f} s; the findings above are what it "
                                f"had found by then")
        except Exception as e:  # noqa: BLE001 - isolation is the point
            result.error = f"{type(e).__name__}: {one_line(e)}"
            result.traceback = traceback.format_exc()
        try:
            result.unreadable = [ctx.explain(line) for line in result.unreadable]
        except Exception:  # noqa: BLE001 - an explanation never costs the result
            pass
        result.seconds = time.monotonic() - start
        results.append(result)
    return results
