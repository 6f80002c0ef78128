"""TIPC suite fixtures: the tipc module loaded, and ready-made clusters.

TIPC is per network namespace: each netns is one TIPC node whose identity is its netns
name (so link names read ``tipc1:eth1-tipc2:eth1``). Topologies and the `tipc` wrapper
live in suites.tipc.lib.net.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from knit import kbuild
from knit.topology import Topology
from knit.vm import VM
from suites.tipc.lib import parsers as parse
from suites.tipc.lib.net import Tipc, Wired, link, three_on_bridge, two_nodes, two_paths


@dataclass
class Cluster:
    topology: Topology
    nodes: list[str]                 # netns names == TIPC node identities

    def hash(self, ns: str) -> int:
        return parse.node_hash(ns)


# -- fixtures ---------------------------------------------------------------------------

BUILD_ID_NOTE = "/sys/module/tipc/notes/.note.gnu.build-id"


def loaded_build_id(vm: VM) -> str | None:
    """The build id of the tipc module loaded in the guest; None when none is."""
    r = vm.run(["od", "-An", "-v", "-tx1", BUILD_ID_NOTE], check=False)
    return kbuild.note_build_id(bytes.fromhex("".join(r.stdout.split()))) if r.ok else None


def load_tipc(vm: VM, ko: Path | None) -> None:
    """modprobe the kernel's tipc, or (--tipc-ko) put that file in its place: the stock
    module out (tipc_diag first, it depends on it), tipc's dependencies in, the file
    insmod'ed once per VM and kept (resident), and its build id checked in the guest."""
    if ko is None:
        vm.run(["modprobe", "tipc"])
        return
    want = kbuild.build_id(ko)
    if loaded_build_id(vm) == want:
        return
    vm.run(["modprobe", "-r", "tipc_diag"], check=False)
    vm.run(["rmmod", "tipc"], check=False)
    deps = kbuild.modinfo(ko, "depends").split(",")
    vm.run(["modprobe", "-a", *[d for d in deps if d]])
    r = vm.run(["insmod", str(ko)], timeout=vm.scaled(60), check=False)
    if not r.ok:   # knit mutate counts this message as "did not load": invalid, no kill
        pytest.fail(f"--tipc-ko {ko} did not load: {r.stderr.strip()}", pytrace=False)
    vm.resident_modules.add("tipc")
    got = loaded_build_id(vm)
    if got != want:
        pytest.fail(f"--tipc-ko {ko}: the guest's tipc has build id {got}, not the file's "
                    f"{want}: the stock module is still loaded?", pytrace=False)


@pytest.fixture(scope="session")
def tipc_ko(pytestconfig: pytest.Config) -> Path | None:
    """--tipc-ko PATH (a tipc.ko built for the test's kernel), or None for the stock one."""
    ko = pytestconfig.getoption("tipc_ko", default=None)
    if ko and not Path(ko).is_file():
        raise pytest.UsageError(f"--tipc-ko {ko}: no such file (knit mutate builds them)")
    return Path(ko).resolve() if ko else None


@pytest.fixture
def tipc(vm: VM, tipc_ko: Path | None) -> Tipc:
    """Loads the tipc module: Debian's tipc.ko has no net-pf-30 or genl alias, so neither a
    socket(AF_TIPC) nor the tipc tool autoloads it (the RHEL guide's `modprobe tipc`).
    With --tipc-ko, that file instead (load_tipc)."""
    load_tipc(vm, tipc_ko)
    return Tipc(vm)


def _up(tipc: Tipc, vm: VM, devs: dict[str, list[str]],
        links: list[tuple[str, str, str, str]]) -> None:
    """Give each node its identity and eth bearers, then wait for `links` on both ends."""
    for ns, ifnames in devs.items():
        tipc.set_identity(ns, ns)
        for dev in ifnames:
            tipc.enable_eth(ns, dev)
    for ns in devs:
        want = {link(a, ai, b, bi): "up" for a, ai, b, bi in links if a == ns}
        want |= {link(b, bi, a, ai): "up" for a, ai, b, bi in links if b == ns}
        tipc.wait_links(ns, want, vm.scaled(10))


@pytest.fixture
def pair(vm: VM, topo: Callable[[Topology], Topology], tipc: Tipc) -> Cluster:
    """tipc1 <-> tipc2 over one veth, eth bearers enabled, the link up."""
    t = topo(two_nodes())
    _up(tipc, vm, {"tipc1": ["eth1"], "tipc2": ["eth1"]}, [("tipc1", "eth1", "tipc2", "eth1")])
    return Cluster(t, ["tipc1", "tipc2"])


@pytest.fixture
def trio(vm: VM, topo: Callable[[Topology], Topology], tipc: Tipc) -> Cluster:
    """tipc1..3 on one bridge, eth bearers enabled, a full mesh of links up."""
    t = topo(three_on_bridge())
    nodes = ["tipc1", "tipc2", "tipc3"]
    mesh = [(a, "eth1", b, "eth1") for i, a in enumerate(nodes) for b in nodes[i + 1:]]
    _up(tipc, vm, {n: ["eth1"] for n in nodes}, mesh)
    return Cluster(t, nodes)


@pytest.fixture
def dual(vm: VM, topo: Callable[[Topology], Topology], tipc: Tipc) -> Cluster:
    """tipc1 <-> tipc2 over two veth pairs, an eth bearer on each, both links up."""
    t = topo(two_paths(2))
    _up(tipc, vm, {n: ["eth1", "eth2"] for n in ("tipc1", "tipc2")},
        [("tipc1", f"eth{i}", "tipc2", f"eth{i}") for i in (1, 2)])
    return Cluster(t, ["tipc1", "tipc2"])


def _wired(vm: VM, peer: VM, topo: Callable[[Topology], Topology], paths: int,
           ko: Path | None) -> Wired:
    t = topo(two_paths(paths, b_vm="b"))
    w = Wired(t, Tipc(vm), Tipc(peer))
    devs = [f"eth{i}" for i in range(1, paths + 1)]
    for side, ns in ((w.a, "tipc1"), (w.b, "tipc2")):
        load_tipc(side.vm, ko)
        side.set_identity(ns, ns)
        for dev in devs:
            side.enable_eth(ns, dev)
    w.a.wait_links("tipc1", {link("tipc1", d, "tipc2", d): "up" for d in devs}, vm.scaled(10))
    w.b.wait_links("tipc2", {link("tipc2", d, "tipc1", d): "up" for d in devs},
                   peer.scaled(10))
    return w


@pytest.fixture
def wired(vm: VM, peer: VM, topo: Callable[[Topology], Topology],
          tipc_ko: Path | None) -> Wired:
    """tipc1 on the test's VM, tipc2 on the peer VM (--peer-kernel), eth1 a wire between
    them: one eth bearer each, the link up on both ends. Data between them crosses the
    link: the nodes are separate kernels, so tipc_lxc_xmit's shortcut cannot apply."""
    return _wired(vm, peer, topo, 1, tipc_ko)


@pytest.fixture
def wired_dual(vm: VM, peer: VM, topo: Callable[[Topology], Topology],
               tipc_ko: Path | None) -> Wired:
    """`wired` with two wires, eth1 and eth2, an eth bearer and a link on each."""
    return _wired(vm, peer, topo, 2, tipc_ko)
