"""A mutant's verdict from the outcomes of its test run (results.json records).

    killed    a test that passed on the unmutated base failed or errored, or the kernel
              logged a fault for it (health check), or it hit a known issue
    survived  every such test passed (flaky counts as passed: it failed once with a clean
              kernel log, which is what --flake-retries tolerates)
    invalid   the mutant could not be judged: it did not build, or boot or load (every
              failure says so: INVALID_RX), or nothing ran at all

Tests that did not pass on the base are left out of the mutant's run (deselected), so a
suite's own failure never counts as a kill.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from knit.bisect import judged

KILLED, SURVIVED, INVALID = "killed", "survived", "invalid"
PASSING = {"passed", "flaky", "xfailed"}
KILLING = {"failed", "error", "xpassed"}
# Failures that mean the mutant never ran: the guest did not boot (knit.vm), the mutant
# tipc.ko did not load (suites/tipc/conftest.py), the verifier refused the BPF object.
INVALID_RX = re.compile(r"did not reach the agent|--tipc-ko \S+ did not load|"
                        r"bpftool prog loadall \S+ .*exited")


def outcome(test: dict) -> str:
    """One results.json record as the kill matrix shows it: a kernel fault or a known
    issue is a failure of the mutant (knit.bisect.judged)."""
    return judged(test)


def classify(tests: Iterable[dict]) -> tuple[str, list[str]]:
    """(verdict, the tests that killed it) for one mutant's run."""
    tests = list(tests)
    cells = {t["nodeid"]: outcome(t) for t in tests}
    killers = sorted(n for n, o in cells.items() if o in KILLING)
    if not tests:
        return INVALID, []
    unjudged = [t for t in tests if t["nodeid"] in killers
                and INVALID_RX.search(t.get("message") or "")]
    if killers and len(unjudged) == len(killers):
        return INVALID, []   # every failure is the mutant not running at all
    if killers:
        return KILLED, killers
    if not set(cells.values()) & PASSING:
        return INVALID, []   # only skips: nothing judged it
    return SURVIVED, []


def passing(tests: Iterable[dict]) -> list[str]:
    """Node ids that passed on the base: the only ones a mutant is judged by."""
    return sorted(t["nodeid"] for t in tests if outcome(t) in PASSING)
