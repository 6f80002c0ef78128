"""bcc suite fixtures: the tool variant, a runner bound to this test's VM, and traffic ends.

Every tool test runs once per variant ("libbpf": libbpf-tools CO-RE, "python": bcc's
*-bpfcc). A variant that cannot run on the kernel is skipped with the precise reason
(suites.bcc.lib.tools.problem). The python variant compiles with clang inside the TCG guest for
0.3-11 minutes per tool start (debian-6.1, growing with the host's load; 24-40 min for
its 7 cases), so its cases are `slow` (nightly; --nightly runs them).
Start-up times of every tool run go to <knit-artifacts>/bcc-output/startup.jsonl (beside
each run's raw output and .meta.json) and to the JUnit properties of the test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from knit.kernels import Kernel
from knit.topology import Topology, pair
from knit.vm import VM
from suites.bcc.lib.net import Bcc


@pytest.fixture(params=["libbpf", pytest.param("python", marks=pytest.mark.slow)])
def variant(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def bcc(request: pytest.FixtureRequest, vm: VM, knit_kernel: Kernel, variant: str) -> Bcc:
    out = Path(request.config.getoption("knit_artifacts")).resolve() / "bcc-output"
    return Bcc(vm, knit_kernel, variant, out, request.node)


@pytest.fixture
def net(topo: Callable[[Topology], Topology]) -> Topology:
    """ns1 <-> ns2 over one veth: 10.0.1.1-2/24 and dead:beef:1::1-2/64."""
    return topo(pair(paths=1))


# -- start-up times in the terminal summary (the issue asks for them to be reported) ------

_STARTUPS: list[tuple[str, float, str]] = []  # (tool variant, seconds, test id)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":  # the controller sees the workers' reports here too
        _STARTUPS.extend((name.split(" ", 1)[1], secs, report.nodeid)
                         for name, secs in report.user_properties
                         if name.startswith("bcc_startup_s "))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _STARTUPS:
        return
    terminalreporter.section("bcc tool start-up times (seconds until attached)")
    for what, secs, nodeid in sorted(_STARTUPS):
        terminalreporter.write_line(f"{secs:8.1f}  {what:18}  {nodeid}")
