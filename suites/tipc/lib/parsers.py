"""Parsers for iproute2 ``tipc`` output, and TIPC naming rules. Pure functions, no I/O.

``tipc -j`` (iproute2 6.1) gives JSON for ``link list``, ``link stat show`` and
``nametable show``; those are parsed from JSON. ``bearer list``, ``node list`` and
``node get identity|address`` ignore ``-j`` and print text, parsed here line by line.
Every parser raises ValueError on input it does not recognise, so a changed tool output
fails loudly instead of reading as "no links".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

# Service types reserved by TIPC (linux/tipc.h): the RHEL guide's "type 0/1/2".
TIPC_NODE_STATE = 0   # one publication per cluster member (instance = node address)
TIPC_TOP_SRV = 1      # the topology service
TIPC_LINK_STATE = 2   # one publication per working link to a peer (instance = peer address)

NODE_ID_LEN = 16
_NAME_RX = re.compile(r"^[0-9A-Za-z_.:@-]{1,16}$")
_HEX_RX = re.compile(r"^[0-9A-Fa-f]{1,32}$")


# -- naming -----------------------------------------------------------------------------

def node_id_bytes(identity: str) -> bytes:
    """The 16-byte node id that ``tipc node set identity`` sends (iproute2 str2nodeid).

    A name (<= 16 chars of [0-9A-Za-z-_.:@]) is copied as is and zero padded; otherwise a
    hex string is read two digits a byte, left aligned.
    """
    if _NAME_RX.match(identity):
        return identity.encode().ljust(NODE_ID_LEN, b"\0")
    if _HEX_RX.match(identity):
        digits = identity if len(identity) % 2 == 0 else identity + "0"
        return bytes.fromhex(digits).ljust(NODE_ID_LEN, b"\0")
    raise ValueError(f"not a TIPC node identity: {identity!r}")


def node_hash(identity: str) -> int:
    """The 32-bit node address the kernel derives from an identity (hash128to32 in
    net/tipc/addr.h: XOR of the four big-endian words, or their OR if that is 0)."""
    raw = node_id_bytes(identity)
    words = [int.from_bytes(raw[i:i + 4], "big") for i in range(0, NODE_ID_LEN, 4)]
    x = words[0] ^ words[1] ^ words[2] ^ words[3]
    return x or (words[0] | words[1] | words[2] | words[3])


@dataclass(frozen=True)
class LinkName:
    """``<own id>:<own if>-<peer id>:<peer if>``: the link name format of the RHEL guide."""

    node: str
    ifname: str
    peer: str
    peer_ifname: str

    def __str__(self) -> str:
        return f"{self.node}:{self.ifname}-{self.peer}:{self.peer_ifname}"


_LINK_RX = re.compile(r"^(?P<node>[^:]+):(?P<ifname>[^-]+)-(?P<peer>[^:]+):(?P<peer_ifname>.+)$")


def parse_link_name(name: str) -> LinkName:
    """Split a unicast link name. Assumes node ids without ':' and interface/bearer names
    without '-' (the name format itself is ambiguous otherwise)."""
    m = _LINK_RX.match(name)
    if not m:
        raise ValueError(f"not a TIPC unicast link name: {name!r}")
    return LinkName(**m.groupdict())


# -- tipc link list ---------------------------------------------------------------------

BROADCAST_LINK = "broadcast-link"


def parse_link_list_json(text: str) -> dict[str, str]:
    """``tipc -j link list``: link name -> state ("up"/"down"), broadcast-link included.

    iproute2 prints a list of one object (``[{"broadcast-link": "up", "a:e-b:e": "up"}]``).
    """
    data = json.loads(text)
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ValueError("tipc link list JSON: expected a list of objects")
    out: dict[str, str] = {}
    for obj in data:
        for name, state in obj.items():
            if state not in ("up", "down"):
                raise ValueError(f"tipc link list JSON: {name} has state {state!r}")
            out[name] = state
    return out


def parse_link_list(text: str) -> dict[str, str]:
    """Plain ``tipc link list``: ``<name>: up|down`` per line."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, state = line.rstrip().rpartition(": ")
        if not sep or state not in ("up", "down"):
            raise ValueError(f"tipc link list line {lineno}: unexpected {line!r}")
        out[name] = state
    return out


