"""Tests for suites.mptcp.lib.nstat against real host output (see tests/unit/data/*.meta.json)."""

from __future__ import annotations

from pathlib import Path

import pytest

from suites.mptcp.lib.nstat import delta, parse_nstat, parse_nstat_json
from suites.mptcp.lib.wire import MpCapable, MpFastclose, MpTcpRst, select, sequence

DATA = Path(__file__).parent / "data"
KERNEL = "6.18.44-fc-v657"
BEFORE_TXT = DATA / f"nstat_before_{KERNEL}.txt"
AFTER_TXT = DATA / f"nstat_after_{KERNEL}.txt"
AFTER_JSON = DATA / f"nstat_after_{KERNEL}.json"
PCAP = DATA / f"mptcp_loopback_{KERNEL}.pcap"


@pytest.fixture(scope="module")
def before() -> dict[str, int]:
    return parse_nstat(BEFORE_TXT.read_text())


@pytest.fixture(scope="module")
def after() -> dict[str, int]:
    return parse_nstat(AFTER_TXT.read_text())


def test_plain_parses_every_counter_line(after: dict[str, int]) -> None:
    lines = AFTER_TXT.read_text().splitlines()
    assert lines[0] == "#kernel"
    assert len(after) == len(lines) - 1 == 395
    assert after["IpInReceives"] > 0
    # Names of 31+ chars leave a single space before the value in nstat's layout.
    assert "TcpExtTCPFastOpenListenOverflow" in after
    assert "MPTcpExtMPJoinSynAckHMacFailure" in after


def test_json_matches_plain(after: dict[str, int]) -> None:
    # Taken back to back; MPTCP counters are quiet on this host, so they must agree.
    js = parse_nstat_json(AFTER_JSON.read_text())
    assert list(js) == list(after)
    assert delta(after, js) == delta(after, after)


def test_delta_matches_pcap_connections(before: dict[str, int], after: dict[str, int]) -> None:
    d = delta(before, after, nonzero=True)
    assert d == {
        "MPTcpExtMPCapableSYNRX": 3,
        "MPTcpExtMPCapableSYNTX": 3,
        "MPTcpExtMPCapableSYNACKRX": 3,
        "MPTcpExtMPCapableACKRX": 3,
        "MPTcpExtMPFastcloseTx": 1,
        "MPTcpExtMPFastcloseRx": 1,
        "MPTcpExtMPRstTx": 1,
        "MPTcpExtMPRstRx": 1,
    }
    # Cross-check the counters against what the wire decoder saw in the same run.
    evs = sequence(PCAP)
    assert len(select(evs, MpCapable, variant="syn")) == d["MPTcpExtMPCapableSYNTX"]
    assert len(select(evs, MpFastclose)) == d["MPTcpExtMPFastcloseTx"]
    assert len(select(evs, MpTcpRst)) == d["MPTcpExtMPRstTx"]


def test_delta_prefix_and_missing(before: dict[str, int], after: dict[str, int]) -> None:
    full = delta(before, after, prefix="")
    assert full.keys() == after.keys()
    assert all(k.startswith("MPTcpExt") for k in delta(before, after))
    assert delta(before, after)["MPTcpExtMPJoinSynRx"] == 0
    # A counter unknown to the older snapshot counts from 0.
    shrunk = {k: v for k, v in before.items() if k != "MPTcpExtMPCapableSYNTX"}
    assert delta(shrunk, after)["MPTcpExtMPCapableSYNTX"] == after["MPTcpExtMPCapableSYNTX"]


def test_plain_rejects_garbled_lines() -> None:
    lines = AFTER_TXT.read_text().splitlines()
    name, _, rate = lines[1].split()
    with pytest.raises(ValueError, match="line 2: bad value"):
        parse_nstat("\n".join([lines[0], f"{name} x {rate}", *lines[2:]]))
    with pytest.raises(ValueError, match="unexpected"):
        parse_nstat(lines[0] + "\n" + lines[1] + " extra")


def test_plain_accepts_blank_lines_and_no_rate(after: dict[str, int]) -> None:
    # nstat without -a/-z prints only changed counters; tolerate trimmed columns too.
    text = "\n".join(" ".join(line.split()[:2]) for line in AFTER_TXT.read_text().splitlines())
    assert parse_nstat(text + "\n\n") == after


def test_json_rejects_non_integer() -> None:
    with pytest.raises(ValueError):
        parse_nstat_json('{"kernel": {"IpInReceives": "8"}}')
    with pytest.raises(ValueError):
        parse_nstat_json("[]")
