"""Options of the suites that must exist before collection: pytest parses the command line
once, before it reads the conftest of a suite folder that is not named on it, so an option
registered in suites/<x>/conftest.py would break a plain `pytest` from the root."""

from __future__ import annotations

import pytest

TOA_IMPLS = ("kmod", "bpf")  # suites.toa.lib.impl.IMPLS


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("knit")
    g.addoption("--toa-src", metavar="PATH", default=None,
                help="TOA module source dir to build and test instead of kmod/toa (a vendor's)")
    g.addoption("--toa-reference-src", metavar="PATH", default=None,
                help="like --toa-src, for a modified copy of kmod/toa (knit mutate's "
                     "mutants): kmod/toa's counters and log lines are still required")
    g.addoption("--toa-bpf-src", metavar="FILE", default=None,
                help="BPF TOA source to compile and test instead of bpf/toa/toa.bpf.c")
    g.addoption("--tipc-ko", metavar="PATH", default=None,
                help="suites/tipc: insmod this tipc.ko (e.g. a knit mutate mutant) instead "
                     "of the kernel's own tipc module; its build id is checked in the guest")
    g.addoption("--toa-impl", choices=(*TOA_IMPLS, "all"), default="all",
                help="TOA implementation(s) suites/toa runs every case against: the kernel "
                     "module (kmod/toa), the BPF programs (bpf/toa), or both (default: all)")
    g.addoption("--selftest-capture", action="store_true",
                help="suites/upstream: run scripts that take -c (mptcp_join, mptcp_connect, "
                     "simult_flows) with it; their pcaps land in the test's artifacts")
