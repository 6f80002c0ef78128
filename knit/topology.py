"""Topologies as data: nodes (netns), veth links, addresses, routes, sysctls.

Pure and host-side: it validates and serialises. knit.guest.netns builds the result
inside the guest from `to_dict()` (one VM) or `part(vm)` (one VM's share of a topology
whose nodes sit on several VMs: a link between two VMs is a NIC pair, see knit.guest.wires).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from knit.errors import KnitError

NAME_RX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
IFNAME_MAX = 15  # IFNAMSIZ - 1
VMS = ("a", "b")  # "a": the test's own VM (`vm`), "b": its peer (`peer`, --peer-kernel)


class TopologyError(KnitError):
    pass


@dataclass(frozen=True)
class Route:
    dst: str                    # "default" or a prefix
    via: str | None = None
    dev: str | None = None


@dataclass(frozen=True)
class End:
    """One side of a veth link: the node, the interface name, its addresses."""

    node: str
    ifname: str
    addrs: tuple[str, ...] = ()
    master: str | None = None   # a bridge in the same node


@dataclass(frozen=True)
class Netem:
    """Impairment of one link end's egress (a netem qdisc on its interface)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0


@dataclass(frozen=True)
class Link:
    a: End
    b: End
    up: bool = True
    netem: Netem | None = None   # on both ends' egress


@dataclass(frozen=True)
class Nic:
    """A link end on a wire between two VMs: the guest finds the NIC by its MAC."""

    end: End
    mac: str
    up: bool = True
    netem: Netem | None = None


@dataclass(frozen=True)
class Node:
    name: str
    sysctls: dict[str, str] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    bridges: tuple[str, ...] = ()
    vm: str = "a"               # which VM of a pair the node lives on (knit.topology.VMS)


