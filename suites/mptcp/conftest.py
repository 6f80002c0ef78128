"""The `mp` fixture: see suites/mptcp/lib/session.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from knit.vm import VM
from suites.mptcp.lib.session import Mptcp


@pytest.fixture
def mp(request: pytest.FixtureRequest, vm: VM, topo: Any, artifacts_dir: Path,
       knit_kernel: Any) -> Mptcp:
    """Build, observe (nstat, pcap, monitor) and transfer; artifacts in artifacts_dir."""
    return Mptcp(vm, topo, artifacts_dir, f"{knit_kernel.name} ({knit_kernel.version})",
                 request.node)
