"""The `mp` fixture: see suites/mptcp/lib/session.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from knit.vm import VM
from suites.mptcp.lib.across import Across
from suites.mptcp.lib.session import Mptcp


@pytest.fixture
def mp(request: pytest.FixtureRequest, vm: VM, topo: Any, artifacts_dir: Path,
       knit_kernel: Any) -> Mptcp:
    """Build, observe (nstat, pcap, monitor) and transfer; artifacts in artifacts_dir."""
    return Mptcp(vm, topo, artifacts_dir, f"{knit_kernel.name} ({knit_kernel.version})",
                 request.node)


@pytest.fixture
def across(vm: VM, peer: VM, topo: Any, artifacts_dir: Path, knit_kernel: Any) -> Across:
    """MPTCP between two kernels: ns1 on the test's VM, ns2 on the peer (multi_vm)."""
    kernels = f"{knit_kernel.version} / peer {peer.cfg.kernel.version}"
    return Across(vm, peer, topo, artifacts_dir, kernels)
