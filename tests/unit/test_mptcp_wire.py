"""Tests for suites.mptcp.lib.wire.

test_real_*: a real loopback capture (tests/unit/data/mptcp_loopback_<kernel>.pcap, see its
.meta.json): 3 MPTCP connections, 127.0.0.1 and ::1, graceful close and SO_LINGER 0.
test_rfc_layout_*: subtypes that loopback cannot produce without endpoint config
(MP_JOIN, ADD_ADDR, RM_ADDR, MP_PRIO, MP_FAIL, ...). Vectors are encoded here from the
RFC 8684 figures; to be replaced by VM captures.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import struct
from collections import Counter
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

from suites.mptcp.lib.wire import (
    AddAddr,
    Dss,
    Malformed,
    MpCapable,
    MpFail,
    MpFastclose,
    MpJoin,
    MpPrio,
    MpTcpRst,
    RemoveAddr,
    Unknown,
    WireEvent,
    decode_option,
    events_of,
    options_of,
    select,
    sequence,
    summarize,
)

DATA = Path(__file__).parent / "data"
PCAP = DATA / "mptcp_loopback_6.18.44-fc-v657.pcap"
PORT = 47123
PAYLOAD_LEN = 4400  # b"knit-mptcp-" * 400, see mptcp_loopback_traffic.py


@pytest.fixture(scope="module")
def events() -> list[WireEvent]:
    return sequence(PCAP)


def _connections(events: list[WireEvent]) -> dict[tuple[str, int], list[WireEvent]]:
    # Key by (address, client port): the server side is always PORT.
    conns: dict[tuple[str, int], list[WireEvent]] = {}
    for e in events:
        cport = e.sport if e.dport == PORT else e.dport
        conns.setdefault((e.src, cport), []).append(e)
    return conns


def _idsn(key: int) -> int:
    # RFC 8684 §3.1: IDSN = least significant 64 bits of SHA-256(key).
    return int.from_bytes(hashlib.sha256(key.to_bytes(8, "big")).digest()[-8:], "big")


def _token(key: int) -> int:
    # RFC 8684 §3.2: token = most significant 32 bits of SHA-256(key).
    return int.from_bytes(hashlib.sha256(key.to_bytes(8, "big")).digest()[:4], "big")


# --- real capture -------------------------------------------------------------------


def test_real_subtype_counts(events: list[WireEvent]) -> None:
    counts = Counter(e.name for e in events)
    assert counts == {"MP_CAPABLE": 12, "DSS": 23, "MP_FASTCLOSE": 1, "MP_TCPRST": 1}
    assert not select(events, Malformed) and not select(events, Unknown)


def test_real_three_connections_v4_and_v6(events: list[WireEvent]) -> None:
    conns = _connections(events)
    assert len(conns) == 3
    assert sorted(addr for addr, _ in conns) == ["127.0.0.1", "127.0.0.1", "::1"]


def test_real_mp_capable_handshake(events: list[WireEvent]) -> None:
    for conn in _connections(events).values():
        mpc = [e for e in conn if isinstance(e.option, MpCapable)]
        assert [e.option.variant for e in mpc] == ["syn", "synack", "ack", "ack_data"]
        assert [e.flags for e in mpc] == ["S", "SA", "A", "PA"]
        syn, synack, ack, ack_data = (e.option for e in mpc)
        for o in (syn, synack, ack, ack_data):
            assert isinstance(o, MpCapable)
            assert o.version == 1
            assert o.hmac_sha256 and not o.checksum_required and not o.extensibility
        assert syn.sender_key is None
        assert synack.sender_key is not None and synack.receiver_key is None
        # Third ACK echoes the server key back as receiver key.
        assert ack.receiver_key == synack.sender_key
        assert ack_data.sender_key == ack.sender_key
        assert ack_data.receiver_key == ack.receiver_key
        assert ack_data.data_len == PAYLOAD_LEN == mpc[-1].payload_len
        assert ack_data.checksum is None  # net.mptcp.checksum_enabled=0 on the host


def test_real_dss_acks_follow_idsn_from_keys(events: list[WireEvent]) -> None:
    for conn in _connections(events).values():
        ack = next(
            e.option for e in conn if isinstance(e.option, MpCapable) and e.option.variant == "ack"
        )
        client_key, server_key = ack.sender_key, ack.receiver_key
        assert client_key is not None and server_key is not None
        dss = [e for e in conn if isinstance(e.option, Dss)]
        # First DSS is the server acking the client's 4400 bytes at data level.
        first = dss[0].option
        assert first.has_ack and first.ack64 and not first.has_map
        assert first.data_ack == (_idsn(client_key) + 1 + PAYLOAD_LEN) % 2**64
        # Server's 2-byte reply maps from its own IDSN + 1.
        reply = next(e.option for e in dss if e.payload_len == 2)
        assert reply.has_map and reply.dsn64
        assert reply.dsn == (_idsn(server_key) + 1) % 2**64
        assert (reply.subflow_seq, reply.data_len) == (1, 2)


def test_real_data_fin_graceful_close(events: list[WireEvent]) -> None:
    fins = [e for e in events if isinstance(e.option, Dss) and e.option.data_fin]
    # Two graceful connections, DATA_FIN from each side.
    assert len(fins) == 4
    for e in fins:
        # RFC 8684 §3.3.3: DATA_FIN without payload: ssn 0, data-level length 1.
        assert e.payload_len == 0 and e.flags == "A"
        assert (e.option.subflow_seq, e.option.data_len) == (0, 1)
    assert {e.src for e in fins} == {"127.0.0.1", "::1"}


def test_real_fastclose_and_tcprst(events: list[WireEvent]) -> None:
    conn = _connections(events)[("127.0.0.1", events[-1].sport)]
    synack = next(e.option for e in conn if e.flags == "SA")
    fc = select(events, MpFastclose)
    rst = select(events, MpTcpRst)
    assert len(fc) == len(rst) == 1
    # Same RST packet carries both; MP_FASTCLOSE carries the peer's (server's) key.
    assert fc[0].flags == rst[0].flags == "RA" and fc[0].time == rst[0].time
    assert fc[0].dport == PORT
    assert fc[0].option.receiver_key == synack.sender_key
    assert rst[0].option.reason_name == "unspecified" and not rst[0].option.transient


def test_real_summarize_and_select(events: list[WireEvent]) -> None:
    summary = summarize(events)
    assert summary == summarize(rdpcap(str(PCAP)))
    assert ("::1", "::1", "S", "MP_CAPABLE") in summary
    assert ("127.0.0.1", "127.0.0.1", "RA", "MP_FASTCLOSE") in summary
    assert len(select(events, MpCapable, variant="syn", dport=PORT)) == 3
    assert len(select(events, MpCapable, src="::1")) == 4
    assert len(select(events, Dss, data_fin=True, src="::1")) == 2


def test_real_events_in_capture_order(events: list[WireEvent]) -> None:
    times = [e.time for e in events]
    assert times == sorted(times)
    assert len(events) == len(list(events_of(rdpcap(str(PCAP)))))


def test_real_truncations_never_raise(events: list[WireEvent]) -> None:
    # Every strict prefix of a real option value decodes without raising, to Malformed,
    # except the 20-byte prefix of MP_CAPABLE ack_data, which is itself the plain ack.
    pkts = rdpcap(str(PCAP))
    values = {
        (bytes(v), bool(p[TCP].flags & 0x02), bool(p[TCP].flags & 0x10))
        for p in pkts
        for k, v in p[TCP].options
        if k == 30
    }
    assert values
    for value, syn, ack in values:
        for cut in range(len(value)):
            o = decode_option(value[:cut], syn, ack)
            if isinstance(o, MpCapable):
                assert (o.variant, cut + 2) == ("ack", 20)
            else:
                assert isinstance(o, Malformed)


def test_random_bytes_never_raise() -> None:
    rng = random.Random(8684)
    for _ in range(5000):
        value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        decode_option(value, rng.random() < 0.5, rng.random() < 0.5)


def test_options_of_non_tcp_and_plain_tcp() -> None:
    assert options_of(IP() / UDP()) == []
    assert options_of(IP() / TCP(options=[("MSS", 1460)])) == []


# --- RFC 8684 layouts (to be replaced by VM captures) ----------------------------------


def _hdr(subtype: int, nibble: int = 0) -> int:
    return (subtype << 4) | nibble


def test_rfc_layout_mp_capable_ack_data_with_checksum() -> None:
    # §3.1 fig. 4, length 24: sender key, receiver key, data-level length, checksum.
    v = struct.pack("!BBQQHH", _hdr(0, 1), 0x81, 1, 2, 1000, 0xBEEF)
    o = decode_option(v, syn=False, ack=True)
    assert o == MpCapable("ack_data", 1, 0x81, 1, 2, 1000, 0xBEEF)
    assert o.checksum_required and o.hmac_sha256


def test_rfc_layout_mp_capable_length_must_match_flags() -> None:
    # A 12-byte (SYN-ACK) layout on a plain ACK is rejected, as the kernel does.
    v = struct.pack("!BBQ", _hdr(0, 1), 0x01, 7)
    assert isinstance(decode_option(v, syn=False, ack=True), Malformed)
    assert decode_option(v, syn=True, ack=True) == MpCapable("synack", 1, 1, 7)


def test_rfc_layout_mp_join_syn_synack_ack() -> None:
    # §3.2 fig. 5/6/7: lengths 12, 16, 24.
    syn = struct.pack("!BBII", _hdr(1, 1), 3, 0xA1B2C3D4, 0x01020304)
    assert decode_option(syn, syn=True, ack=False) == MpJoin(
        "syn", backup=True, address_id=3, receiver_token=0xA1B2C3D4, sender_random=0x01020304
    )
    synack = struct.pack("!BBQI", _hdr(1, 0), 0, 0x1122334455667788, 0x99AABBCC)
    assert decode_option(synack, syn=True, ack=True) == MpJoin(
        "synack",
        backup=False,
        address_id=0,
        truncated_hmac=0x1122334455667788,
        sender_random=0x99AABBCC,
    )
    hmac = bytes(range(20))
    ack = bytes([_hdr(1), 0]) + hmac
    assert decode_option(ack, syn=False, ack=True) == MpJoin("ack", hmac=hmac)
    assert isinstance(decode_option(syn[:-1], syn=True, ack=False), Malformed)


def test_rfc_layout_mp_join_syn_via_scapy_packet() -> None:
    key = 0x0123456789ABCDEF
    value = struct.pack("!BBII", _hdr(1, 0), 2, _token(key), 42)
    pkt = IP(src="10.0.2.2", dst="10.0.2.1") / TCP(
        sport=40000, dport=10000, flags="S", options=[("MSS", 1460), (30, value)]
    )
    evs = list(events_of([IP(bytes(pkt))]))  # round-trip through wire bytes
    hits = select(evs, MpJoin, variant="syn", src="10.0.2.2", dst="10.0.2.1")
    assert len(hits) == 1 and hits[0].option.receiver_token == _token(key)


@pytest.mark.parametrize(
    ("addr", "port", "echo", "wire_len"),
    [
        ("10.0.2.2", None, False, 16),
        ("10.0.2.2", 10100, False, 18),
        ("10.0.2.2", None, True, 8),
        ("10.0.2.2", 10100, True, 10),
        ("2001:db8::2", None, False, 28),
        ("2001:db8::2", 10100, False, 30),
        ("2001:db8::2", None, True, 20),
        ("2001:db8::2", 10100, True, 22),
    ],
)
def test_rfc_layout_add_addr(addr: str, port: int | None, echo: bool, wire_len: int) -> None:
    # §3.4.1 fig. 15: subtype|(rsv)|E, id, address, [port], [truncated HMAC if E=0].
    ip = ipaddress.ip_address(addr)
    v = bytes([_hdr(3, int(echo)), 5]) + ip.packed
    if port is not None:
        v += struct.pack("!H", port)
    hmac = None if echo else 0x0102030405060708
    if hmac is not None:
        v += struct.pack("!Q", hmac)
    assert len(v) + 2 == wire_len
    o = decode_option(v, syn=False, ack=True)
    assert o == AddAddr(echo=echo, address_id=5, address=ip, port=port, truncated_hmac=hmac)
    assert o.ipver == ip.version


def test_rfc_layout_add_addr_port_selectable() -> None:
    v = bytes([_hdr(3), 1]) + ipaddress.ip_address("10.0.3.2").packed + struct.pack("!HQ", 10100, 9)
    pkt = IP(src="10.0.2.1", dst="10.0.2.2") / TCP(flags="A", options=[(30, v)])
    evs = list(events_of([IP(bytes(pkt))]))
    assert select(evs, AddAddr, port=10100, address="10.0.3.2")
    assert isinstance(decode_option(v + b"\x00", False, True), Malformed)


def test_rfc_layout_remove_addr() -> None:
    # §3.4.2 fig. 16: one byte per address id, 1..8 ids (kernel MPTCP_RM_IDS_MAX).
    assert decode_option(bytes([_hdr(4), 1, 2, 7]), False, True) == RemoveAddr((1, 2, 7))
    assert isinstance(decode_option(bytes([_hdr(4)]), False, True), Malformed)
    assert isinstance(decode_option(bytes([_hdr(4)]) + bytes(9), False, True), Malformed)


def test_rfc_layout_mp_prio() -> None:
    # §3.3.8 fig. 11: length 3; the RFC 6824 form had an address id (length 4).
    assert decode_option(bytes([_hdr(5, 1)]), False, True) == MpPrio(backup=True)
    assert decode_option(bytes([_hdr(5, 0), 4]), False, True) == MpPrio(False, 4)


def test_rfc_layout_dss_32bit_with_checksum() -> None:
    # §3.3 fig. 9: flags A|M (32-bit ack and DSN), then ack, DSN, SSN, length, checksum.
    v = struct.pack("!BBIIIHH", _hdr(2), 0x05, 10, 20, 30, 40, 0xABCD)
    assert decode_option(v, False, True) == Dss(0x05, 10, 20, 30, 40, 0xABCD)
    assert isinstance(decode_option(v[:-1], False, True), Malformed)
    # Bare DSS with no ack and no mapping is the 4-byte base.
    assert decode_option(bytes([_hdr(2), 0]), False, True) == Dss(0)


def test_rfc_layout_mp_fail_fastclose_tcprst() -> None:
    # §3.7 MP_FAIL and §3.5 MP_FASTCLOSE: 12 bytes, 8-byte payload after 12 reserved bits.
    assert decode_option(struct.pack("!BBQ", _hdr(6), 0, 77), False, True) == MpFail(77)
    assert decode_option(struct.pack("!BBQ", _hdr(7), 0, 5), False, True) == MpFastclose(5)
    # §3.6: subtype|U V W T, reason.
    rst = decode_option(bytes([_hdr(8, 0x1), 0x06]), False, True)
    assert rst == MpTcpRst(flags=1, reason=6)
    assert rst.transient and rst.reason_name == "middlebox-interference"


def test_rfc_layout_unknown_and_empty() -> None:
    assert decode_option(bytes([0xF0, 1, 2]), False, True) == Unknown(0xF, b"\xf0\x01\x02")
    assert decode_option(b"", True, False) == Malformed(None, b"", "empty option")


def test_options_of_ipv6() -> None:
    v = struct.pack("!BBQ", _hdr(7), 0, 9)
    pkt = IPv6(src="::1", dst="::1") / TCP(flags="RA", options=[(30, v)])
    assert options_of(IPv6(bytes(pkt))) == [MpFastclose(9)]
