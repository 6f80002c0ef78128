"""Tests for the pure parts of suites.mptcp.lib.forge, on the real loopback capture that
test_mptcp_wire.py uses (tests/unit/data/mptcp_loopback_<kernel>.pcap, see its .meta.json)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap

from suites.mptcp.lib import forge
from suites.mptcp.lib.wire import MpFastclose, decode_option, options_of, tcp_payload_len

PCAP = Path(__file__).parent / "data" / "mptcp_loopback_6.18.44-fc-v657.pcap"


@pytest.fixture(scope="module")
def v4() -> list:
    return [p for p in rdpcap(str(PCAP)) if IP in p]


def test_parse_seg_agrees_with_scapy(v4):
    for p in v4:
        seg = forge.parse_seg(bytes(p[IP]))
        tcp = p[TCP]
        assert seg is not None
        assert (seg.src, seg.dst, seg.sport, seg.dport) == (p[IP].src, p[IP].dst, tcp.sport,
                                                            tcp.dport)
        assert (seg.seq, seg.ack, seg.window, seg.flags) == (tcp.seq, tcp.ack, tcp.window,
                                                             int(tcp.flags))
        assert seg.payload == tcp_payload_len(p)
        syn_fin = int(tcp.flags) & 0x03 != 0
        assert seg.end == (tcp.seq + seg.payload + syn_fin) & 0xFFFFFFFF


def test_parse_seg_ignores_what_is_not_ipv4_tcp(v4):
    raw = bytes(v4[0][IP])
    assert forge.parse_seg(raw[:30]) is None
    assert forge.parse_seg(raw[:9] + b"\x11" + raw[10:]) is None  # UDP


def test_handshake_keys_of_the_first_connection(v4):
    first = v4[:4]  # SYN, SYN-ACK, MP_CAPABLE ACK, ACK with data
    keys = forge.handshake_keys([bytes(p[IP]) for p in first])
    assert keys == forge.Keys(client=7945626079443877370, server=2557233649154895363)
    with pytest.raises(AssertionError, match="no MP_CAPABLE"):
        forge.handshake_keys([bytes(v4[0][IP])])


def test_fastclose_option_is_what_the_kernel_sends(v4):
    sent = [(opt, p) for p in v4 for opt in options_of(p) if isinstance(opt, MpFastclose)]
    assert sent, "the capture's SO_LINGER 0 connection has an MP_FASTCLOSE"
    opt, p = sent[0]
    raw = next(v for k, v in p[TCP].options if k == forge.TCPOPT_MPTCP and v[0] >> 4 == 7)
    assert forge.fastclose_option(opt.receiver_key) == bytes(raw)
    assert decode_option(forge.fastclose_option(5), syn=False, ack=True) == MpFastclose(5)
