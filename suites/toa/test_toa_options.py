"""Which TCP option 254 reaches accept()/getpeername() on the backend.

A raw client plays the FULLNAT load balancer: it crafts SYN, the handshake-completing ACK
and a first data packet, each with the options a case names (suites.toa.lib.client).
The cases marked `by_kind` run for each option variant the TOA can be configured to read
(suites.toa.lib.wire.KINDS: 254/8, 200/8, the IPv6 253/20), ids naming it (kind200-len8).
"""

from __future__ import annotations

import pytest

from suites.toa.lib.net import CLI4, SRV4, SRV6, Conn, ToaNet
from suites.toa.lib.stats import delta
from suites.toa.lib.wire import EOL, EXP253, KINDS, NOP, OptionKind, toa

A = ("203.0.113.7", 4242)       # the "real client" a balancer reports
A6 = ("2001:db8:cafe::7", 4242)  # the same, for the IPv6 variants
B = ("203.0.113.99", 31337)
by_kind = pytest.mark.parametrize("toa_kind", KINDS, ids=[k.id for k in KINDS], indirect=True)


def client_for(kind: OptionKind) -> tuple[tuple[str, int], int, str]:
    """(the client the balancer reports, the IP version it connects with, the listener):
    an IPv6 variant's address only fits an IPv6 socket."""
    return (A6, 6, "dual") if kind.ipv6 else (A, 4, "v4")


def mapped(peer: tuple[str, int]) -> tuple[str, int]:
    return ("::ffff:" + peer[0], peer[1])


@by_kind
def test_option_in_the_third_ack_is_the_peer(toa_net: ToaNet, toa_kind: OptionKind) -> None:
    peer, ip, listener = client_for(toa_kind)
    (seen,) = toa_net.connect(Conn(ack_opts=toa_kind.option(*peer), ip=ip), listener=listener)
    assert seen.accept == seen.getpeername == peer
    # The local side is never rewritten (the dual-stack listener has its own port).
    assert seen.getsockname == ((SRV6, 5002) if ip == 6 else (SRV4, 5001))


def test_without_the_option_the_real_peer(toa_net: ToaNet) -> None:
    (seen,) = toa_net.connect(Conn())
    assert seen.accept == seen.getpeername == seen.real


@by_kind
def test_option_only_in_a_later_data_packet_or_the_syn_is_ignored(
        toa_net: ToaNet, toa_kind: OptionKind) -> None:
    # The server reads the data packet before getpeername(), so it has been processed;
    # only the ACK that creates the child counts (the SYN only for TCP Fast Open).
    peer, ip, listener = client_for(toa_kind)
    opt = toa_kind.option(*peer)
    seen = toa_net.connect(Conn(data_opts=opt, ip=ip), Conn(syn_opts=opt, ip=ip),
                           Conn(ack_opts=opt, ip=ip), listener=listener)
    assert [s.getpeername == s.accept == s.real for s in seen] == [True, True, False]
    assert seen[2].getpeername == peer      # the positive control, in the same call


# Every variant a TOA may meet, the IPv6 one of dpvs (254/20) included.
VARIANTS = (*KINDS, OptionKind(254, 20))


@by_kind
def test_only_the_configured_kind_and_length_are_read(toa_net: ToaNet,
                                                      toa_kind: OptionKind) -> None:
    """One connection per variant, on the configured variant's family: only the configured
    one is honoured. An IPv6 variant's address on an IPv4 socket could not be told at all."""
    _, ip, listener = client_for(toa_kind)
    seen = toa_net.connect(*(Conn(ack_opts=v.option(*client_for(v)[0]), ip=ip)
                             for v in VARIANTS), listener=listener)
    got = {v.id: s.getpeername for v, s in zip(VARIANTS, seen, strict=True)}
    assert got == {v.id: client_for(v)[0] if v == toa_kind else s.real
                   for v, s in zip(VARIANTS, seen, strict=True)}


