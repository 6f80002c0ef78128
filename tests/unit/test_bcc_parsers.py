"""suites.bcc.lib.parsers on real tool output captured in TCG guests
(tests/unit/data/bcc_*.txt; each .meta.json names the kernel, the tool and its version,
the command and the date).

The captures come from known traffic (tests/unit/data/bcc_capture.py and the bcc suite):
client comm knit-cli in ns1 (10.0.1.1, dead:beef:1::1), server comm knit-srv in ns2
(10.0.1.2, dead:beef:1::2), so the expected events are known without reading the files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from suites.bcc.lib import parsers

DATA = Path(__file__).resolve().parent / "data"
V4 = ("10.0.1.1", "10.0.1.2")
V6 = ("dead:beef:1::1", "dead:beef:1::2")


def captures(pattern: str) -> list[Path]:
    found = sorted(DATA.glob(pattern))
    assert found, f"no captured fixture {pattern} in {DATA}"
    return found


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def meta(path: Path) -> dict:
    m = json.loads(path.with_name(path.name + ".meta.json").read_text())
    assert m["kernel"] and m["command"] and m["date"] and m["tool_version"]
    return m


TCPTRACER = captures("bcc_tcptracer_*.txt")


@pytest.mark.parametrize("path", TCPTRACER, ids=ids(TCPTRACER))
def test_tcptracer_one_connection_per_family(path: Path) -> None:
    m = meta(path)
    evs = parsers.PARSERS[("tcptracer", m["variant"])](path.read_text())
    for ip, (cli, srv) in ((4, V4), (6, V6)):
        mine = [e for e in evs if e.ip == ip and {e.saddr, e.daddr} == {cli, srv}]
        # Events come through per-CPU buffers: C, A and the two X need not be in that order
        # (libbpf on 6.1 printed the client's X before the A).
        assert sorted(e.kind for e in mine) == ["A", "C", "X", "X"], mine
        [c] = [e for e in mine if e.kind == "C"]
        [a] = [e for e in mine if e.kind == "A"]
        xs = [e for e in mine if e.kind == "X"]
        assert (c.comm, c.saddr, c.daddr) == ("knit-cli", cli, srv)
        assert (a.comm, a.saddr, a.daddr) == ("knit-srv", srv, cli)
        assert (a.sport, a.dport) == (c.dport, c.sport)           # the same connection
        assert {(x.pid, x.tuple4) for x in xs} == {(c.pid, c.tuple4), (a.pid, a.tuple4)}
        assert c.pid != a.pid
    assert not [e for e in evs if e.ip not in (4, 6)]


TCPTRACER_PY = captures("bcc_tcptracer_python_*.txt")


@pytest.mark.parametrize("path", TCPTRACER_PY, ids=ids(TCPTRACER_PY))
def test_tcptracer_python_prints_ipv6_in_brackets(path: Path) -> None:
    text = path.read_text()
    assert "[dead:beef:1::1]" in text and "[dead:beef:1::2]" in text
    evs = parsers.parse_tcptracer_python(text)
    assert {e.saddr for e in evs if e.ip == 6} == set(V6)  # brackets stripped
    assert all(e.time_s is None and e.netns is None and e.uid is None for e in evs)


SOLISTEN = captures("bcc_solisten_*.txt")


@pytest.mark.parametrize("path", SOLISTEN, ids=ids(SOLISTEN))
def test_solisten_backlog_7_v4_then_v6(path: Path) -> None:
    m = meta(path)
    evs = parsers.PARSERS[("solisten", m["variant"])](path.read_text())
    got = [(e.comm, e.proto, e.backlog, e.addr) for e in evs if e.comm == "knit-srv"]
    # libbpf-tools 0.26 copies only 4 bytes of the IPv6 address (BPF_CORE_READ_INTO into
    # a __u32 array reads sizeof(*addr)): it prints what it prints, and the parser keeps it.
    v6 = V6[1] if m["variant"] == "python" else "dead:beef::"
    assert got == [("knit-srv", "TCPv4", 7, V4[1]), ("knit-srv", "TCPv6", 7, v6)]
    ports = [e.port for e in evs if e.comm == "knit-srv"]
    assert ports[1] == ports[0] + 1 and all(e.pid > 1 for e in evs)
    if m["variant"] == "libbpf":
        assert [e.ret for e in evs if e.comm == "knit-srv"] == [0, 0]
    else:  # bcc's solisten has no RET column: nothing may be shifted into `ret`
        assert all(e.ret is None and e.netns is None for e in evs)


SOFTIRQS_T = captures("bcc_softirqs_*_T1_*.txt")


@pytest.mark.parametrize("path", SOFTIRQS_T, ids=ids(SOFTIRQS_T))
def test_softirqs_intervals_with_timestamps(path: Path) -> None:
    meta(path)
    ivs = parsers.parse_softirqs(path.read_text())
    assert len(ivs) >= 5 and all(iv.time and iv.unit == "usecs" for iv in ivs)
    assert all(set(iv.totals) <= set(parsers.SOFTIRQ_NAMES) for iv in ivs)
    peak = max(iv.total("net_rx") for iv in ivs)
    assert peak > 0 and any(iv.total("net_tx") > 0 for iv in ivs)
    assert min(iv.total("net_rx") for iv in ivs) * 10 < peak  # idle vs. loaded intervals
    # Every row and every timestamp is kept: bcc prints all softirqs that ran (ascending by
    # total), libbpf-tools the non-zero ones; both print a last, partial report at SIGINT.
    text = path.read_text()
    rows = [ln for ln in text.splitlines() if re.match(r"^[a-z_]+\s+\d+\s*$", ln)]
    assert sum(len(iv.totals) for iv in ivs) == len(rows)
    assert len(ivs) == len(re.findall(r"^\d\d:\d\d:\d\d\s*$", text, re.M))


SOFTIRQS_D = captures("bcc_softirqs_*_d_*.txt")


@pytest.mark.parametrize("path", SOFTIRQS_D, ids=ids(SOFTIRQS_D))
def test_softirqs_histograms(path: Path) -> None:
    meta(path)
    [report] = parsers.parse_softirqs(path.read_text())
    assert {"net_rx", "net_tx"} <= set(report.hists) and report.unit == "usecs"
    assert not report.totals
    for name, hist in report.hists.items():
        assert sum(hist.values()) > 0, name
        assert all(hi == (1 if lo == 0 else 2 * lo - 1) for lo, hi in hist), name


def test_trace_wait_raises_with_what_it_saw() -> None:
    """A wait that times out fails, naming what it waited for and the events it did see
    (a stopped trace of a real capture: its events no longer grow)."""
    from knit.vm import Result
    from knit.wait import WaitTimeout
    from suites.bcc.lib.tools import Trace

    [path] = captures("bcc_solisten_libbpf_*.txt")
    tr = Trace("solisten", "libbpf", [], "6.12", result=Result(0, path.read_text(), ""),
               _parse=parsers.PARSERS[("solisten", "libbpf")])
    assert len(tr.wait(lambda evs: len(evs) >= 2, 1.0, "both listen() events")) >= 2
    with pytest.raises(WaitTimeout, match=r"solisten \(libbpf\): a third listen\(\) not "
                                          r"within 0\.2s; 2 events seen, last \[.*6000"):
        tr.wait(lambda evs: len(evs) >= 3, 0.2, "a third listen()", poll=0.05)
