"""bcc suite fixtures: the tool variant, a runner bound to this test's VM, and traffic ends.

Every tool test runs once per variant ("libbpf": libbpf-tools CO-RE, "python": bcc's
*-bpfcc). A variant that cannot run on the kernel is skipped with the precise reason
(bpf.tools.problem). The python variant compiles with clang inside the TCG guest for
minutes per tool start, so its cases are `slow` (nightly; --nightly runs them).
Start-up times of every tool run go to <knit-artifacts>/bcc-output/startup.jsonl (beside
each run's raw output and .meta.json) and to the JUnit properties of the test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bccnet import Bcc

from knit.kernels import Kernel
from knit.topology import Topology, pair
from knit.vm import VM


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