@dataclass(frozen=True)
class Topology:
    nodes: tuple[Node, ...]
    links: tuple[Link, ...] = ()

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise TopologyError(f"no node '{name}' in this topology")

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def addr(self, node: str, ifname: str, family: int = 4) -> str:
        """First address (without prefix length) of node:ifname in that IP family."""
        for end in self.ends():
            if end.node == node and end.ifname == ifname:
                for a in end.addrs:
                    ip = ipaddress.ip_interface(a)
                    if ip.version == family:
                        return str(ip.ip)
        raise TopologyError(f"no IPv{family} address on {node}:{ifname}")

    def ends(self) -> list[End]:
        return [e for link in self.links for e in (link.a, link.b)]

    def vm_of(self, node: str) -> str:
        return self.node(node).vm

    @property
    def vms(self) -> list[str]:
        """The VMs this topology has nodes on, "a" first."""
        return [v for v in VMS if any(n.vm == v for n in self.nodes)]

    @property
    def wires(self) -> list[Link]:
        """Links between nodes on different VMs, in order: link i uses NIC pair i."""
        return [lk for lk in self.links if self.vm_of(lk.a.node) != self.vm_of(lk.b.node)]

    def nodes_on(self, vm: str) -> list[str]:
        return [n.name for n in self.nodes if n.vm == vm]

    def part(self, vm: str, macs: Callable[[str, int], str]) -> dict:
        """What `vm` builds (knit.guest.netns.build): its nodes, its veths, and its NICs
        of the wires; `macs(vm, i)` is the MAC of wire i's NIC in that VM."""
        self.validate()
        mine = set(self.nodes_on(vm))
        nics = []
        for i, lk in enumerate(self.wires):
            for end in (lk.a, lk.b):
                if end.node in mine:
                    nics.append(asdict(Nic(end, macs(vm, i), lk.up, lk.netem)))
        return {"nodes": [asdict(n) for n in self.nodes if n.name in mine],
                "links": [asdict(lk) for lk in self.links
                          if lk.a.node in mine and lk.b.node in mine],
                "nics": nics}

    def validate(self) -> Topology:
        names = self.names
        for n in names:
            if not NAME_RX.match(n):
                raise TopologyError(f"bad node name '{n}': use letters, digits, '_', '-', '.'")
        for node in self.nodes:
            if node.vm not in VMS:
                raise TopologyError(f"node {node.name} is on VM '{node.vm}': use one of "
                                    f"{', '.join(VMS)}")
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise TopologyError(f"node names used twice: {', '.join(sorted(dup))}")
        seen_if: set[tuple[str, str]] = set()
        seen_addr: set[str] = set()
        for end in self.ends():
            if end.node not in names:
                raise TopologyError(f"link end {end.node}:{end.ifname} names an unknown node")
            if not 0 < len(end.ifname) <= IFNAME_MAX or "/" in end.ifname:
                raise TopologyError(f"bad interface name '{end.ifname}' (1-15 chars, no '/')")
            if (end.node, end.ifname) in seen_if:
                raise TopologyError(f"interface {end.node}:{end.ifname} defined twice")
            seen_if.add((end.node, end.ifname))
            if end.master and end.master not in self.node(end.node).bridges:
                raise TopologyError(f"{end.node}:{end.ifname} names bridge '{end.master}' "
                                    f"that {end.node} does not declare")
            for a in end.addrs:
                try:
                    ip = ipaddress.ip_interface(a)
                except ValueError as e:
                    raise TopologyError(f"bad address '{a}' on {end.node}:{end.ifname}: {e}") \
                        from e
                if str(ip.ip) in seen_addr:
                    raise TopologyError(f"address {ip.ip} assigned twice")
                seen_addr.add(str(ip.ip))
        for n in self.nodes:
            for r in n.routes:
                if r.dst != "default":
                    try:
                        ipaddress.ip_network(r.dst)
                    except ValueError as e:
                        raise TopologyError(f"bad route destination '{r.dst}' on {n.name}") \
                            from e
                if r.via is None and r.dev is None:
                    raise TopologyError(f"route {r.dst} on {n.name} needs via or dev")
            for key in n.sysctls:
                if not re.match(r"^[a-z0-9_.-]+$", key) or ".." in key:
                    raise TopologyError(f"bad sysctl name '{key}' on {n.name}")
        return self

    def to_dict(self) -> dict:
        """One VM's topology (every node on "a"); a topology over two VMs is built per VM
        from part()."""
        if self.vms not in ([], ["a"]):
            raise TopologyError("this topology spans VMs: build it with the topo fixture "
                                "of a multi_vm test (part() per VM)")
        return {**asdict(self.validate()), "nics": []}


def veth(a: str, a_if: str, a_addrs: list[str] | tuple[str, ...], b: str, b_if: str,
         b_addrs: list[str] | tuple[str, ...]) -> Link:
    """Shorthand: veth(ns1, "eth1", ["10.0.1.1/24"], ns2, "eth1", ["10.0.1.2/24"])."""
    return Link(End(a, a_if, tuple(a_addrs)), End(b, b_if, tuple(b_addrs)))


def pair(paths: int = 1, a: str = "ns1", b: str = "ns2", v6: bool = True,
         sysctls: dict[str, str] | None = None, b_vm: str = "a",
         netem: Netem | None = None) -> Topology:
    """The upstream MPTCP selftest layout: `paths` veths, 10.0.i.{1,2}/24 and dead:beef:i::.
    b_vm="b": node `b` on the peer VM, each path a wire between the two VMs."""
    links = []
    for i in range(1, paths + 1):
        a_addrs = [f"10.0.{i}.1/24"] + ([f"dead:beef:{i}::1/64"] if v6 else [])
        b_addrs = [f"10.0.{i}.2/24"] + ([f"dead:beef:{i}::2/64"] if v6 else [])
        lk = veth(a, f"ns1eth{i}", a_addrs, b, f"ns2eth{i}", b_addrs)
        links.append(Link(lk.a, lk.b, netem=netem))
    s = dict(sysctls or {})
    return Topology(nodes=(Node(a, sysctls=s), Node(b, sysctls=s, vm=b_vm)),
                    links=tuple(links))
