"""Address families: IPv6 subflows, v4-mapped, mixed v4/v6 subflows in one connection."""

from __future__ import annotations

import pytest

from suites.mptcp.lib.pm import ep
from suites.mptcp.lib.wire import AddAddr, MpCapable, MpJoin

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP", "CONFIG_MPTCP_IPV6")


def test_ipv6_subflow_and_signal(mp):
    mp.pair(paths=3)
    mp.pm("ns1", subflows=2, add_addr_accepted=1,
          endpoints=(ep("dead:beef:2::1", "subflow", dev="ns1eth2"),))
    mp.pm("ns2", subflows=2, endpoints=(ep("dead:beef:3::2", "signal"),))
    with mp.observe() as obs:
        r = mp.transfer("dead:beef:1::2", size=1 << 20, reply=256 << 10, wait_subflows=2)
    assert r.intact and r.info_end["subflows"] == 2, r.summary()
    assert [e.option.ipver for e in obs.wire(AddAddr, echo=False)] == [6]
    # One join from the endpoint to the initial address, one to the announced address
    # (from whatever source the v6 route picks).
    joins = {e.dst: e.src for e in obs.wire(MpJoin, variant="syn")}
    assert sorted(joins) == ["dead:beef:1::2", "dead:beef:3::2"], joins
    assert joins["dead:beef:1::2"] == "dead:beef:2::1"
    obs.check("ns2", MPJoinAckRx=2)


def test_v4_mapped(mp):
    mp.pair(paths=2)
    mp.pm("ns1", subflows=1, add_addr_accepted=1)
    mp.pm("ns2", subflows=1, endpoints=(ep("10.0.2.2", "signal"),))
    with mp.observe() as obs:
        r = mp.transfer("::ffff:10.0.1.2", server_bind="::", v6only=False, size=1 << 20,
                        wait_subflows=1)
    assert r.intact and r.info_end["subflows"] == 1, r.summary()
    assert r.local[0] == "::ffff:10.0.1.1" and r.server["peer"][0] == "::ffff:10.0.1.1"
    # On the wire a v4-mapped connection is plain IPv4, and so is its join.
    assert [e.dst for e in obs.wire(MpJoin, variant="syn")] == ["10.0.2.2"]
    assert [e.src for e in obs.wire(MpCapable, variant="syn")] == ["10.0.1.1"]
    obs.check("ns2", MPJoinAckRx=1)


@pytest.mark.kernel(min="6.3")  # cross-family subflows on one IPv6 socket (upstream 6.3)
@pytest.mark.parametrize("sock, expect, total", [("v6", 1, 2), ("v4", 0, 1)])
def test_mixed_v4_v6_subflows(mp, sock, expect, total):
    """An IPv6 MPTCP socket may join over IPv4; an IPv4 socket never uses IPv6."""
    mp.pair(paths=2)
    mp.pm("ns1", subflows=2, add_addr_accepted=1,
          endpoints=(ep("10.0.2.1", "subflow", "fullmesh"),
                     ep("dead:beef:2::1", "subflow", "fullmesh")))
    other = "10.0.2.2" if sock == "v6" else "dead:beef:2::2"
    mp.pm("ns2", subflows=2, endpoints=(ep(other, "signal"),))
    connect = "dead:beef:1::2" if sock == "v6" else "10.0.1.2"
    with mp.observe() as obs:
        r = mp.transfer(connect, server_bind="::", v6only=False, size=512 << 10,
                        wait_subflows=total)
    assert r.intact and r.info_end["subflows"] == total, r.summary()
    joins = obs.wire(MpJoin, variant="syn", dst=other)
    assert len(joins) == expect, [(e.src, e.dst) for e in obs.wire(MpJoin)]
