"""MPTCP between two kernels, each way round: the client on the test's kernel and the
server on the peer's (--peer-kernel), then the reverse. One side's option handling must
be accepted by the other's; the wire is decoded at both ends."""

from __future__ import annotations

import pytest

from suites.mptcp.lib.across import addr, other
from suites.mptcp.lib.pm import ep
from suites.mptcp.lib.wire import AddAddr, Dss, MpCapable, MpJoin

pytestmark = [pytest.mark.multi_vm, pytest.mark.kconfig("CONFIG_MPTCP")]
# ns1 lives on the test's VM, ns2 on the peer: "ns1" is the test's kernel as the client.
CLIENTS = [pytest.param("ns1", id="client-a"), pytest.param("ns2", id="client-b")]


# CI runs the first way round; --nightly (or -m multi_vm) both.
@pytest.mark.parametrize("client", [CLIENTS[0], pytest.param("ns2", id="client-b",
                                                             marks=pytest.mark.slow)])
def test_mp_capable_handshake(across, client):
    server = other(client)
    across.pair(paths=1)
    with across.observe() as obs:
        r = across.transfer(client, size=256 << 10, reply=32 << 10)
    assert r.intact and r.mptcp and r.server["mptcp"], r.summary()
    obs.check(client, MPCapableSYNTX=1, MPCapableSYNACKRX=1)
    obs.check(server, MPCapableSYNRX=1, MPCapableACKRX=1)
    for end in (client, server):          # the same handshake seen from both kernels
        assert [e.option.variant for e in obs.wire(MpCapable, at=end)][:3] == \
            ["syn", "synack", "ack"], end
        assert obs.wire(Dss, at=end), f"no DSS seen at {end}"


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
def test_join_over_a_second_path(across, client):
    server = other(client)
    across.pair(paths=2)
    across.pm(server, subflows=1)
    across.pm(client, subflows=1, endpoints=(ep(addr(client, 2), "subflow",
                                                dev=f"{client}eth2"),))
    with across.observe() as obs:
        r = across.transfer(client, size=512 << 10, wait_subflows=1)
    assert r.intact and r.info_end["subflows"] == 1, r.summary()
    obs.check(client, MPJoinSynAckRx=1)
    obs.check(server, MPJoinSynRx=1, MPJoinAckRx=1)
    joins = obs.wire(MpJoin, at=server, variant="syn")
    assert [(e.src, e.dst) for e in joins] == [(addr(client, 2), addr(server, 1))]


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
def test_add_addr_announced_and_joined(across, client):
    server = other(client)
    across.pair(paths=2)
    across.pm(server, subflows=1, endpoints=(ep(addr(server, 2), "signal"),))
    across.pm(client, subflows=1, add_addr_accepted=1)
    with across.observe() as obs:
        r = across.transfer(client, size=512 << 10, wait_subflows=1)
    assert r.intact and r.info_end["subflows"] == 1, r.summary()
    assert r.info_end["add_addr_accepted"] == 1
    obs.check(client, AddAddr=1, MPJoinSynAckRx=1)
    obs.check(server, EchoAdd=1, MPJoinAckRx=1)
    # Sent by one kernel, received by the other: the same announcement at both ends.
    for end in (client, server):
        assert [str(e.option.address) for e in obs.wire(AddAddr, at=end, echo=False)] == \
            [addr(server, 2)], end
    assert [e.dst for e in obs.wire(MpJoin, at=server, variant="syn")] == [addr(server, 2)]


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
def test_fallback_when_the_server_disables_mptcp(across, client):
    server = other(client)
    across.pair(paths=1, **{server: {"net.mptcp.enabled": "0"}})
    with across.observe() as obs:
        r = across.transfer(client, size=256 << 10, reply=16 << 10)
    assert r.intact, r.summary()
    assert not r.mptcp and not r.server["mptcp"], r.summary()
    assert r.server["mptcp_socket"] is False      # the server's MPTCP socket was refused
    obs.check(client, MPCapableFallbackSYNACK=1)
    assert len(obs.wire(MpCapable, at=server, variant="syn")) == 1
    assert not obs.wire(MpCapable, at=client, variant="synack")
    assert not obs.wire(Dss, at=client) and not obs.wire(Dss, at=server)


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
def test_checksums_asked_by_the_client_are_used_by_both(across, client):
    """Only the client's kernel asks for DSS checksums (flag A): the other must honour
    them, and both must compute what the other verifies."""
    server = other(client)
    across.pair(paths=1, **{client: {"net.mptcp.checksum_enabled": "1"},
                            server: {"net.mptcp.checksum_enabled": "0"}})
    with across.observe() as obs:
        r = across.transfer(client, size=512 << 10, reply=128 << 10)
    assert r.intact and r.mptcp and r.info_end["csum_enabled"] == 1, r.summary()
    for end in (client, server):
        flags = {e.option.variant: e.option.checksum_required
                 for e in obs.wire(MpCapable, at=end)}
        assert flags["syn"] and not flags["synack"], (end, flags)
        maps = [e.option for e in obs.wire(Dss, at=end) if e.option.has_map]
        assert maps and all(m.checksum is not None for m in maps), end
    obs.check(client, DataCsumErr=0)
    obs.check(server, DataCsumErr=0)