# -- tipc link stat show ----------------------------------------------------------------

@dataclass(frozen=True)
class LinkStats:
    """One link of ``tipc -j link stat show``. Counters are flattened to snake case:
    ``rx_packets``, ``tx_packets``, ``rx_fragments``, ``tx_retrans``, ``rx_probes``...
    """

    name: str
    state: tuple[str, ...]           # ("ACTIVE",) / ("STANDBY",); () for broadcast-link
    mtu: int | None
    priority: int | None
    tolerance: int | None            # ms
    window: int
    counters: dict[str, int] = field(default_factory=dict)
    profile: dict[str, int] = field(default_factory=dict)  # message size histogram, %

    @property
    def is_broadcast(self) -> bool:
        return self.name == BROADCAST_LINK

    def __getitem__(self, counter: str) -> int:
        return self.counters[counter]


def _snake(key: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", key.lower()).strip("_")


def _int(name: str, key: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"tipc link stat JSON: {name}.{key}={value!r} is not an integer")
    return value


def parse_link_stats_json(text: str) -> dict[str, LinkStats]:
    """``tipc -j link stat show``: link name -> LinkStats."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("tipc link stat JSON: expected a list")
    out: dict[str, LinkStats] = {}
    for obj in data:
        if not isinstance(obj, dict) or "link" not in obj:
            raise ValueError(f"tipc link stat JSON: entry without 'link': {obj!r}")
        name = obj["link"]
        counters: dict[str, int] = {}
        profile: dict[str, int] = {}
        for key, value in obj.items():
            if key in ("link", "state", "mtu", "priority", "tolerance", "window"):
                continue
            if isinstance(value, dict):
                # {"rx packets": {"rx packets": 2, "fragments": 0}} -> rx_packets, rx_fragments
                direction = key.split()[0]
                for sub, v in value.items():
                    ck = _snake(sub) if sub == key else f"{direction}_{_snake(sub)}"
                    counters[ck] = _int(name, f"{key}.{sub}", v)
            elif re.match(r"^(\d+)?-\d+$", key):     # "0-64", "-256": size histogram
                profile[key] = _int(name, key, value)
            elif key == "avg":                       # follows "send queue max"
                counters["send_queue_avg"] = _int(name, key, value)
            else:
                counters[_snake(key)] = _int(name, key, value)
        state = obj.get("state", [])
        if not isinstance(state, list):
            raise ValueError(f"tipc link stat JSON: {name}.state={state!r} is not a list")
        out[name] = LinkStats(
            name=name, state=tuple(state), mtu=obj.get("mtu"), priority=obj.get("priority"),
            tolerance=obj.get("tolerance"), window=_int(name, "window", obj.get("window")),
            counters=counters, profile=profile)
    return out


# -- tipc nametable show ----------------------------------------------------------------

@dataclass(frozen=True)
class Publication:
    type: int
    lower: int
    upper: int
    scope: str      # "cluster" | "node"
    port: int       # the publishing socket's port id (0 for the kernel's own type 0/2)
    node: str       # node identity of the publisher ("" before the node has one)


def parse_nametable_json(text: str) -> list[Publication]:
    """``tipc -j nametable show``: one Publication per row."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("tipc nametable JSON: expected a list")
    out = []
    for row in data:
        try:
            pub = Publication(type=row["type"], lower=row["lower"], upper=row["upper"],
                              scope=row["scope"], port=row["port"], node=row["node"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"tipc nametable JSON: bad row {row!r}") from e
        for k in ("type", "lower", "upper", "port"):
            v = getattr(pub, k)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"tipc nametable JSON: {k}={v!r} is not an integer")
        out.append(pub)
    return out


def of_type(pubs: list[Publication], type_: int) -> list[Publication]:
    return [p for p in pubs if p.type == type_]


# -- tipc bearer list -------------------------------------------------------------------

@dataclass(frozen=True)
class Bearer:
    media: str      # "eth", "udp", "ib"
    name: str       # device for eth/ib, the bearer name for udp

    def __str__(self) -> str:
        return f"{self.media}:{self.name}"


def parse_bearer_list(text: str) -> list[Bearer]:
    """``tipc bearer list``: ``<media>:<name>`` per line (text only; -j is ignored)."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        media, sep, name = line.partition(":")
        if not sep or not media or not name or " " in line:
            raise ValueError(f"tipc bearer list line {lineno}: unexpected {line!r}")
        out.append(Bearer(media, name))
    return out


# -- tipc node list / node get ----------------------------------------------------------

@dataclass(frozen=True)
class PeerNode:
    identity: str
    hash: int
    state: str      # "up" | "down"


_NODE_HEADER_RX = re.compile(r"^Node Identity\s+Hash(\s+State)?\s*$")


def _split_header(text: str, what: str, want_state: bool) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{what}: empty output")
    m = _NODE_HEADER_RX.match(lines[0])
    if not m or bool(m.group(1)) != want_state:
        raise ValueError(f"{what}: unexpected header {lines[0]!r}")
    return lines[1:]


def parse_node_list(text: str) -> list[PeerNode]:
    """``tipc node list``: header, then ``<identity> <hash hex> <up|down>`` per peer."""
    out = []
    for line in _split_header(text, "tipc node list", want_state=True):
        parts = line.split()
        if len(parts) != 3 or parts[2] not in ("up", "down"):
            raise ValueError(f"tipc node list: unexpected {line!r}")
        out.append(PeerNode(parts[0], int(parts[1], 16), parts[2]))
    return out


@dataclass(frozen=True)
class NodeIdentity:
    identity: str   # "" until `node set identity` (or an address) is given
    hash: int       # the node address; 0 until the address trial period has ended


def parse_node_identity(text: str) -> NodeIdentity:
    """``tipc node get identity``: header, then ``[<identity>] <hash hex>``."""
    rows = _split_header(text, "tipc node get identity", want_state=False)
    if len(rows) != 1:
        raise ValueError(f"tipc node get identity: expected one row, got {rows!r}")
    parts = rows[0].split()
    if len(parts) == 1:                      # no identity yet: only the hash column
        return NodeIdentity("", int(parts[0], 16))
    if len(parts) != 2:
        raise ValueError(f"tipc node get identity: unexpected {rows[0]!r}")
    return NodeIdentity(parts[0], int(parts[1], 16))


def parse_node_address(text: str) -> int:
    """``tipc node get address``: the node address as 8 hex digits."""
    s = text.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{8}", s):
        raise ValueError(f"tipc node get address: unexpected {s!r}")
    return int(s, 16)


def tx_messages(stats: LinkStats) -> int:
    """Messages a link sent: packets, with each bundle counted as the messages inside."""
    return stats["tx_packets"] - stats["tx_bundles"] + stats["tx_bundled"]


def rx_messages(stats: LinkStats) -> int:
    """Messages a link received, bundles unpacked as in tx_messages."""
    return stats["rx_packets"] - stats["rx_bundles"] + stats["rx_bundled"]


# -- link supervision and the wire ------------------------------------------------------

def abort_limit(tolerance_ms: int) -> int:
    """The probe intervals a link may stay silent (net/tipc/node.c): the node timer runs
    every min(tolerance/4, 500) ms (tipc_node_calculate_timer) and sets the link's
    abort_limit to tolerance / that interval, integer divisions both."""
    return tolerance_ms // min(tolerance_ms // 4, 500)


def silent_link_probes(tolerance_ms: int) -> int:
    """Probes a link sends after the last packet it received from a silent peer, before it
    fails (net/tipc/link.c tipc_link_timeout, 6.1 and 6.12). In a cluster under the
    monitor threshold (mstate->monitoring) every timeout first checks `silent_intv_cnt >
    abort_limit`, then increments silent_intv_cnt; any packet received on the link sets
    it to 0. On a quiet link (snd_nxt == checkpoint) every timeout that passes the check
    sends a STATE_MSG with the probe bit. So timeouts 1..abort_limit+1 after the last
    reception each send one probe (counts 0..abort_limit pass), and timeout
    abort_limit+2 fails the link (count abort_limit+1) without sending."""
    return abort_limit(tolerance_ms) + 1


ETH_P_TIPC = 0x88CA
PACKET_HOST = 0           # linux/if_packet.h: to us (unicast)
PACKET_OUTGOING = 4       # sent by us
# net/tipc/msg.h
LINK_PROTOCOL = 7
LINK_CONFIG = 13          # neighbour discovery, broadcast by each bearer
STATE_MSG = 0


@dataclass(frozen=True)
class TipcFrame:
    """One TIPC frame from an eth bearer, as an AF_PACKET socket saw it: `t` seconds on
    the capture's clock, `pkttype` (PACKET_HOST, PACKET_OUTGOING...), and the header
    fields the link layer acts on (net/tipc/msg.h: word 0 user, word 1 type, word 3
    prevnode, word 5 bit 0 probe, word 7 destnode)."""

    t: float
    pkttype: int
    user: int
    mtype: int
    prevnode: int
    destnode: int | None      # None in a short (24-byte) header: the receiver is meant
    probe: bool               # LINK_PROTOCOL only

    @property
    def outgoing(self) -> bool:
        return self.pkttype == PACKET_OUTGOING

    @property
    def is_probe(self) -> bool:
        return self.user == LINK_PROTOCOL and self.mtype == STATE_MSG and self.probe

    def heard_from(self, peer: int) -> bool:
        """Received from node `peer` on its link to us: unicast to our MAC, and not
        discovery (LINK_CONFIG goes to the bearer, not the link)."""
        return (self.pkttype == PACKET_HOST and self.prevnode == peer
                and self.user != LINK_CONFIG)


def parse_tipc_frame(frame: bytes, t: float = 0.0, pkttype: int = PACKET_HOST) -> TipcFrame:
    """An Ethernet frame (14-byte header, ethertype 0x88ca) carrying a TIPC message."""
    if len(frame) < 14 + 24 or int.from_bytes(frame[12:14], "big") != ETH_P_TIPC:
        raise ValueError(f"not a TIPC eth frame: {frame[:16].hex()}...")
    words = [int.from_bytes(frame[14 + 4 * i:18 + 4 * i], "big")
             for i in range(min(10, (len(frame) - 14) // 4))]
    version, user, hdr_size = words[0] >> 29, (words[0] >> 25) & 0xF, (words[0] >> 21 & 0xF) * 4
    if version != 2 or hdr_size < 24 or hdr_size > len(frame) - 14:
        raise ValueError(f"TIPC header: version {version}, size {hdr_size}: {frame.hex()}")
    return TipcFrame(t=t, pkttype=pkttype, user=user, mtype=words[1] >> 29,
                     prevnode=words[3], destnode=words[7] if hdr_size >= 32 else None,
                     probe=user == LINK_PROTOCOL and bool(words[5] & 1))


def parse_capture(frames: list[dict]) -> list[TipcFrame]:
    """suites.tipc.lib.wire's captured frames ({"t", "pkttype", "hex"}), decoded."""
    return [parse_tipc_frame(bytes.fromhex(f["hex"]), f["t"], f["pkttype"]) for f in frames]


def sent_after_last_heard(frames: list[TipcFrame], own: int,
                          peer: int) -> tuple[TipcFrame | None, list[TipcFrame]]:
    """The last frame node `own` received from `peer` on their link (heard_from), and
    what `own` sent towards `peer` after it while the link was up: STATE_MSGs and data
    (a short header names no destination, so it counts too); RESET/ACTIVATE_MSGs, sent
    once the link is down, do not. (None, every such frame) if nothing was heard."""
    heard = [i for i, f in enumerate(frames) if f.heard_from(peer)]
    after = frames[heard[-1] + 1:] if heard else frames
    sent = [f for f in after if f.outgoing and f.prevnode == own and f.destnode in (peer, None)
            and f.user != LINK_CONFIG
            and not (f.user == LINK_PROTOCOL and f.mtype != STATE_MSG)]
    return (frames[heard[-1]] if heard else None), sent


# -- suites.tipc.lib.sock roles' JSON lines ------------------------------------------------

def progress(text: str, key: str = "sent") -> int:
    """The last value of `key` a role printed (0 if none yet)."""
    vals = [d[key] for d in map(json.loads, text.splitlines()) if key in d]
    return vals[-1] if vals else 0


def summary(text: str) -> dict:
    """A sink's last summary line."""
    return [d for d in map(json.loads, text.splitlines()) if "summary" in d][-1]
