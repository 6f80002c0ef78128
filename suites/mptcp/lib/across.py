"""Host side of MPTCP between two kernels: ns1 on the test's VM, ns2 on its peer
(--peer-kernel), each path a wire. Either side can be the client.

What lands in the test's artifacts folder: capture-<ns>.pcap and wire-<ns>.txt (decoded
on both ends), nstat-<ns>-{before,after}.txt, mptcp-delta.json, transfer-<n>.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from knit.topology import Topology
from knit.vm import VM
from suites.mptcp.lib import pm, traffic, wire
from suites.mptcp.lib.nstat import delta
from suites.mptcp.lib.session import Observed, _settle, default_routes, two_hosts
from suites.mptcp.lib.transfer import Transfer

NODES = ("ns1", "ns2")
PORT = 10000


def other(ns: str) -> str:
    return "ns2" if ns == "ns1" else "ns1"


def addr(ns: str, path: int) -> str:
    """ns1's (10.0.i.1) or ns2's (10.0.i.2) address on path i."""
    return f"10.0.{path}.{NODES.index(ns) + 1}"


class ObservedPair(Observed):
    """Observed with a capture on each end: wire(kind, at=ns) decodes that end's pcap."""

    def __init__(self, kernel: str, pcaps: dict[str, Path]) -> None:
        super().__init__(kernel, pcaps["ns1"])
        self.pcaps = pcaps
        self._decoded: dict[str, list[wire.WireEvent]] = {}

    def wire(self, kind: type | None, at: str = "ns1",
             **where: object) -> list[wire.WireEvent]:
        if at not in self._decoded:
            self._decoded[at] = wire.sequence(self.pcaps[at])
        return wire.select(self._decoded[at], kind, **where)


class Across:
    """Per-test helper: build the wired pair, configure, observe, transfer."""

    def __init__(self, vm: VM, peer: VM, topo: Any, art: Path, kernels: str) -> None:
        self.vms = {"ns1": vm, "ns2": peer}
        self._topo, self.art, self.kernels = topo, art, kernels
        self.transfers = 0

    def pair(self, paths: int = 2, ns1: dict[str, str] | None = None,
             ns2: dict[str, str] | None = None) -> Topology:
        t = self._topo(two_hosts(paths, ns1, ns2, b_vm="b"))
        for ns in NODES:
            self.vms[ns].run(["ip", "-batch", "-"], ns=ns, input=default_routes(ns, paths))
        return t

    def pm(self, ns: str, subflows: int | None = None, add_addr_accepted: int | None = None,
           endpoints: tuple[pm.Endpoint, ...] = ()) -> None:
        pm.configure(self.vms[ns], ns, subflows, add_addr_accepted, endpoints)

    def _counters(self, tag: str) -> dict[str, dict[str, int]]:
        got: dict[str, dict[str, int]] = {}
        for ns in NODES:
            got |= self.vms[ns].call(traffic.counters, nodes=[ns])
            text = "#kernel\n" + "".join(f"{k:<32} {v}\n" for k, v in got[ns].items())
            (self.art / f"nstat-{ns}-{tag}.txt").write_text(text)
        return got

    @contextmanager
    def observe(self, snaplen: int = 200) -> Iterator[ObservedPair]:
        """Counters before/after and a tcpdump on each end, started before the body."""
        obs = ObservedPair(self.kernels, {ns: self.art / f"capture-{ns}.pcap" for ns in NODES})
        obs.before = self._counters("before")
        with ExitStack() as stack:
            dumps = [stack.enter_context(self.vms[ns].spawn(
                # --immediate-mode and -U: see session.Mptcp.observe.
                ["tcpdump", "-i", "any", "-n", "--immediate-mode", "-U", "-s", str(snaplen),
                 "-w", str(obs.pcaps[ns]), "tcp"], ns=ns)) for ns in NODES]
            for ns, d in zip(NODES, dumps, strict=True):
                d.wait_for("listening on", self.vms[ns].scaled(12))
            try:
                yield obs
            finally:
                obs.after = self._counters("after")
                for ns in NODES:
                    _settle(obs.pcaps[ns], self.vms[ns].scaled(2))
        (self.art / "mptcp-delta.json").write_text(json.dumps(
            {ns: delta(obs.before[ns], obs.after[ns], nonzero=True) for ns in NODES},
            indent=1) + "\n")
        for ns in NODES:
            with open(self.art / f"wire-{ns}.txt", "w") as f:
                for e in obs.wire(None, at=ns):
                    f.write(f"{e.time:.6f} {e.src}:{e.sport} > {e.dst}:{e.dport} "
                            f"[{e.flags}] len={e.payload_len} {e.option}\n")

    def transfer(self, client: str = "ns1", size: int = 256 << 10, reply: int = 0,
                 server_mptcp: bool = True, **kw: Any) -> Transfer:
        """One connection from `client` to the other node's path-1 address, the server
        a process in the other VM; the raw result goes to transfer-N.json."""
        server = other(client)
        cvm, svm = self.vms[client], self.vms[server]
        limit = kw.setdefault("limit", cvm.scaled(40))
        argv = [svm.python, "-S", "-m", "suites.mptcp.lib.remote", "--port", str(PORT),
                "--reply", str(reply), "--limit", str(limit)] + ([] if server_mptcp
                                                                  else ["--tcp"])
        with svm.spawn(argv, ns=server, ready="^listening", ready_timeout=svm.scaled(60)) as srv:
            r = cvm.call(traffic.client, ns=client, connect=addr(server, 1), port=PORT,
                         size=size, reply=reply, timeout=limit + cvm.scaled(10), **kw)
            out = srv.wait_for(r'^\{"server"', svm.scaled(30))
        side = json.loads(out.splitlines()[-1])
        merged = traffic.merge(r, side["server"], side["error"])
        self.transfers += 1
        (self.art / f"transfer-{self.transfers}.json").write_text(json.dumps(merged, indent=1))
        return Transfer.from_dict(merged)
