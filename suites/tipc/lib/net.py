"""TIPC suite helpers: topologies and a wrapper of iproute2's `tipc` tool (host side).

TIPC is per network namespace: each netns below is one TIPC node whose identity is its
netns name (so link names read ``tipc1:eth1-tipc2:eth1``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from knit.topology import End, Link, Node, Topology
from knit.vm import VM, Result
from knit.wait import wait_until
from suites.tipc.lib import parsers as parse

T = TypeVar("T")
SOCK = "suites.tipc.lib.sock"


# -- topologies ---------------------------------------------------------------------------

def two_nodes(b_vm: str = "a") -> Topology:
    """tipc1 <-> tipc2 over one veth (eth1), 10.0.1.0/24; b_vm="b": tipc2 on the peer VM,
    eth1 a wire between the two VMs."""
    return two_paths(1, b_vm)


def two_paths(paths: int = 2, b_vm: str = "a") -> Topology:
    """tipc1 <-> tipc2 over `paths` veth pairs eth1..ethN, 10.0.i.0/24 (failover, limits);
    b_vm="b": tipc2 on the peer VM, each path a wire."""
    return Topology(nodes=(Node("tipc1"), Node("tipc2", vm=b_vm)), links=tuple(
        Link(End("tipc1", f"eth{i}", (f"10.0.{i}.1/24",)),
             End("tipc2", f"eth{i}", (f"10.0.{i}.2/24",)))
        for i in range(1, paths + 1)))


def three_on_bridge() -> Topology:
    """tipc1..3, each eth1 on bridge br0 of a fourth netns (tipcsw, no TIPC there)."""
    sw = Node("tipcsw", bridges=("br0",))
    return Topology(nodes=(Node("tipc1"), Node("tipc2"), Node("tipc3"), sw), links=tuple(
        Link(End(f"tipc{i}", "eth1", (f"10.0.0.{i}/24",)), End("tipcsw", f"p{i}", master="br0"))
        for i in (1, 2, 3)))


# -- the tipc tool --------------------------------------------------------------------------

class Tipc:
    """iproute2's `tipc` run in a node, its output parsed by suites.tipc.lib.parsers."""

    def __init__(self, vm: VM) -> None:
        self.vm = vm

    def run(self, ns: str, *args: str, check: bool = True) -> Result:
        return self.vm.run(["tipc", *args], ns=ns, check=check)

    def set_identity(self, ns: str, identity: str) -> None:
        self.run(ns, "node", "set", "identity", identity)

    def identity(self, ns: str) -> parse.NodeIdentity:
        return parse.parse_node_identity(self.run(ns, "node", "get", "identity").stdout)

    def address(self, ns: str) -> int:
        return parse.parse_node_address(self.run(ns, "node", "get", "address").stdout)

    def enable_eth(self, ns: str, dev: str, priority: int | None = None,
                   check: bool = True) -> Result:
        prio = ["priority", str(priority)] if priority is not None else []
        return self.run(ns, "bearer", "enable", *prio, "media", "eth", "device", dev,
                        check=check)

    def enable_udp(self, ns: str, name: str, local: str, remote: str,
                   check: bool = True) -> Result:
        return self.run(ns, "bearer", "enable", "media", "udp", "name", name,
                        "localip", local, "remoteip", remote, check=check)

    def disable_bearer(self, ns: str, media: str, name: str) -> Result:
        key = "name" if media == "udp" else "device"
        return self.run(ns, "bearer", "disable", "media", media, key, name)

    def set_key(self, ns: str, key: bytes, master: bool = False,
                check: bool = True) -> Result:
        """`tipc node set key 0x...`: a cluster key (this node's TX key and its RX key for
        every peer), or with `master` a master key from which the nodes exchange session
        keys. `key` is the AEAD key (16, 24 or 32 bytes) followed by a 4-byte salt."""
        return self.run(ns, "node", "set", "key", "0x" + key.hex(),
                        *(["master"] if master else []), check=check)

    def rekey_now(self, ns: str) -> None:
        """Make this node generate a new session key and hand it to its peers (master-key
        mode only)."""
        self.run(ns, "node", "set", "key", "rekeying", "now")

    def bearers(self, ns: str) -> list[parse.Bearer]:
        return parse.parse_bearer_list(self.run(ns, "bearer", "list").stdout)

    def bearer_priority(self, ns: str, media: str, name: str) -> int:
        key = "name" if media == "udp" else "device"
        out = self.run(ns, "bearer", "get", "priority", "media", media, key, name).stdout
        return int(out)

    def media_tolerance(self, ns: str, media: str) -> float:
        """The media's link tolerance in seconds (what a link waits before giving up)."""
        return int(self.run(ns, "media", "get", "tolerance", "media", media).stdout) / 1000

    def links(self, ns: str) -> dict[str, str]:
        return parse.parse_link_list_json(self.run(ns, "-j", "link", "list").stdout)

    def stats(self, ns: str) -> dict[str, parse.LinkStats]:
        return parse.parse_link_stats_json(self.run(ns, "-j", "link", "stat", "show").stdout)

    def nametable(self, ns: str) -> list[parse.Publication]:
        return parse.parse_nametable_json(self.run(ns, "-j", "nametable", "show").stdout)

    def nodes(self, ns: str) -> list[parse.PeerNode]:
        return parse.parse_node_list(self.run(ns, "node", "list").stdout)

    def wait(self, probe: Callable[[], T], done: Callable[[T], bool], timeout: float,
             what: str) -> T:
        """Poll `probe` until `done(value)`; fail naming `what` and the last value seen."""
        return wait_until(probe, done, timeout, what)

    def wait_links(self, ns: str, want: dict[str, str], timeout: float) -> dict[str, str]:
        """Wait until each link in `want` is in the given state ("up"/"down"/None=absent)."""
        return self.wait(lambda: self.links(ns),
                         lambda have: all(have.get(k) == v for k, v in want.items()),
                         timeout, f"links in {ns} reaching {want}")

    def link_states_during(self, ns: str, name: str, seconds: float) -> set[str | None]:
        """Every state link `name` showed in `ns` (None: absent), polled for `seconds`: a
        negative check that waits as long as the positive case is allowed to take."""
        seen: set[str | None] = set()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            seen.add(self.links(ns).get(name))
            time.sleep(0.2)
        return seen

    def sock(self, *args: Any) -> list[str]:
        """argv of a long-running suites.tipc.lib.sock role, for vm.spawn."""
        # -S: no site-packages scan at start-up; the role needs only the stdlib.
        return [self.vm.python, "-S", "-m", SOCK, *map(str, args)]


def link(a: str, a_if: str, b: str, b_if: str) -> str:
    return str(parse.LinkName(a, a_if, b, b_if))


@dataclass
class Wired:
    """Two TIPC nodes on two VMs: tipc1 on `a` (the test's VM), tipc2 on `b` (its peer)."""

    topology: Topology
    a: Tipc
    b: Tipc
    link_a: str = link("tipc1", "eth1", "tipc2", "eth1")   # the link as tipc1 names it
    link_b: str = link("tipc2", "eth1", "tipc1", "eth1")
