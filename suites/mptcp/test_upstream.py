"""Further groups of upstream mptcp_join.sh: fullmesh, bind, checksum, syncookies,
deny_join_id0, fastclose, and the userspace path manager switch."""

from __future__ import annotations

import pytest

from knit.kernels import version_key
from suites.mptcp.lib.pm import ep
from suites.mptcp.lib.wire import Dss, MpCapable, MpFastclose, MpJoin

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP")


def test_fullmesh_2x2(mp, knit_kernel):
    """Two fullmesh endpoints x two remote addresses (initial + ADD_ADDR) = 4 joins."""
    mp.pair(paths=4)
    mp.pm("ns1", subflows=4, add_addr_accepted=1,
          endpoints=(ep("10.0.2.1", "subflow", "fullmesh"), ep("10.0.3.1", "subflow", "fullmesh")))
    mp.pm("ns2", subflows=4, endpoints=(ep("10.0.4.2", "signal"),))
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, wait_subflows=4)
    assert r.intact and r.info_end["subflows"] == 4, r.summary()
    pairs = sorted((e.src, e.dst) for e in obs.wire(MpJoin, variant="syn"))
    if len(set(pairs)) < len(pairs) and version_key(knit_kernel.version) < version_key("6.12"):
        # Seen on 6.1.0-56: the ADD_ADDR's joins and the endpoint's joins overlap, one pair
        # twice, and the subflow limit then leaves another pair out. 6.12 makes each once.
        pytest.xfail(f"fullmesh made a duplicate join (mptcp_net-next#435): {pairs}")
    assert pairs == [(s, d) for s in ("10.0.2.1", "10.0.3.1") for d in ("10.0.1.2", "10.0.4.2")]
    obs.check("ns2", MPJoinAckRx=4)


def test_bind_client_to_chosen_address(mp):
    mp.pair(paths=3)
    with mp.observe() as obs:
        r = mp.transfer("10.0.1.2", client_bind="10.0.3.1", size=256 << 10)
    assert r.intact and r.local[0] == "10.0.3.1", r.summary()
    assert [e.src for e in obs.wire(MpCapable, variant="syn")] == ["10.0.3.1"]


def test_bind_server_to_one_address_refuses_joins_elsewhere(mp):
    """A listener bound to 10.0.2.2: a join to the announced 10.0.3.2 finds no listener.
    The control: a listener on any address gets that join."""
    mp.pair(paths=3)
    mp.pm("ns2", subflows=1, endpoints=(ep("10.0.3.2", "signal"),))
    mp.pm("ns1", subflows=1, add_addr_accepted=1)
    control = mp.transfer("10.0.2.2", size=512 << 10, wait_subflows=1)
    assert control.intact and control.info_start["subflows"] == 1, control.summary()
    with mp.observe() as obs:
        r = mp.transfer("10.0.2.2", server_bind="10.0.2.2", size=512 << 10, wait_subflows=1,
                        join_wait=mp.no_join_wait(control))
    assert r.intact and r.mptcp, r.summary()
    assert r.join_seconds is None and r.info_end["subflows"] == 0, r.summary()
    obs.check("ns2", MPJoinAckRx=0)
    assert [e.dst for e in obs.wire(MpJoin, variant="syn")] in ([], ["10.0.3.2"])


@pytest.mark.parametrize("client, server", [("1", "1"), ("1", "0"), ("0", "1")])
def test_checksum(mp, client, server):
    """Either side asking for DSS checksums (flag A of MP_CAPABLE) turns them on."""
    mp.pair(paths=1, ns1={"net.mptcp.checksum_enabled": client},
            ns2={"net.mptcp.checksum_enabled": server})
    with mp.observe() as obs:
        r = mp.transfer(size=512 << 10, reply=128 << 10)
    assert r.intact and r.info_end["csum_enabled"] == 1, r.summary()
    flags = {e.option.variant: e.option.checksum_required for e in obs.wire(MpCapable)}
    assert flags["syn"] == (client == "1") and flags["synack"] == (server == "1")
    maps = [e.option for e in obs.wire(Dss) if e.option.has_map]
    assert maps and all(m.checksum is not None for m in maps)
    obs.check("ns1", DataCsumErr=0)
    obs.check("ns2", DataCsumErr=0)


