"""suites.mptcp.lib.ss and suites.mptcp.lib.pm parsers against real guest output.

Fixtures: tests/unit/data/{ss,ip_mptcp}_*_6.12.117+deb12-amd64.txt, recorded by
tests/unit/data/mptcp_pm_capture.py (see each .meta.json): one MPTCP connection
10.0.1.1 -> 10.0.1.2:10000 with a client subflow endpoint 10.0.2.1 and server signal
endpoints 10.0.3.2 (id 5, deleted mid-transfer) and 10.0.2.2 port 10100 backup (id 6).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from suites.mptcp.lib.pm import (
    ep,
    kinds,
    limits_argv,
    of_kind,
    parse_endpoints_json,
    parse_limits,
    parse_monitor,
)
from suites.mptcp.lib.ss import parse_ss

DATA = Path(__file__).parent / "data"
REL = "6.12.117+deb12-amd64"


def read(name: str) -> str:
    return (DATA / f"{name}_{REL}.txt").read_text()


def test_ss_tni_subflows_with_ulp_and_details() -> None:
    socks = parse_ss(read("ss_tniH"))
    assert [(s.local_addr, s.peer_addr, s.peer_port) for s in socks] == [
        ("10.0.2.1", "10.0.1.2", 10000), ("10.0.1.1", "10.0.1.2", 10000),
        ("10.0.2.1", "10.0.2.2", 10100)]
    assert all(s.state == "ESTAB" and s.ulp == "mptcp" for s in socks)
    assert socks[1].num("bytes_acked") == 933889 and socks[1].num("rtt") == 16.255
    assert socks[0].local == "10.0.2.1%ns1eth2:52151"      # bound to its device
    # MPTCP subflow flags: M = MP_CAPABLE subflow, J = MP_JOIN subflow, B = backup.
    assert [s.info["flags"][0] for s in socks] == ["J", "M", "J"]
    assert "B" in socks[2].info["flags"]


def test_ss_one_line_and_multi_line_agree() -> None:
    one, multi = parse_ss(read("ss_tOniH")), parse_ss(read("ss_tniH"))
    assert [(s.local, s.peer, s.ulp, s.info["bytes_acked"]) for s in one] == \
        [(s.local, s.peer, s.ulp, s.info["bytes_acked"]) for s in multi]


def test_ss_mptcp_socket_counts_subflows() -> None:
    (msk,) = parse_ss(read("ss_MniH"))
    assert (msk.local, msk.peer) == ("10.0.1.1:51886", "10.0.1.2:10000")
    assert msk.num("subflows") == 2 and msk.info["token"] == "99adc8b3"
    assert msk.ulp is None and "remote_key" in msk.words


def test_ss_state_filter_drops_the_state_column() -> None:
    line = read("ss_MniH").splitlines()[0].split(None, 1)[1]   # what `state X` prints
    (s,) = parse_ss(line + "\n")
    assert s.state == "" and s.peer_port == 10000


def test_ss_garbage_raises() -> None:
    with pytest.raises(ValueError):
        parse_ss("\tsubflows:1\n")
    with pytest.raises(ValueError):
        parse_ss("hello world\n")


def test_monitor_events_in_order() -> None:
    evs = parse_monitor(read("ip_mptcp_monitor"))
    assert kinds(evs) == ["CREATED", "ESTABLISHED", "ANNOUNCED", "ANNOUNCED",
                          "SF_ESTABLISHED", "SF_ESTABLISHED", "SF_ESTABLISHED", "SF_CLOSED",
                          "REMOVED", "CLOSED"]
    assert {e["token"] for e in evs} == {"99adc8b3"}
    ann = of_kind(evs, "ANNOUNCED")
    assert [(e["remid"], e["daddr4"], e["dport"]) for e in ann] == \
        [("6", "10.0.2.2", "10100"), ("5", "10.0.3.2", "10000")]
    assert [e["backup"] for e in of_kind(evs, "SF_ESTABLISHED")] == ["1", "0", "0"]
    assert of_kind(evs, "REMOVED")[0]["remid"] == "5"
    assert of_kind(evs, "SF_ESTABLISHED")[1].get("ifindex") == "3"


def test_monitor_unknown_event_and_cut_last_line() -> None:
    # iproute2 6.1 prints events newer than itself as "[UNKNOWN 15]" (no attributes);
    # a monitor stopped by SIGINT may leave a half line.
    first = read("ip_mptcp_monitor").splitlines()[0]
    text = f"[UNKNOWN 15]\n{first}\n[   ESTABL"
    evs = parse_monitor(text)
    assert kinds(evs) == ["UNKNOWN_15", "CREATED"]
    with pytest.raises(ValueError):
        parse_monitor("not an event\n[        CLOSED] token=1\n")


def test_endpoints_json_and_limits() -> None:
    eps = parse_endpoints_json(read("ip_mptcp_endpoint"))
    assert eps == [{"address": "10.0.3.2", "id": 5, "signal": True},
                   {"address": "10.0.2.2", "port": 10100, "id": 6, "signal": True,
                    "backup": True}]
    assert parse_endpoints_json("") == []
    assert parse_limits(read("ip_mptcp_limits")) == {"add_addr_accepted": 0, "subflows": 2}


def test_argv_builders() -> None:
    assert ep("10.0.2.2", "signal", "backup", port=10100).words() == \
        ["10.0.2.2", "port", "10100", "signal", "backup"]
    assert ep("10.0.2.1", dev="ns1eth2", id=3).words() == \
        ["10.0.2.1", "dev", "ns1eth2", "id", "3", "subflow"]
    assert limits_argv(3, 1) == ["ip", "mptcp", "limits", "set", "subflows", "3",
                                 "add_addr_accepted", "1"]
