"""Helpers of the bcc suite: a tool runner bound to the test's VM and variant (skips with the
precise reason when the variant cannot run), and the two ends of a traced connection."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from knit.kernels import Kernel
from knit.vm import VM, Spawned
from suites.bcc.lib import tools, traffic
from suites.bcc.lib.parsers import TcpEvent
from suites.bcc.lib.traffic import CLIENT_COMM, LISTENING, SERVER_COMM


@dataclass(frozen=True)
class Conn:
    """One client connection as the client saw it."""

    pid: int
    comm: str
    saddr: str
    sport: int
    daddr: str
    dport: int

    def as_client(self, kind: str) -> tuple:
        return (kind, self.pid, self.comm, self.saddr, self.sport, self.daddr, self.dport)

    def as_server(self, kind: str, pid: int) -> tuple:
        return (kind, pid, SERVER_COMM, self.daddr, self.dport, self.saddr, self.sport)


def seen(events: list[TcpEvent], port: int) -> list[tuple]:
    """tcptracer events of the connections to `port`, as comparable tuples."""
    return [(e.kind, e.pid, e.comm, e.saddr, e.sport, e.daddr, e.dport) for e in events
            if port in (e.sport, e.dport)]


class Bcc:
    """Runs the tools of one variant in this test's VM, and the traffic ends."""

    def __init__(self, vm: VM, kernel: Kernel, variant: str, out: Path,
                 node: pytest.Item) -> None:
        self.vm, self.kernel, self.variant, self.out, self.node = vm, kernel, variant, out, node

    def require(self, tool: str) -> None:
        why = tools.problem(self.kernel, tool, self.variant, self.vm.cfg.userspace)
        if why:
            pytest.skip(f"{self.variant} {tool}: {why}")

    @contextmanager
    def trace(self, tool: str, *args: str) -> Iterator[tools.Trace]:
        self.require(tool)
        tr = None
        try:
            with tools.trace(self.vm, self.kernel, tool, self.variant, args) as tr:
                self.node.user_properties.append(
                    (f"bcc_startup_s {tool} {self.variant}", round(tr.startup_s, 2)))
                yield tr
        finally:
            if tr is not None:  # raw output + start-up time, kept for reports and fixtures
                name = re.sub(r"[^\w.-]+", "_", f"{self.node.name}-{tool}")
                tools.record(tr, self.out, name, self.vm.cfg.accel)

    @contextmanager
    def server(self, addr: str, port: int, backlog: int = 7, accepts: int = 1,
               ns: str = "ns2", gate: bool = False) -> Iterator[Spawned]:
        """suites.bcc.lib.traffic's server (comm knit-srv) in `ns`; `.pid` is its pid. With
        `gate` it accepts only after open_gate() (see suites.bcc.lib.traffic.serve)."""
        argv = [self.vm.python, "-m", "suites.bcc.lib.traffic", "serve", addr, str(port),
                "--backlog", str(backlog), "--accepts", str(accepts), *(["--gate"] * gate)]
        with self.vm.spawn(argv, ns=ns, ready=LISTENING, ready_timeout=self.vm.scaled(20)) as sp:
            yield sp

    def open_gate(self, server: Spawned) -> None:
        self.vm.run(["kill", "-USR1", str(server.pid)])

    def client(self, addr: str, port: int, ns: str = "ns1") -> tuple[Conn | None, dict]:
        """One connection (comm knit-cli) from `ns`; None if it was refused."""
        r = self.vm.call(traffic.connect, ns=ns, addr=addr, port=port,
                         comm=CLIENT_COMM)
        if r["refused"]:
            return None, r
        return Conn(r["pid"], r["comm"], r["saddr"], r["sport"], r["daddr"], r["dport"]), r