@pytest.mark.parametrize("ip", [4, 6], ids=["v4-client", "v6-client"])
def test_dual_stack_listener_reports_v4_mapped(toa_net: ToaNet, toa_needs, ip: int) -> None:
    # The option only carries IPv4: an AF_INET6 socket gets ::ffff:a.b.c.d either way.
    toa_needs("syn_recv_sock_toa", "syn_recv_sock_no_toa")
    before = toa_net.stats()
    toa_seen, plain = toa_net.connect(Conn(ack_opts=toa(*A), ip=ip), Conn(ip=ip),
                                      listener="dual")
    assert toa_seen.accept == toa_seen.getpeername == mapped(A)
    assert plain.accept == plain.getpeername == plain.real
    # One handshake each, counted once: an IPv4 one on a dual-stack listener passes
    # tcp_v6_syn_recv_sock and the nested tcp_v4_syn_recv_sock, and only one may count
    # it (mutant toa-kmod-v6-probe-handles-v4 counted both, addresses still right).
    d = delta(before, toa_net.stats())
    assert (d["syn_recv_sock_toa"], d["syn_recv_sock_no_toa"]) == (1, 1), d


# Options of the third ACK -> the peer the backend must see ("real": no TOA taken).
MALFORMED = {
    "len7": (b"\xfe\x07" + toa(*A)[2:7], "real"),
    "len9": (toa(*A, length=9) + b"\x00", "real"),
    "len_past_header": (NOP + NOP + b"\xfe\x10" + toa(*A)[2:], "real"),
    "len20_ipv6_layout": (b"\xfe\x14" + bytes(18), "real"),
    "len20_then_valid": (b"\xfe\x14" + bytes(18) + toa(*B), B),
    "len7_then_valid": (b"\xfe\x07" + bytes(5) + toa(*B), B),
    "two_toa_first_wins": (toa(*A) + toa(*B), A),
    "len0_stops_parsing": (b"\xfd\x00" + NOP + NOP + toa(*A), "real"),
    "eol_then_toa": (EOL * 4 + toa(*A), "real"),
    "after_other_options": (NOP + EXP253 + NOP + toa(*A), A),
    "space_full_toa_last": (EXP253 * 8 + toa(*A), A),
    "space_full_toa_cut": (EXP253 * 9 + toa(*A)[:4], "real"),
    "truncated_at_end": (NOP * 6 + toa(*A)[:6], "real"),
    # One byte short: the option's length runs exactly one byte past the header (a bound
    # check off by one reads the address's last byte from beyond the options).
    "truncated_by_one": (NOP * 5 + toa(*A)[:7], "real"),
}


def test_malformed_options_each_have_a_defined_outcome(toa_net: ToaNet) -> None:
    # One call for all layouts (each its own connection); the health check covers oopses.
    seen = toa_net.connect(*(Conn(ack_opts=opts) for opts, _ in MALFORMED.values()))
    got = {case: "real" if s.getpeername == s.real else s.getpeername
           for case, s in zip(MALFORMED, seen, strict=True)}
    assert got == {case: want for case, (_, want) in MALFORMED.items()}
    assert all(s.accept == s.getpeername and s.getsockname == (SRV4, 5001) for s in seen)


def test_option_honoured_only_from_allowed_balancer_prefixes(toa_net: ToaNet) -> None:
    if toa_net.kind == "kmod":
        # By design the module trusts every peer: any client can claim any address.
        (seen,) = toa_net.connect(Conn(ack_opts=toa(*A)))
        assert seen.getpeername == A
        return
    # bpf/toa honours the option only from balancers in its allowlist (toa_allow).
    toa_net.allow("203.0.113.0/24", "2001:db8:ffff::/48")   # not the client 198.18.0.2
    before = toa_net.stats()
    (spoofed,) = toa_net.connect(Conn(ack_opts=toa(*A)))
    assert spoofed.accept == spoofed.getpeername == spoofed.real
    d = delta(before, toa_net.stats())
    assert (d["syn_recv_sock_toa_untrusted"], d["syn_recv_sock_toa"]) == (1, 0)
    toa_net.allow(f"{CLI4}/32")
    (trusted,) = toa_net.connect(Conn(ack_opts=toa(*A)))
    assert trusted.accept == trusted.getpeername == A
