"""suites.toa.lib.wire frames checked by an independent decoder (scapy) on the host."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from suites.toa.lib.wire import ACK, NOP, PSH, SYN, ip_frame, pad, parse_tcp, tcp_segment, toa

MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")


def test_toa_option_layout_is_kind_len_port_address_in_network_order() -> None:
    assert toa("203.0.113.7", 4242) == bytes([254, 8, 0x10, 0x92, 203, 0, 113, 7])
    assert toa("203.0.113.7", 4242, length=20)[:2] == bytes([254, 20])


@pytest.mark.parametrize("src, dst, l3", [("198.18.0.2", "198.18.0.1", IP),
                                          ("2001:db8::2", "2001:db8::1", IPv6)])
def test_frame_checksums_and_options_match_scapy(src: str, dst: str, l3: type) -> None:
    opts = NOP + NOP + toa("203.0.113.7", 4242)
    seg = tcp_segment(src, dst, 40000, 5001, 1000, 2000, PSH | ACK, opts, b"c1\n")
    pkt = Ether(ip_frame(MACS[0], MACS[1], src, dst, seg, ident=7))
    assert pkt.src == MACS[0] and pkt.dst == MACS[1] and pkt[l3].src == src
    tcp = pkt[TCP]
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.flags) == (40000, 5001, 1000, 2000, "PA")
    assert (254, toa("203.0.113.7", 4242)[2:]) in tcp.options
    assert bytes(tcp.payload) == b"c1\n"
    want = tcp.chksum
    del tcp.chksum
    if l3 is IP:
        ip_sum = pkt[IP].chksum
        del pkt[IP].chksum
    rebuilt = Ether(bytes(pkt))
    assert rebuilt[TCP].chksum == want
    if l3 is IP:
        assert rebuilt[IP].chksum == ip_sum


def test_parse_tcp_reads_back_what_was_built() -> None:
    seg = tcp_segment("198.18.0.1", "198.18.0.2", 5001, 40000, 7, 8, SYN | ACK)
    frame = ip_frame(MACS[1], MACS[0], "198.18.0.1", "198.18.0.2", seg)
    assert parse_tcp(frame) == ("198.18.0.1", "198.18.0.2", 5001, 40000, 7, 8, SYN | ACK)
    assert parse_tcp(frame[:20]) is None


def test_options_are_padded_and_bounded() -> None:
    assert pad(b"\x01" * 5) == b"\x01" * 5 + b"\x00" * 3
    with pytest.raises(ValueError, match="at most 40"):
        tcp_segment("198.18.0.2", "198.18.0.1", 1, 2, 0, 0, ACK, b"\x01" * 41)
