"""bpf/toa's counters: the rows of its per-CPU array map and the parser of bpftool's dump.

`knit toa stats` (knit/toa_deploy.py) reads them on a real host, and suites/toa reads them
in a guest, so they live in the library; only the stdlib is imported (guest-side, cheap).
The first rows are those of the TOA module's /proc/net/toa_stats (suites/toa/lib/stats.py).
"""

from __future__ import annotations

import json

ROWS = ("syn_recv_sock_toa", "syn_recv_sock_no_toa", "getname_toa_ok",
        "getname_toa_mismatch", "getname_toa_bypass", "getname_toa_empty")
# bpf/toa only (enum toa_stat in toa.bpf.c, after ROWS): a valid option from a peer outside
# the allowlist, and sockets with an entry that reached TCP_CLOSE (live = toa - closed).
BPF_ROWS = ROWS + ("syn_recv_sock_toa_untrusted", "toa_sock_closed")


def parse_bpftool(text: str, rows: tuple[str, ...] = BPF_ROWS) -> dict[str, list[int]]:
    """`bpftool -j map dump` of a per-CPU u64 array -> row name -> one value per CPU.

    bpftool prints each element's raw bytes ("key", "values": [{"cpu", "value"}]) and, when
    the map has BTF, a "formatted" copy; the raw bytes are read (little-endian, as the
    guest). Raises ValueError if an index is missing or not a 4-byte key / 8-byte value."""
    out: dict[int, list[int]] = {}
    for e in json.loads(text):
        key = bytes(int(b, 16) for b in e["key"])
        if len(key) != 4:
            raise ValueError(f"toa_stats map: key of {len(key)} bytes, want 4")
        vals = []
        for v in sorted(e["values"], key=lambda v: v["cpu"]):
            raw = bytes(int(b, 16) for b in v["value"])
            if len(raw) != 8:
                raise ValueError(f"toa_stats map: value of {len(raw)} bytes, want 8")
            vals.append(int.from_bytes(raw, "little"))
        out[int.from_bytes(key, "little")] = vals
    if sorted(out) != list(range(len(rows))):
        raise ValueError(f"toa_stats map: keys {sorted(out)}, want 0..{len(rows) - 1}")
    return {name: out[i] for i, name in enumerate(rows)}
