"""What a middlebox does to one MPTCP connection on the wire, and what each end makes of it.

- A payload byte changed in flight, the TCP checksum fixed up: only the DSS checksum can
  tell. The receiver counts the error and sends MP_FAIL; on a single subflow the sender
  answers with MP_FAIL and an infinite mapping, and both fall back to TCP (RFC 8684 3.7).
- MP_CAPABLE removed from the segments after the client's SYN: the server sees the
  handshake's third ACK without it, counts a passive fallback and serves plain TCP
  (RFC 8684 3.1).

Each case runs its control first on the same path: no fault, no error counted.

Two kernel bugs stall the upload after MP_FAIL (the checksum failure is still counted and
MP_FAIL still exchanged); the checksum case sidesteps both, to reach the fallback:
- The sender's infinite-mapping segment is sized without room for the DSS option it
  carries (28 bytes with the checksum): at full MSS it exceeds the MTU, is dropped in
  ip_fragment and resent forever (seen on 6.12.118, kfree_skb traced). The receiver
  announces MSS 1400.
- The receiver sends no DATA_ACK for the failed mapping it delivers (its last ACK, the one
  with MP_FAIL, stops short of it). 6.1's MPTCP socket keeps tcp_wmem's 16 KB initial
  send buffer, which that mapping then fills: no infinite mapping is ever sent (seen on
  6.1.192). The sender starts with 256 KB.
"""

from __future__ import annotations

import pytest

from suites.mptcp.lib import mangle
from suites.mptcp.lib.wire import Dss, MpCapable, MpFail

pytestmark = pytest.mark.kconfig("CONFIG_MPTCP", "CONFIG_NF_TABLES", "CONFIG_NF_TABLES_INET")
CSUM = {"net.mptcp.checksum_enabled": "1"}
BIG_SNDBUF = {"net.ipv4.tcp_wmem": "4096 262144 4194304"}  # 6.1: see the module docstring
PORT = 10000  # traffic.transfer's


@pytest.mark.kconfig("CONFIG_NET_SCH_INGRESS", "CONFIG_NET_CLS_FW", "CONFIG_NET_ACT_PEDIT",
                     "CONFIG_NET_ACT_CSUM")
def test_corrupted_byte_fails_dss_checksum(vm, mp):
    mp.pair(paths=1, ns1={**CSUM, **BIG_SNDBUF}, ns2=CSUM)
    # Room for the infinite mapping's DSS option (see the module docstring).
    vm.run(mangle.advmss_argv("10.0.1.1", "ns2eth1", 1400), ns="ns2")
    mp.tc("ns1", *mangle.invert_marked("ns1eth1"))
    mangle.nft(vm, "ns1", mangle.marker_table())
    with mp.observe() as obs:
        control = mp.transfer(size=1 << 20, reply=64 << 10)
    assert control.intact and control.info_end["csum_enabled"] == 1, control.summary()
    obs.check("ns2", DataCsumErr=0, MPFailTx=0)
    # Paced, so that half the upload (mappings with a valid checksum) precedes the fault.
    corrupt = {"at": 0.5, "ns": "ns1", "argv": mangle.mark_once_argv(PORT)}
    with mp.observe() as obs:
        r = mp.transfer(size=1 << 20, reply=64 << 10, rate=256 << 10, actions=[corrupt])
    assert r.actions[0]["rc"] == 0 and mangle.counter(vm, "ns1", "marked") == 1, r.actions
    obs.check("ns2", DataCsumErr=1, MPFailTx=1, MPFailRx=1, InfiniteMapRx=1)
    obs.check("ns1", MPFailRx=1, MPFailTx=1, InfiniteMapTx=1)
    # The changed byte reaches the server (same length, another hash); then plain TCP.
    up = r.server
    assert up["received"] == r.size and up["received_sha256"] != r.sent_sha256, r.summary()
    assert r.received_sha256 == up["sent_sha256"] and not r.mptcp, r.summary()
    fails = obs.wire(MpFail)
    assert [e.src for e in fails] == ["10.0.1.2", "10.0.1.1"], fails
    # The receiver's MP_FAIL names the mapping that failed, as the sender sent it.
    maps = {e.option.dsn for e in obs.wire(Dss, src="10.0.1.1") if e.option.has_map}
    assert fails[0].option.dsn in maps, fails


def test_mp_capable_stripped_after_syn_falls_back(vm, mp):
    mp.pair(paths=1)
    with mp.observe() as obs:
        control = mp.transfer(size=256 << 10, reply=64 << 10)
    assert control.intact and control.mptcp and control.server["mptcp"], control.summary()
    obs.check("ns2", MPCapableACKRX=1, MPCapableFallbackACK=0)
    mangle.nft(vm, "ns1", mangle.strip_mp_capable_after_syn(PORT))
    with mp.observe() as obs:
        r = mp.transfer(size=256 << 10, reply=64 << 10)
    assert mangle.counter(vm, "ns1", "stripped") >= 1
    assert r.intact and not r.mptcp and not r.server["mptcp"], r.summary()
    assert [e.option.variant for e in obs.wire(MpCapable)] == ["syn", "synack"], obs.events
    # The client may map its first data before it learns; the server never maps any.
    assert not obs.wire(Dss, src="10.0.1.2"), "the server sent DSS after falling back"
    obs.check("ns2", MPCapableSYNRX=1, MPCapableACKRX=0, MPCapableFallbackACK=1)
