"""solisten reports a listen() with the listener's pid, comm, protocol, backlog, port and
address, for IPv4 and IPv6."""

from __future__ import annotations

import pytest

from knit.topology import Topology
from suites.bcc.lib import tools
from suites.bcc.lib.net import Bcc
from suites.bcc.lib.traffic import SERVER_COMM

PORT = 6001
BACKLOG = 7
# libbpf-tools solisten (0.26, and upstream as of this writing) reads the IPv6 address with
# BPF_CORE_READ_INTO(event->addr, ...) where addr is __u32[4]: sizeof(*addr) = 4 bytes are
# copied, so dead:beef:1::2 prints as dead:beef::. Everything else on that line is right.
TRUNCATED_V6 = "dead:beef::"
LIBBPF_V6_BUG = ("libbpf-tools solisten {v} prints only the first 4 bytes of an IPv6 ADDR "
                 "(dead:beef:1::2 -> dead:beef::): BPF_CORE_READ_INTO into a __u32 array")


def test_listen_v4_and_v6(bcc: Bcc, net: Topology) -> None:
    listeners = []
    with bcc.trace("solisten") as tr:
        for i, (family, proto) in enumerate(((4, "TCPv4"), (6, "TCPv6"))):
            addr = net.addr("ns2", "ns2eth1", family)
            with bcc.server(addr, PORT + i, backlog=BACKLOG, accepts=0) as srv:
                listeners.append((srv.pid, SERVER_COMM, proto, BACKLOG, PORT + i, addr))
        tr.wait(lambda evs: len(evs) >= 2, bcc.vm.scaled(15), "both listen() events")
    got = [(e.pid, e.comm, e.proto, e.backlog, e.port, e.addr) for e in tr.events
           if e.port in (PORT, PORT + 1)]
    if bcc.variant == "libbpf":  # only libbpf-tools print listen()'s return value
        assert [e.ret for e in tr.events if e.port in (PORT, PORT + 1)] == [0, 0]
        if got[:1] == listeners[:1] and got[1:] == [(*listeners[1][:5], TRUNCATED_V6)]:
            v = tools.package_version("libbpf-tools", bcc.vm.cfg.userspace)
            pytest.xfail(LIBBPF_V6_BUG.format(v=v))
    assert got == listeners
