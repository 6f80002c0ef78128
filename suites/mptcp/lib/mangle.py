"""In-flight faults for the MPTCP suite: what a middlebox does to a connection's segments.

Host side: ruleset and argv builders, and tiny runners. nftables in the sending node's
output hook picks the packets and counts them in a named counter; tc (clsact egress)
rewrites a byte of what nft marked, as upstream mptcp_join.sh's `fail` group does with
iptables MARK and tc pedit. Only the nf_tables core is used (payload, meta, exthdr,
lookup, dynset, counter objects): the suite's source-built kernels have no nft_limit,
nft_quota or nft_ct. Everything lives in the node's netns and goes with it.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

TABLE = "knit_mangle"
MARK = 0x2A           # nft marks the packet, tc's fw classifier finds it by this
PEDIT_OFFSET = 148    # bytes from the IPv4 header: in the payload of any segment >= MIN_LEN
MIN_LEN = 2000        # only packets this long are picked (a GSO burst counts whole)
MPTCP_MP_CAPABLE = 0  # MPTCP option subtype


class _VM(Protocol):
    def run(self, cmd: list[str], ns: str | None = ..., timeout: float | None = ...,
            check: bool = ..., input: str | None = ...) -> Any: ...


def nft(vm: _VM, ns: str, ruleset: str) -> None:
    """Load an nft ruleset (`nft -f -`) in netns `ns`."""
    vm.run(["nft", "-f", "-"], ns=ns, input=ruleset)


def counter(vm: _VM, ns: str, name: str) -> int:
    """Packets counted so far by the named counter `name` of TABLE in `ns`."""
    out = vm.run(["nft", "-j", "list", "counter", "inet", TABLE, name], ns=ns).stdout
    return counter_packets(out, name)


def counter_packets(nft_json: str, name: str) -> int:
    """The packets of counter `name` in `nft -j list counter ...` output."""
    for item in json.loads(nft_json)["nftables"]:
        c = item.get("counter")
        if c and c.get("name") == name:
            return int(c["packets"])
    raise ValueError(f"no counter {name!r} in nft output: {nft_json[:300]}")


# -- one payload byte changed in flight ------------------------------------------------

def invert_marked(dev: str, offset: int = PEDIT_OFFSET) -> list[list[str]]:
    """`tc` lines (for Mptcp.tc): on `dev` egress, invert the byte `offset` bytes into each
    IPv4 packet carrying MARK and fix the TCP checksum, so that TCP takes the segment and
    only a checksum above it (MPTCP's DSS checksum) can tell."""
    return [["qdisc", "add", "dev", dev, "clsact"],
            ["filter", "add", "dev", dev, "egress", "protocol", "ip", "prio", "1000",
             "handle", str(MARK), "fw", "action", "pedit", "munge", "offset", str(offset),
             "u8", "invert", "pipe", "csum", "tcp"]]


def marker_table() -> str:
    """An nft table with an empty output chain, the set mark_once_argv() remembers in and
    the counter `marked`: loaded before the traffic; the rule comes mid-transfer."""
    return (f"table inet {TABLE} {{\n"
            f"  counter marked {{ }}\n"
            f"  set done {{ type ipv4_addr; flags dynamic; }}\n"
            f"  chain out {{ type filter hook output priority 0; policy accept; }}\n"
            f"}}\n")


def mark_once_argv(dport: int, min_len: int = MIN_LEN) -> list[str]:
    """`nft add rule` marking the next IPv4 TCP packet of at least `min_len` bytes to
    `dport`, and no later one (the destination goes into the set on the first match).
    An argv, so that a transfer runs it as a mid-transfer action: the corrupted segment
    then comes after mappings whose checksum was valid."""
    return ["nft", "add", "rule", "inet", TABLE, "out",
            "tcp", "dport", str(dport), "meta", "length", ">=", str(min_len),
            "ip", "daddr", "!=", "@done", "add", "@done", "{", "ip", "daddr", "}",
            "meta", "mark", "set", str(MARK), "counter", "name", "marked"]


def advmss_argv(peer: str, dev: str, mss: int) -> list[str]:
    """`ip route` making this node announce MSS `mss` to `peer` (a host route on `dev`),
    so that the peer's segments stay that far below the path MTU."""
    return ["ip", "route", "add", f"{peer}/32", "dev", dev, "advmss", str(mss)]


# -- MP_CAPABLE removed after the SYN --------------------------------------------------

def strip_mp_capable_after_syn(dport: int) -> str:
    """An nft table removing the MP_CAPABLE option from every segment to `dport` except
    the SYN, counted in `stripped`: the SYN offers MPTCP, and the ACK that completes the
    handshake (then the first data, which repeats MP_CAPABLE) arrive without it, as
    through a middlebox that drops unknown options from established segments."""
    return (f"table inet {TABLE} {{\n"
            f"  counter stripped {{ }}\n"
            f"  chain out {{\n"
            f"    type filter hook output priority 0; policy accept;\n"
            f"    tcp dport {dport} tcp flags & syn == 0 "
            f"tcp option mptcp subtype {MPTCP_MP_CAPABLE} "
            f"counter name stripped reset tcp option mptcp\n"
            f"  }}\n"
            f"}}\n")
