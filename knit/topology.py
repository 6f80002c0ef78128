"""Topologies as data: nodes (netns), veth links, addresses, routes, sysctls.

Pure and host-side: it validates and serialises. knit.guest.netns builds the result
inside the guest from `to_dict()`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field

from knit.errors import KnitError

NAME_RX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
IFNAME_MAX = 15  # IFNAMSIZ - 1


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
class Link:
    a: End
    b: End
    up: bool = True


@dataclass(frozen=True)
class Node:
    name: str
    sysctls: dict[str, str] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    bridges: tuple[str, ...] = ()


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

    def validate(self) -> Topology:
        names = self.names
        for n in names:
            if not NAME_RX.match(n):
                raise TopologyError(f"bad node name '{n}': use letters, digits, '_', '-', '.'")
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
        return asdict(self.validate())


def veth(a: str, a_if: str, a_addrs: list[str] | tuple[str, ...], b: str, b_if: str,
         b_addrs: list[str] | tuple[str, ...]) -> Link:
    """Shorthand: veth(ns1, "eth1", ["10.0.1.1/24"], ns2, "eth1", ["10.0.1.2/24"])."""
    return Link(End(a, a_if, tuple(a_addrs)), End(b, b_if, tuple(b_addrs)))


def pair(paths: int = 1, a: str = "ns1", b: str = "ns2", v6: bool = True,
         sysctls: dict[str, str] | None = None) -> Topology:
    """The upstream MPTCP selftest layout: `paths` veths, 10.0.i.{1,2}/24 and dead:beef:i::."""
    links = []
    for i in range(1, paths + 1):
        a_addrs = [f"10.0.{i}.1/24"] + ([f"dead:beef:{i}::1/64"] if v6 else [])
        b_addrs = [f"10.0.{i}.2/24"] + ([f"dead:beef:{i}::2/64"] if v6 else [])
        links.append(veth(a, f"ns1eth{i}", a_addrs, b, f"ns2eth{i}", b_addrs))
    s = dict(sysctls or {})
    return Topology(nodes=(Node(a, sysctls=s), Node(b, sysctls=s)), links=tuple(links))
