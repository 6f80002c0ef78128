"""MPTCP basics from RHEL's MPTCP guide: the enable switch, the MP_CAPABLE handshake,
`ss` showing the ULP, and fallback to plain TCP."""

from __future__ import annotations

import pytest

from suites.mptcp.lib import traffic
from suites.mptcp.lib.pm import ep
from suites.mptcp.lib.ss import parse_ss
from suites.mptcp.lib.wire import Dss, MpCapable

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP")


@pytest.mark.parametrize("enabled", ["1", "0"], ids=["on", "off"])
def test_enabled_sysctl(vm, mp, enabled):
    mp.pair(paths=1, ns1={"net.mptcp.enabled": enabled})
    err = vm.call(traffic.socket_error, ns="ns1")
    # RHEL guide: with net.mptcp.enabled=0 socket(..., IPPROTO_MPTCP) fails.
    assert err == (None if enabled == "1" else "ENOPROTOOPT")
    # The switch is per netns: ns2 keeps its default.
    assert vm.call(traffic.socket_error, ns="ns2") is None


def test_mp_capable_handshake_counters(mp):
    mp.pair(paths=1)
    with mp.observe() as obs:
        r = mp.transfer(size=256 << 10)
    assert r.intact and r.mptcp and r.server["mptcp"], r.summary()
    assert obs.counts("ns1", "MPCapableSYNTX", "MPCapableSYNACKRX") == \
        {"MPCapableSYNTX": 1, "MPCapableSYNACKRX": 1}
    assert obs.counts("ns2", "MPCapableSYNRX", "MPCapableACKRX") == \
        {"MPCapableSYNRX": 1, "MPCapableACKRX": 1}
    variants = [e.option.variant for e in obs.wire(MpCapable)]
    assert variants[:3] == ["syn", "synack", "ack"], variants
    assert [e.kind for e in obs.pm("ns1")][:2] == ["CREATED", "ESTABLISHED"]


def test_ss_shows_tcp_ulp_mptcp(mp):
    mp.pair(paths=1)
    r = mp.transfer(size=128 << 10, probes=[["ss", "-tniH", "state", "established"]])
    assert r.intact, r.summary()
    socks = parse_ss(r.probes[0]["stdout"])
    mine = [s for s in socks if s.peer_port == 10000]
    assert len(mine) == 1 and mine[0].ulp == "mptcp", r.probes[0]["stdout"]


@pytest.mark.parametrize("server", ["mptcp_disabled", "plain_tcp"])
def test_fallback_to_tcp(mp, server):
    ns2 = {"net.mptcp.enabled": "0"} if server == "mptcp_disabled" else {}
    mp.pair(paths=2, ns2=ns2)
    mp.pm("ns1", subflows=2, endpoints=(ep("10.0.2.1"),))
    with mp.observe() as obs:
        r = mp.transfer(size=512 << 10, reply=64 << 10,
                        server_mptcp=server == "mptcp_disabled")
    assert r.intact, r.summary()
    assert not r.mptcp and not r.server["mptcp"], r.summary()
    # No subflow is tried on a TCP connection (MPJoinSynTx is newer than 6.1).
    obs.check("ns1", optional=("MPJoinSynTx",), MPCapableFallbackSYNACK=1, MPJoinSynTx=0)
    syn = obs.wire(MpCapable, variant="syn")
    assert len(syn) == 1 and not obs.wire(MpCapable, variant="synack")
    assert not obs.wire(Dss), "DSS seen on a fallen back connection"

