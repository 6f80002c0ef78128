"""suites.tipc.lib.parsers parsers and suites.tipc.lib.sock structs on real guest output.

Fixtures: tests/unit/data/tipc_* (captured by tests/unit/data/tipc_capture.py, one set per
kernel; see each .meta.json). Every test runs on each captured kernel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from suites.tipc.lib import parsers as t
from suites.tipc.lib.sock import (
    EVENT,
    SUBSCR,
    TIPC_PUBLISHED,
    TIPC_SUB_PORTS,
    TIPC_SUBSCR_TIMEOUT,
    Subscription,
    event_from_json,
    pack_subscr,
    unpack_event,
    unpack_subscr,
)

DATA = Path(__file__).parent / "data"
KERNELS = sorted({re.sub(r"^tipc_node_address_(.+)\.txt$", r"\1", p.name)
                  for p in DATA.glob("tipc_node_address_*.txt")})
NODES = ["tipc1", "tipc2", "tipc3"]


@pytest.fixture(params=KERNELS)
def data(request: pytest.FixtureRequest):
    def read(what: str, ext: str) -> str:
        return (DATA / f"tipc_{what}_{request.param}.{ext}").read_text()
    return read


def test_fixtures_exist_for_both_debian_kernels() -> None:
    assert any(k.startswith("6.1.") for k in KERNELS)
    assert any(k.startswith("6.12.") for k in KERNELS)


def test_node_hash_matches_the_kernel(data) -> None:
    # The kernel derived tipc1's address from the identity; we derive the same.
    assert t.parse_node_address(data("node_address", "txt")) == t.node_hash("tipc1")
    assert t.node_hash("tipc1") == 0x74697063 ^ 0x31000000    # "tipc" ^ "1\0\0\0"
    assert t.node_id_bytes("tipc1") == b"tipc1" + b"\0" * 11


def test_node_identity(data) -> None:
    me = t.parse_node_identity(data("node_identity", "txt"))
    assert me == t.NodeIdentity("tipc1", t.node_hash("tipc1"))
    assert t.parse_node_identity(data("node_identity_unset", "txt")) == t.NodeIdentity("", 0)


def test_node_list_after_a_peer_left(data) -> None:
    assert t.parse_node_list(data("node_list", "txt")) == [
        t.PeerNode(p, t.node_hash(p), state) for p, state in (("tipc2", "up"),
                                                             ("tipc3", "down"))]


def test_bearer_list(data) -> None:
    assert t.parse_bearer_list(data("bearer_list", "txt")) == [t.Bearer("eth", "eth1"),
                                                               t.Bearer("udp", "u1")]


def test_link_list_json_and_plain_agree(data) -> None:
    for what, down in (("link_list", set()), ("link_list_down", {"tipc1:eth1-tipc3:eth1"})):
        js = t.parse_link_list_json(data(what, "json"))
        assert js == t.parse_link_list(data(what, "txt"))
        assert js[t.BROADCAST_LINK] == "up"
        assert {n for n, s in js.items() if s == "down"} == down
        assert set(js) == {t.BROADCAST_LINK, "tipc1:eth1-tipc2:eth1", "tipc1:eth1-tipc3:eth1",
                           "tipc1:u1-tipc2:u1"}
    name = t.parse_link_name("tipc1:u1-tipc2:u1")
    assert name == t.LinkName("tipc1", "u1", "tipc2", "u1")
    assert str(name) == "tipc1:u1-tipc2:u1"


def test_link_stats(data) -> None:
    stats = t.parse_link_stats_json(data("link_stat", "json"))
    assert set(stats) == {t.BROADCAST_LINK, "tipc1:eth1-tipc2:eth1", "tipc1:eth1-tipc3:eth1",
                          "tipc1:u1-tipc2:u1"}
    bc = stats[t.BROADCAST_LINK]
    assert bc.is_broadcast and bc.state == () and bc.mtu is None
    # 50 broadcast multicasts of 3000 bytes: each one 3 fragments (MTU 1500), + 1 marker.
    assert bc["tx_fragmented"] == 50 and bc["tx_fragments"] == 150
    assert bc["tx_packets"] >= 151
    eth = stats["tipc1:eth1-tipc2:eth1"]
    assert eth.state in (("ACTIVE",), ("STANDBY",))
    assert (eth.mtu, eth.priority, eth.tolerance) == (1500, 10, 1500)
    assert sum(eth.profile.values()) in range(99, 102)   # percentages, rounded
    assert {"rx_packets", "tx_packets", "rx_probes", "tx_retrans", "send_queue_avg",
            "congestion_link"} <= set(eth.counters)
    # The plain form shows the same numbers (spot-check the broadcast-link TX line).
    plain = data("link_stat", "txt")
    assert (f"TX packets:{bc['tx_packets']} fragments:{bc['tx_fragments']}/"
            f"{bc['tx_fragmented']}") in plain


def test_nametable(data) -> None:
    pubs = t.parse_nametable_json(data("nametable", "json"))
    hashes = {t.node_hash(n): n for n in NODES}
    assert {(p.lower, p.node) for p in t.of_type(pubs, t.TIPC_NODE_STATE)} == set(hashes.items())
    [top] = t.of_type(pubs, t.TIPC_TOP_SRV)
    assert (top.lower, top.upper, top.scope, top.node) == (1, 1, "node", "tipc1")
    assert {p.lower for p in t.of_type(pubs, t.TIPC_LINK_STATE)} == \
        {t.node_hash("tipc2"), t.node_hash("tipc3")}
    user = sorted((p.type, p.lower, p.upper, p.scope, p.node) for p in pubs if p.type >= 64)
    assert user == [(18800, 10, 19, "cluster", "tipc2"), (18801, 5, 5, "node", "tipc1")]
    # Every JSON row is a row of the plain table too.
    rows = {tuple(line.split()) for line in data("nametable", "txt").splitlines()[1:]}
    assert {(str(p.type), str(p.lower), str(p.upper), p.scope, str(p.port), p.node)
            for p in pubs} == rows


def test_topology_events(data) -> None:
    cap = json.loads(data("topsrv_events", "json"))
    sent = bytes.fromhex(cap["subscription"])
    assert len(sent) == SUBSCR.size == 28
    sub = unpack_subscr(sent)
    assert sub == Subscription(0, 0, 0xFFFFFFFF, 500, TIPC_SUB_PORTS, b"knit")
    assert pack_subscr(sub) == sent
    events = [unpack_event(bytes.fromhex(h)) for h in cap["events"]]
    assert all(len(bytes.fromhex(h)) == EVENT.size == 48 for h in cap["events"])
    # One PUBLISHED per cluster member, then the subscription's own timeout.
    assert sorted((e.found_lower, e.found_upper, e.node) for e in events[:-1]
                  if e.event == TIPC_PUBLISHED) == sorted((h, h, h) for h in
                                                          map(t.node_hash, NODES))
    assert events[-1].event == TIPC_SUBSCR_TIMEOUT
    assert all(e.sub == sub for e in events)       # the kernel echoes the subscription
    assert all(event_from_json(e.to_json()) == e for e in events)


def test_parsers_reject_garbage(data) -> None:
    with pytest.raises(ValueError):
        t.parse_link_list("broadcast-link up")
    with pytest.raises(ValueError):
        t.parse_link_list_json('[{"x": "sideways"}]')
    with pytest.raises(ValueError):
        t.parse_node_list(data("bearer_list", "txt"))
    with pytest.raises(ValueError):
        t.parse_node_identity(data("node_list", "txt"))       # header has a State column
    with pytest.raises(ValueError):
        t.parse_node_address("tipc1")
    with pytest.raises(ValueError):
        t.parse_nametable_json('[{"type": "0"}]')
    with pytest.raises(ValueError):
        t.parse_link_stats_json('[{"link": "x", "window": "50"}]')
    with pytest.raises(ValueError):
        t.parse_bearer_list("eth eth1")
    with pytest.raises(ValueError):
        unpack_event(b"\0" * 47)
    with pytest.raises(ValueError):
        t.node_id_bytes("has space")


# -- a silent link on the wire (tests/unit/data/tipc_probe_capture.py) -------------------

SILENT = sorted(p for p in DATA.glob("tipc_silent_link_*.json")
                if not p.name.endswith(".meta.json"))


def test_abort_limit_follows_node_c() -> None:
    # interval = min(tol/4, 500) ms, abort_limit = tol / interval (integer divisions)
    assert [t.abort_limit(tol) for tol in (50, 1500, 2000, 3000, 5000, 30000)] == \
        [4, 4, 4, 6, 10, 60]
    assert t.silent_link_probes(1500) == 5 and t.silent_link_probes(3000) == 7


@pytest.mark.parametrize("path", SILENT, ids=lambda p: p.stem.removeprefix("tipc_silent_link_"))
def test_silent_link_capture(path: Path) -> None:
    cap = json.loads(path.read_text())
    frames = t.parse_capture(cap["frames"])
    t1, t2, t3 = (t.node_hash(n) for n in NODES)
    heard, sent = t.sent_after_last_heard(frames, own=t1, peer=t3)
    # The last packet from tipc3 was a STATE_MSG, before the cut ended (on 6.1.0-57 it
    # came 0.23 s after `ip link set p3 down` began, which took 0.46 s).
    assert heard is not None and heard.prevnode == t3 and heard.destnode == t1
    assert (heard.user, heard.mtype) == (t.LINK_PROTOCOL, t.STATE_MSG)
    assert heard.t <= cap["cut_end"]
    # After it, tipc1 sent tipc3 nothing but probes, one a timer interval (375 ms for
    # 1500 ms: never early), abort_limit + 1 of them.
    assert cap["tolerance_ms"] == 1500 and all(f.is_probe for f in sent)
    assert len(sent) == t.silent_link_probes(cap["tolerance_ms"]) == 5
    gaps = [b.t - a.t for a, b in zip([heard, *sent[:-1]], sent, strict=True)]
    assert all(0.375 <= g < 0.5 for g in gaps[1:]) and 0 < gaps[0] < 0.5, gaps
    # ... then a RESET_MSG once the link was down; it is not counted.
    last = [f for f in frames if f.outgoing and f.destnode == t3][-1]
    assert (last.user, last.mtype, last.t > sent[-1].t) == (t.LINK_PROTOCOL, 1, True)
    # A quiet link probes before the cut too: each probe answered, so none counts.
    before = [f for f in frames if f.outgoing and f.is_probe and f.t < heard.t]
    assert before and all(f.destnode in (t2, t3) for f in before)
    # tipc2's probes to tipc3, flooded to us once the bridge lost tipc3's port, are
    # not from tipc3 (PACKET_OTHERHOST); discovery broadcasts are not link traffic.
    assert any(f.pkttype == 3 and f.prevnode == t2 for f in frames)
    assert not any(f.heard_from(t3) for f in frames if f.user == t.LINK_CONFIG)
    # Without that last packet, the probe before it counts too.
    _, more = t.sent_after_last_heard([f for f in frames if f is not heard], own=t1, peer=t3)
    assert len(more) > len(sent)


def test_silent_link_fixture_exists() -> None:
    assert any(p.name.startswith("tipc_silent_link_6.12.") for p in SILENT)


def test_tipc_frame_rejects_garbage() -> None:
    cap = json.loads(SILENT[0].read_text())
    frame = next(bytes.fromhex(f["hex"]) for f in cap["frames"] if f["pkttype"] == 0)
    assert t.parse_tipc_frame(frame).user == t.LINK_PROTOCOL
    with pytest.raises(ValueError):
        t.parse_tipc_frame(frame[:12] + b"\x08\x00" + frame[14:])    # IPv4 ethertype
    with pytest.raises(ValueError):
        t.parse_tipc_frame(frame[:30])                               # header cut short
    with pytest.raises(ValueError):
        t.parse_tipc_frame(frame[:14] + b"\x00" + frame[15:])        # version 0
