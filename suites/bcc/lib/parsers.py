"""Parsers of bcc tool output: one per tool per variant, pure functions returning typed events.

Two Debian variants print different formats (see /work/shared/REFERENCE.md "bcc tools"):
  * "python": bcc 0.26's tools (tcptracer-bpfcc, ...), compiled at run time;
  * "libbpf": libbpf-tools 0.26 CO-RE binaries (/usr/sbin/tcptracer, ...).
COMM may contain spaces, so lines are split around it from both ends: the fields before it
and after it have fixed counts. Lines that are not events (banners, headers, "Lost N
events") are skipped; parsers never guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SOFTIRQ_NAMES = ("hi", "timer", "net_tx", "net_rx", "block", "irq_poll", "tasklet", "sched",
                 "hrtimer", "rcu")


# -- tcptracer ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TcpEvent:
    """One tcptracer line. `kind` is C (connect), A (accept) or X (close)."""

    kind: str
    pid: int
    comm: str
    ip: int                   # 4 or 6
    saddr: str
    daddr: str
    sport: int
    dport: int
    time_s: float | None = None
    netns: int | None = None  # python -v only
    uid: int | None = None    # libbpf -U only

    @property
    def tuple4(self) -> tuple[str, int, str, int]:
        return (self.saddr, self.sport, self.daddr, self.dport)


_VERBOSE_KIND = {"connect": "C", "accept": "A", "close": "X", "unknown": "U"}
_TCP_KINDS = ("C", "A", "X", "U")


def _addr(s: str) -> str:
    return s[1:-1] if s.startswith("[") and s.endswith("]") else s


def _header(lines: list[str], *names: str) -> list[str]:
    """The columns of the header line: the first line holding all of `names`."""
    for line in lines:
        cols = line.split()
        if all(n in cols for n in names):
            return cols
    return []


def _tcptracer(text: str) -> list[TcpEvent]:
    lines = text.splitlines()
    hdr = _header(lines, "PID", "COMM", "SADDR")
    timed = bool(hdr) and hdr[0].startswith("TIME")
    ns_time = bool(hdr) and hdr[0] == "TIME(ns)"      # python -tv
    uid_col, netns_col = "UID" in hdr, "NETNS" in hdr
    nhead = 2 + timed + uid_col                        # [TIME] [UID] T PID
    tail = 5 + netns_col                               # IP SADDR DADDR SPORT DPORT [NETNS]
    events = []
    for line in lines:
        parts = line.split(None, nhead)
        if len(parts) != nhead + 1:
            continue
        rest = parts[nhead].rsplit(None, tail)
        if len(rest) != tail + 1:
            continue
        head = parts[:nhead]
        try:
            t = float(head.pop(0)) / (1e9 if ns_time else 1.0) if timed else None
            uid = int(head.pop(0)) if uid_col else None
            kind, pid = _VERBOSE_KIND.get(head[0], head[0]), int(head[1])
            comm, ip, saddr, daddr, sport, dport, *extra = rest
            if kind not in _TCP_KINDS:
                continue
            events.append(TcpEvent(kind, pid, comm.strip(), int(ip), _addr(saddr), _addr(daddr),
                                   int(sport), int(dport), t,
                                   int(extra[0]) if extra else None, uid))
        except ValueError:
            continue
    return events


def parse_tcptracer_python(text: str) -> list[TcpEvent]:
    """bcc tcptracer.py: `[TIME(s)] T PID COMM IP SADDR DADDR SPORT DPORT`, IPv6 addresses
    in brackets; -v: the TYPE as a word and a trailing NETNS column (unless -N)."""
    return _tcptracer(text)


def parse_tcptracer_libbpf(text: str) -> list[TcpEvent]:
    """libbpf-tools tcptracer: `[TIME(s)] [UID] T PID COMM IP SADDR DADDR SPORT DPORT`,
    COMM cut to 12 characters, no brackets around IPv6 addresses."""
    return _tcptracer(text)


# -- solisten -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ListenEvent:
    pid: int
    comm: str
    proto: str                # TCPv4 / TCPv6
    backlog: int
    port: int
    addr: str
    ret: int | None = None    # libbpf only: listen()'s return value
    netns: int | None = None  # python --show-netns only
    time: str | None = None   # libbpf -t only (HH:MM:SS)


_PROTO = re.compile(r"^(TCP|UDP|UNK)v[46]$")


def parse_solisten_python(text: str) -> list[ListenEvent]:
    """bcc solisten.py: `PID COMM [NETNS] PROTO BACKLOG PORT ADDR` (COMM cut to 12)."""
    netns_col = "NETNS" in _header(text.splitlines(), "PID", "COMM", "PROTO")
    events = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) != 2 or not parts[0].isdigit():
            continue
        n = 5 if netns_col else 4
        rest = parts[1].rsplit(None, n)
        if len(rest) != n + 1:
            continue
        comm, *fields = rest
        netns = int(fields.pop(0)) if netns_col else None
        proto, backlog, port, addr = fields
        if not _PROTO.match(proto):
            continue
        events.append(ListenEvent(int(parts[0]), comm.strip(), proto, int(backlog), int(port),
                                  addr, None, netns))
    return events


def parse_solisten_libbpf(text: str) -> list[ListenEvent]:
    """libbpf-tools solisten: `[TIME] PID COMM RET BACKLOG PROTO PORT ADDR`."""
    lines = text.splitlines()
    hdr = _header(lines, "PID", "COMM", "PROTO")
    timed = bool(hdr) and hdr[0] == "TIME"
    events = []
    for line in lines:
        parts = line.split(None, 2 if timed else 1)
        if len(parts) < (3 if timed else 2):
            continue
        time = parts.pop(0) if timed else None
        if not parts[0].isdigit():
            continue
        rest = parts[1].rsplit(None, 5)
        if len(rest) != 6:
            continue
        comm, ret, backlog, proto, port, addr = rest
        if not _PROTO.match(proto):
            continue
        try:
            events.append(ListenEvent(int(parts[0]), comm.strip(), proto, int(backlog),
                                      int(port), addr, int(ret), None, time))
        except ValueError:
            continue
    return events


# -- softirqs -------------------------------------------------------------------------------

@dataclass
class SoftirqInterval:
    """One softirqs report: totals per softirq (usecs, or nsecs with -N), or with -d one
    log2 histogram per softirq. `time` is the -T timestamp (HH:MM:SS)."""

    totals: dict[str, int] = field(default_factory=dict)
    hists: dict[str, dict[tuple[int, int], int]] = field(default_factory=dict)
    time: str | None = None
    unit: str | None = None   # usecs / nsecs

    def total(self, name: str) -> int:
        return self.totals.get(name, 0)


_TIME = re.compile(r"^\d\d:\d\d:\d\d$")
_TOTAL_HDR = re.compile(r"^SOFTIRQ\s+TOTAL_(\w+)\s*$")
_HIST_HDR = re.compile(r"^softirq = (\w+)\s*$")
_HIST_COLS = re.compile(r"^\s*(\w+)\s+:\s+count\s+distribution")
_BUCKET = re.compile(r"^\s*(\d+)\s+->\s+(\d+)\s+:\s+(\d+)\s+\|")
_ROW = re.compile(r"^(\w+)\s+(\d+)\s*$")


def parse_softirqs(text: str) -> list[SoftirqInterval]:
    """softirqs of both variants (the formats agree): reports separated by a blank line,
    each optionally led by a -T time, then `SOFTIRQ TOTAL_usecs` rows, or (-d) histograms
    headed `softirq = NAME`. libbpf-tools prints only the non-zero rows."""
    out: list[SoftirqInterval] = []
    cur: SoftirqInterval | None = None
    hist: dict[tuple[int, int], int] | None = None
    pending_time: str | None = None

    def start() -> SoftirqInterval:
        nonlocal pending_time
        iv = SoftirqInterval(time=pending_time)
        pending_time = None
        out.append(iv)
        return iv

    for raw in text.splitlines():
        line = raw.rstrip()
        if _TIME.match(line.strip()):
            pending_time, cur = line.strip(), None
            continue
        if m := _TOTAL_HDR.match(line):
            cur = start()
            cur.unit = m.group(1)
            hist = None
            continue
        if m := _HIST_HDR.match(line):
            if cur is None or not cur.hists and cur.totals or pending_time:
                cur = start()
            elif m.group(1) in cur.hists:  # the same softirq again: a new interval
                cur = start()
            hist = cur.hists.setdefault(m.group(1), {})
            continue
        if m := _HIST_COLS.match(line):
            if cur is not None:
                cur.unit = m.group(1)
            continue
        if hist is not None and (m := _BUCKET.match(line)):
            hist[(int(m.group(1)), int(m.group(2)))] = int(m.group(3))
            continue
        if cur is not None and hist is None and (m := _ROW.match(line)) \
                and m.group(1) in SOFTIRQ_NAMES:
            cur.totals[m.group(1)] = int(m.group(2))
    return out


PARSERS = {
    ("tcptracer", "python"): parse_tcptracer_python,
    ("tcptracer", "libbpf"): parse_tcptracer_libbpf,
    ("solisten", "python"): parse_solisten_python,
    ("solisten", "libbpf"): parse_solisten_libbpf,
    ("softirqs", "python"): parse_softirqs,
    ("softirqs", "libbpf"): parse_softirqs,
}
