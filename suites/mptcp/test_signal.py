"""ADD_ADDR: accepted up to add_addr_accepted, with a port, retransmitted on loss."""

from __future__ import annotations

import pytest

from knit.kernels import version_key
from suites.mptcp.lib.pm import ep
from suites.mptcp.lib.session import server_eps
from suites.mptcp.lib.wire import AddAddr, MpJoin

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP")
# ADD_ADDR retransmits on an RTT-based, doubling timer capped by add_addr_timeout
# (mptcp_net-next issue #576); 6.12 uses the fixed timeout, 7.3.4 the new timer.
ADAPTIVE_ADD_ADDR_RTX = (7, 0)


@pytest.mark.parametrize("accepted", [0, 1, 2])
def test_add_addr_accepted_up_to_limit(mp, accepted):
    mp.pair(paths=4)
    mp.pm("ns2", subflows=3, endpoints=server_eps(3))       # announces 10.0.{2,3,4}.2
    mp.pm("ns1", subflows=3, add_addr_accepted=accepted)
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, wait_subflows=accepted)
    assert r.intact, r.summary()
    if r.info_end["add_addr_accepted"] > accepted and accept_race(obs, accepted):
        pytest.xfail(f"kernel race: ADD_ADDR #{accepted + 1} arrived while the PM worker "
                     f"was connecting for #{accepted} (pm.lock dropped, accept_addr still "
                     f"set), so {r.info_end['add_addr_accepted']} were accepted")
    assert r.info_end["subflows"] == accepted, r.summary()
    assert r.info_end["add_addr_accepted"] == accepted
    obs.check("ns1", AddAddr=3, MPJoinSynAckRx=accepted)
    # An ADD_ADDR that arrives while the PM still handles the previous one is dropped
    # (AddAddrDrop) and not echoed; every other one is echoed.
    echoed = 3 - obs.count("ns1", "AddAddrDrop")
    obs.check("ns2", EchoAdd=echoed, MPJoinAckRx=accepted)
    announced = [str(e.option.address) for e in obs.wire(AddAddr, echo=False)]
    assert sorted(announced) == ["10.0.2.2", "10.0.3.2", "10.0.4.2"]
    assert len(obs.wire(AddAddr, echo=True)) == echoed
    assert len(obs.wire(MpJoin, variant="syn")) == accepted
    assert len(obs.pm("ns1", "ANNOUNCED")) == 3


def accept_race(obs, limit: int) -> bool:
    """The in-kernel PM (6.12's pm_kernel.c, same upstream) echoes an ADD_ADDR, then drops
    pm.lock to connect, and only afterwards clears accept_addr when the limit is reached.
    An ADD_ADDR that reaches the client before that subflow's MP_JOIN SYN left passes the
    check. True when the capture shows exactly that ordering."""
    adds = sorted(e.time for e in obs.wire(AddAddr, echo=False))
    syns = sorted(e.time for e in obs.wire(MpJoin, variant="syn"))
    return 0 < limit < len(adds) and len(syns) >= limit and adds[limit] <= syns[limit - 1]


def test_add_addr_with_port(mp):
    mp.pair(paths=2)
    mp.pm("ns2", subflows=1, endpoints=(ep("10.0.2.2", "signal", port=10100),))
    mp.pm("ns1", subflows=1, add_addr_accepted=1)
    with mp.observe() as obs:
        r = mp.transfer(size=512 << 10, wait_subflows=1)
    assert r.intact and r.info_end["subflows"] == 1, r.summary()
    assert [(str(e.option.address), e.option.port) for e in obs.wire(AddAddr, echo=False)] \
        == [("10.0.2.2", 10100)]
    assert [e.dport for e in obs.wire(MpJoin, variant="syn")] == [10100]
    obs.check("ns1", PortAdd=1)
    obs.check("ns2", MPJoinPortSynRx=1, MPJoinPortAckRx=1)


def drop_add_addr_echo(dev: str) -> list[list[str]]:
    """tc u32 on `dev` egress dropping IPv4 TCP with MPTCP subtype ADD_ADDR right after
    NOP,NOP,TS: the layout of Linux's pure-ACK echo (upstream uses the same offset)."""
    return [["qdisc", "add", "dev", dev, "root", "handle", "1:", "prio"],
            ["filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1",
             "u32", "match", "u8", "0x1e", "0xff", "at", "52",
             "match", "u8", "0x30", "0xf0", "at", "54", "action", "drop"]]


@pytest.mark.kconfig("CONFIG_NET_CLS_U32", "CONFIG_NET_ACT_GACT", "CONFIG_NET_SCH_PRIO")
def test_add_addr_retransmitted_then_times_out(mp, knit_kernel):
    mp.pair(paths=2, ns2={"net.mptcp.add_addr_timeout": "1"})
    mp.pm("ns2", subflows=1, endpoints=server_eps(1))
    mp.pm("ns1", subflows=1, add_addr_accepted=1)
    mp.tc("ns1", *drop_add_addr_echo("ns1eth1"), *drop_add_addr_echo("ns1eth2"))
    with mp.observe() as obs:
        # Paced to ~6 s: the connection outlives 1 + 3 retransmissions 1 s apart.
        r = mp.transfer(size=768 << 10, rate=128 << 10)
    assert r.intact, r.summary()
    sent = obs.wire(AddAddr, echo=False)
    assert len(sent) == 4, [e.time for e in sent]
    gaps = [b.time - a.time for a, b in zip(sent, sent[1:], strict=False)]
    if version_key(knit_kernel.version) >= ADAPTIVE_ADD_ADDR_RTX:
        # RTT-based first timeout, doubled each time, add_addr_timeout the cap
        # (seen on 7.3.4: 0.21, 0.41, 0.83 s); before it, add_addr_timeout each time.
        assert gaps[0] < 0.9 and all(1.5 < b / a < 2.5 for a, b in zip(gaps, gaps[1:],
                                                                         strict=False)), gaps
        assert max(gaps) <= 1.1, gaps
    else:
        assert all(g >= 0.9 for g in gaps), gaps            # add_addr_timeout=1 s
    assert not obs.wire(AddAddr, echo=True), "an echo got past the tc drop"
    obs.check("ns2", optional=("AddAddrTx",), AddAddrTx=4, EchoAdd=0)
    obs.check("ns1", optional=("EchoAddTx",), AddAddr=4, EchoAddTx=4)
