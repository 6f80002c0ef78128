"""tcptracer reports exactly the connections we make: C from the connecting task, A from the
accepting one, X from each closing one, with their pids, comms and 4-tuples."""

from __future__ import annotations

import pytest

from knit.topology import Topology
from suites.bcc.lib import tools
from suites.bcc.lib.net import Bcc, seen

PORT = 5001


def test_connect_accept_close_v4_and_v6(bcc: Bcc, net: Topology) -> None:
    with bcc.trace("tcptracer") as tr:
        conns = {}
        for i, family in enumerate((4, 6)):
            with bcc.server(net.addr("ns2", "ns2eth1", family), PORT + i) as srv:
                conns[family], _ = bcc.client(net.addr("ns2", "ns2eth1", family), PORT + i)
                srv.wait_for(r'"rport"', bcc.vm.scaled(10))  # accepted before the trace stops
            conns[family] = (conns[family], srv.pid)
        # Each connection: C, A, and an X from both ends.
        tr.wait(lambda evs: all(len(seen(evs, PORT + i)) >= 4 for i in (0, 1)), bcc.vm.scaled(15),
                "C, A and two X of each connection")
    for i, family in enumerate((4, 6)):
        conn, server_pid = conns[family]
        got = seen(tr.events, PORT + i)
        assert [e for e in got if e[0] == "C"] == [conn.as_client("C")], f"IPv{family}"
        assert [e for e in got if e[0] == "A"] == [conn.as_server("A", server_pid)]
        assert sorted(e for e in got if e[0] == "X") == sorted(
            [conn.as_client("X"), conn.as_server("X", server_pid)])
    assert {e.ip for e in tr.events if PORT in (e.sport, e.dport)} == {4}
    assert {e.ip for e in tr.events if PORT + 1 in (e.sport, e.dport)} == {6}


def test_refused_connect_reports_no_connect(bcc: Bcc, net: Topology) -> None:
    dst = net.addr("ns2", "ns2eth1", 4)
    with bcc.trace("tcptracer") as tr:
        refused, raw = bcc.client(dst, PORT)  # nothing listens on ns2's PORT
        with bcc.server(dst, PORT + 1) as srv:  # a good connection marks the end of the trace
            done, _ = bcc.client(dst, PORT + 1)
            srv.wait_for(r'"rport"', bcc.vm.scaled(10))
        tr.wait(lambda evs: len(seen(evs, PORT + 1)) >= 4, bcc.vm.scaled(15),
                "the good connection's C, A and two X")
    assert refused is None, f"connect to an unused port was not refused: {raw}"
    assert [e for e in seen(tr.events, PORT) if e[0] in "CA"] == []
    assert [e[0] for e in seen(tr.events, PORT + 1) if e[0] == "C"] == ["C"]


def test_pid_filter_shows_only_that_pid(bcc: Bcc, net: Topology) -> None:
    dst = net.addr("ns2", "ns2eth1", 4)
    with bcc.server(dst, PORT, gate=True) as srv:  # started first: -p needs its pid
        with bcc.trace("tcptracer", "-p", str(srv.pid)) as tr:
            bcc.open_gate(srv)  # accept() from now on, under the attached kretprobe
            conn, _ = bcc.client(dst, PORT)
            srv.wait_for(r'"rport"', bcc.vm.scaled(10))
            tr.wait(lambda evs: len(evs) >= 2, bcc.vm.scaled(15), "the server's A and X")
    assert {e.pid for e in tr.events} == {srv.pid}
    assert sorted(seen(tr.events, PORT)) == sorted(
        [conn.as_server("A", srv.pid), conn.as_server("X", srv.pid)])


def test_netns_filter_shows_only_that_netns(bcc: Bcc, net: Topology) -> None:
    if bcc.variant == "libbpf":
        v = tools.package_version("libbpf-tools", bcc.vm.cfg.userspace)
        pytest.skip(f"libbpf-tools tcptracer {v} has no netns filter (only -p -u -C -M)")
    dst = net.addr("ns2", "ns2eth1", 4)
    inode = bcc.vm.call("suites.bcc.lib.traffic:netns_inode", name="ns2")
    with bcc.trace("tcptracer", "-N", str(inode)) as tr:
        with bcc.server(dst, PORT) as srv:
            conn, _ = bcc.client(dst, PORT)
            srv.wait_for(r'"rport"', bcc.vm.scaled(10))
        tr.wait(lambda evs: len(seen(evs, PORT)) >= 2, bcc.vm.scaled(15), "the server's A and X")
    # Only the server's end lives in ns2: its accept and close, none of the client's events.
    assert sorted(seen(tr.events, PORT)) == sorted(
        [conn.as_server("A", srv.pid), conn.as_server("X", srv.pid)])