def test_syncookies(mp):
    """With syncookies forced on the server, MP_CAPABLE and MP_JOIN still complete."""
    mp.pair(paths=2, ns2={"net.ipv4.tcp_syncookies": "2"})
    mp.pm("ns1", subflows=1, endpoints=(ep("10.0.2.1", "subflow", dev="ns1eth2"),))
    mp.pm("ns2", subflows=1)
    with mp.observe() as obs:
        r = mp.transfer(size=512 << 10, wait_subflows=1)
    assert r.intact and r.mptcp and r.info_end["subflows"] == 1, r.summary()
    assert obs.tcp("ns2", "TcpExtSyncookiesSent") == 2
    assert obs.tcp("ns2", "TcpExtSyncookiesRecv") == 2
    obs.check("ns2", MPCapableACKRX=1, MPJoinAckRx=1)


def test_deny_join_id0(mp):
    """allow_join_initial_addr_port=0: the server's MP_CAPABLE sets flag C and the client
    does not try to join the server's initial address. The control: with it at 1 (the
    default), the same endpoint joins."""
    mp.pair(paths=2)
    mp.pm("ns1", subflows=1, endpoints=(ep("10.0.2.1", "subflow", dev="ns1eth2"),))
    mp.pm("ns2", subflows=1)
    control = mp.transfer(size=512 << 10, wait_subflows=1)
    assert control.intact and control.info_start["subflows"] == 1, control.summary()
    mp.sysctl("ns2", "net.mptcp.allow_join_initial_addr_port", "0")
    with mp.observe() as obs:
        r = mp.transfer(size=512 << 10, wait_subflows=1, join_wait=mp.no_join_wait(control))
    assert r.intact and r.mptcp and r.join_seconds is None, r.summary()
    assert r.info_end["subflows"] == 0, r.summary()
    synack = obs.wire(MpCapable, variant="synack")
    assert len(synack) == 1 and synack[0].option.deny_join_id0
    assert not obs.wire(MpJoin)
    obs.check("ns1", optional=("MPJoinSynTx",), MPJoinSynAckRx=0, MPJoinSynTx=0)


def test_fastclose(mp):
    """close() with SO_LINGER 0 mid-transfer sends MP_FASTCLOSE; the peer sees a reset."""
    mp.pair(paths=2)
    mp.pm("ns1", subflows=1, endpoints=(ep("10.0.2.1", "subflow", dev="ns1eth2"),))
    mp.pm("ns2", subflows=1)
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, wait_subflows=1, abort_at=0.5)
    assert r.sent < r.size and r.server.get("received", 0) < r.size, r.summary()
    assert r.server.get("reset"), r.summary()
    # 6.12 sends MP_FASTCLOSE on every subflow, 6.1 on the first one only; each one
    # on the wire is counted, and the first to arrive kills the peer.
    fc = sorted(e.src for e in obs.wire(MpFastclose))
    assert fc[0] == "10.0.1.1" and set(fc) <= {"10.0.1.1", "10.0.2.1"}, fc
    obs.check("ns1", MPFastcloseTx=len(fc))
    assert 1 <= obs.count("ns2", "MPFastcloseRx") <= len(fc)


@pytest.mark.kernel(min="5.19")  # net.mptcp.pm_type
def test_userspace_pm_ignores_kernel_endpoints(mp):
    """pm_type=1 hands the connection to a daemon: kernel endpoints create no subflow,
    and the monitor (the daemon's feed) still reports the connection. The control: with
    the in-kernel PM (pm_type=0) the same endpoint joins."""
    mp.pair(paths=2)
    mp.pm("ns1", subflows=1, endpoints=(ep("10.0.2.1", "subflow", dev="ns1eth2"),))
    mp.pm("ns2", subflows=1)
    control = mp.transfer(size=512 << 10, wait_subflows=1)
    assert control.intact and control.info_start["subflows"] == 1, control.summary()
    mp.sysctl("ns1", "net.mptcp.pm_type", "1")
    with mp.observe() as obs:
        r = mp.transfer(size=512 << 10, wait_subflows=1, join_wait=mp.no_join_wait(control))
    assert r.intact and r.mptcp and r.join_seconds is None, r.summary()
    assert r.info_end["subflows"] == 0, r.summary()
    assert not obs.wire(MpJoin)
    assert [e.kind for e in obs.pm("ns1")][:2] == ["CREATED", "ESTABLISHED"]
